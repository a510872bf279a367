"""Builds the built-in rig's neutral template and triangle list from MediaPipe.

MediaPipe ships no canonical mesh file, so the template is made here from
FaceMesh's own 3D output on simple faces that this script draws with OpenCV:
FaceMesh detects them and its 3D output carries the model's face prior. The
outputs of many drawn faces (varied proportions, colours, slight head turns)
are rigidly aligned, averaged, made left/right symmetric, put into the rig's
frame (+x subject's left, +y up, +z toward the camera) and scaled to a
typical 63 mm interpupillary distance.

Triangles are rebuilt from the tessellation edges in
`mediapipe.python.solutions.face_mesh_connections` (it lists edges, not
triangles): every 3-clique of the edge graph, minus the few "separating"
cliques whose three edges each border more than two cliques. The result is a
manifold with three holes (two eyes, mouth).

Run:  python -m pyfacelang.face.template_build [-o pyfacelang/face/data/builtin_template.npz]
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

IPD_MM = 63.0  # typical adult interpupillary distance
RIGHT_IRIS, LEFT_IRIS = 468, 473  # iris centres (subject's right / left)
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "builtin_template.npz"
#: MediaPipe contour edge sets stored with the template (as (E, 2) arrays), so
#: the rig needs no MediaPipe import at run time
CONTOURS = ("left_eye", "left_eyebrow", "lips", "face_oval")


# ----------------------------------------------------------------- topology
def triangles_from_edges(edges) -> np.ndarray:
    """Faces of the mesh whose edge set is `edges`: 3-cliques minus separating ones."""
    E = {tuple(sorted(e)) for e in edges}
    adj = collections.defaultdict(set)
    for a, b in E:
        adj[a].add(b)
        adj[b].add(a)
    tris = set()
    for a, b in E:
        for c in adj[a] & adj[b]:
            tris.add(tuple(sorted((a, b, c))))
    uses = collections.Counter()
    for t in tris:
        uses.update([(t[0], t[1]), (t[0], t[2]), (t[1], t[2])])
    faces = [t for t in tris if not all(uses[e] > 2 for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))]
    check = collections.Counter()
    for t in faces:
        check.update([(t[0], t[1]), (t[0], t[2]), (t[1], t[2])])
    if max(check.values()) > 2:
        raise RuntimeError("tessellation edges do not form a manifold after removing separating triangles")
    return np.array(sorted(faces), dtype=np.int32)


def orient_outward(vertices: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Wind every triangle counter-clockwise seen from outside (normal away from
    a point well behind the face)."""
    behind = vertices[:468].mean(0) - np.array([0.0, 0.0, 150.0])
    a, b, c = vertices[tris[:, 0]], vertices[tris[:, 1]], vertices[tris[:, 2]]
    n = np.cross(b - a, c - a)
    flip = (n * ((a + b + c) / 3 - behind)).sum(1) < 0
    out = tris.copy()
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


# ------------------------------------------------------------ drawn faces
def draw_face(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """A simple frontal cartoon face (BGR) with randomized proportions."""
    import cv2

    img = np.full((size, size, 3), rng.integers(60, 140), np.uint8)
    c = size // 2 + int(rng.integers(-10, 11))
    skin = tuple(int(v) for v in rng.integers([120, 150, 190], [170, 200, 240]))
    fw, fh = size * rng.uniform(0.25, 0.30), size * rng.uniform(0.34, 0.39)
    cv2.ellipse(img, (c, c + 10), (int(fw), int(fh)), 0, 0, 360, skin, -1)
    ey = c - int(size * rng.uniform(0.07, 0.09))
    ex = int(size * rng.uniform(0.10, 0.12))
    for s in (-1, 1):
        cv2.ellipse(img, (c + s * ex, ey), (int(rng.integers(24, 31)), int(rng.integers(11, 15))), 0, 0, 360,
                    (245, 245, 245), -1)
        cv2.circle(img, (c + s * ex, ey), 11, tuple(int(v) for v in rng.integers(10, 90, 3)), -1)
        cv2.circle(img, (c + s * ex, ey), 5, (10, 10, 10), -1)
        cv2.ellipse(img, (c + s * ex, ey - int(rng.integers(24, 32))), (34, 7), 0, 180, 360, (40, 50, 60), -1)
    nose_y = c + int(size * rng.uniform(0.04, 0.06))
    cv2.polylines(img, [np.array([[c, ey], [c - 16, nose_y], [c + 16, nose_y]], np.int32)], False,
                  (100, 120, 160), 3)
    my = c + int(size * rng.uniform(0.14, 0.17))
    mw = int(size * rng.uniform(0.08, 0.10))
    cv2.ellipse(img, (c, my), (mw, 11), 0, 0, 360, (90, 90, 170), -1)
    cv2.line(img, (c - mw, my), (c + mw, my), (50, 40, 90), 2)
    return img


def mediapipe_landmarks(images) -> list[np.ndarray]:
    """FaceMesh (refine_landmarks) on each image -> (478, 3) in pixels, y down,
    z toward the camera negative (MediaPipe's convention); None when no face."""
    import cv2
    import mediapipe as mp

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                         min_detection_confidence=0.3) as fm:
        for img in images:
            res = fm.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            if not res.multi_face_landmarks:
                out.append(None)
                continue
            h, w = img.shape[:2]
            pts = np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark])
            out.append(pts)
    return out


# ------------------------------------------------------------- alignment
def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama: the similarity transform of src that best matches dst (both (N, 3))."""
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    U, S, Vt = np.linalg.svd(d0.T @ s0)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    scale = (S * np.diag(D)).sum() / (s0 ** 2).sum()
    return scale * s0 @ R.T + md


def mirror_map(v: np.ndarray) -> np.ndarray:
    """For each vertex, the index of its left/right counterpart (v roughly
    symmetric about x = 0): the optimal one-to-one assignment between the
    vertices and their reflections (plain nearest neighbours collide in the
    dense lip and eye rings). Checked to be an involution."""
    from scipy.optimize import linear_sum_assignment  # scipy comes with jax/mediapipe

    mirrored = v * np.array([-1.0, 1.0, 1.0])
    d = ((v[:, None, :] - mirrored[None, :, :]) ** 2).sum(-1)
    m = np.empty(len(v), np.int64)
    m[:468] = linear_sum_assignment(d[:468, :468])[1]
    m[468:] = 468 + linear_sum_assignment(d[468:, 468:])[1]
    if not np.array_equal(m[m], np.arange(len(v))):
        raise RuntimeError("mirror correspondence is not an involution; template too asymmetric")
    return m


def canonical_frame(v: np.ndarray) -> np.ndarray:
    """Rotate/translate/scale so the eyes lie on the x axis (subject's left at
    +x), the face looks along +z, the pupil midpoint is the origin and the
    interpupillary distance is IPD_MM."""
    x_axis = v[LEFT_IRIS] - v[RIGHT_IRIS]
    x_axis /= np.linalg.norm(x_axis)
    # face "up": from chin (152) to forehead (10), made orthogonal to x
    up = v[10] - v[152]
    up -= x_axis * (up @ x_axis)
    up /= np.linalg.norm(up)
    z_axis = np.cross(x_axis, up)
    R = np.stack([x_axis, up, z_axis])  # rows: new axes
    centre = 0.5 * (v[LEFT_IRIS] + v[RIGHT_IRIS])
    out = (v - centre) @ R.T
    if out[1, 2] < out[:468, 2].mean():  # nose tip (1) must point toward +z
        out[:, 2] *= -1
        out[:, 0] *= -1
    return out * (IPD_MM / np.linalg.norm(out[LEFT_IRIS] - out[RIGHT_IRIS]))


def build_template(num_faces: int = 48, seed: int = 0):
    """Returns (vertices (478, 3) float32 mm, triangles (F, 3) int32, mirror (478,) int32, n_used)."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    rng = np.random.default_rng(seed)
    images = [draw_face(rng) for _ in range(num_faces)]
    found = [p for p in mediapipe_landmarks(images) if p is not None]
    if len(found) < max(4, num_faces // 4):
        raise RuntimeError(f"FaceMesh found only {len(found)} of {num_faces} drawn faces")
    # image coords (x right, y down, z away) -> subject frame (+x subject's left
    # = image right for a frontal, unmirrored photo; +y up; +z toward camera)
    faces = [p * np.array([1.0, -1.0, -1.0]) for p in found]
    ref = faces[0]
    for _ in range(3):  # generalized Procrustes
        aligned = [similarity_align(f, ref) for f in faces]
        ref = np.mean(aligned, 0)
    v = canonical_frame(ref)
    m = mirror_map(v)
    v = 0.5 * (v + v[m] * np.array([-1.0, 1.0, 1.0]))  # exact symmetry
    v = canonical_frame(v)
    tris = orient_outward(v, triangles_from_edges(fmc.FACEMESH_TESSELATION))
    return v.astype(np.float32), tris, m.astype(np.int32), len(found)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--faces", type=int, default=48, help="number of drawn faces to average")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import mediapipe

    v, tris, mirror, n = build_template(args.faces, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp.npz")
    from mediapipe.python.solutions import face_mesh_connections as fmc

    contours = {f"contour_{k}": np.array(sorted(tuple(sorted(e)) for e in getattr(fmc, f"FACEMESH_{k.upper()}")),
                                         dtype=np.int32) for k in CONTOURS}
    np.savez_compressed(tmp, vertices=v, triangles=tris, mirror=mirror, **contours,
                        source=np.array(f"mediapipe {mediapipe.__version__} FaceMesh on {n} drawn faces, seed {args.seed}"))
    tmp.replace(args.output)
    print(f"wrote {args.output}: {len(v)} vertices, {len(tris)} triangles, from {n} faces")


if __name__ == "__main__":
    main()
