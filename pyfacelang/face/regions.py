"""Facial regions of the built-in rig's template, found from MediaPipe's named
contour sets (eyes, brows, lips) and the template geometry, plus the smooth
falloff masks that the procedural blendshapes and identity bases are sculpted
with. Stateless numpy; everything is computed for the subject's LEFT side
(+x) and mirrored for the right."""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER = 473, 468
LEFT_IRIS = (473, 474, 475, 476, 477)
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10


def _rings(edges) -> list[list[int]]:
    """Split an edge set into its closed loops, each as an ordered vertex list."""
    adj = collections.defaultdict(list)
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    seen, rings = set(), []
    for start in sorted(adj):
        if start in seen:
            continue
        ring, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in adj[cur] if n != prev and (n not in seen or (n == start and len(ring) > 2))]
            if not nxt or nxt[0] == start:
                break
            prev, cur = cur, nxt[0]
            ring.append(cur)
            seen.add(cur)
        rings.append(ring)
    return rings


def _split_at_corners(ring: list[int], v: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A closed contour -> (upper path, lower path, corner with smaller x, corner
    with larger x). Both paths include the corners and run from small to large x."""
    xs = v[ring, 0]
    i0, i1 = int(np.argmin(xs)), int(np.argmax(xs))
    n = len(ring)
    a = [ring[(i0 + k) % n] for k in range((i1 - i0) % n + 1)]
    b = [ring[(i0 - k) % n] for k in range((i0 - i1) % n + 1)]
    up, lo = (a, b) if v[a, 1].mean() > v[b, 1].mean() else (b, a)
    return np.array(up), np.array(lo), ring[i0], ring[i1]


@dataclass(frozen=True)
class Contour:
    """An open upper/lower pair of paths between two corners (eye or lip)."""
    upper: np.ndarray  # vertex ids along the upper margin, increasing x
    lower: np.ndarray  # vertex ids along the lower margin, increasing x
    corner_a: int      # corner with smaller x
    corner_b: int      # corner with larger x

    def margin_y(self, v: np.ndarray, x: np.ndarray, which: str) -> np.ndarray:
        """Height of the upper or lower margin at positions x (linear interpolation)."""
        ids = self.upper if which == "upper" else self.lower
        order = np.argsort(v[ids, 0])
        return np.interp(x, v[ids[order], 0], v[ids[order], 1])

    @property
    def vertices(self) -> np.ndarray:
        return np.unique(np.concatenate([self.upper, self.lower]))


class Regions:
    """Anchors of the template `v` (478, 3) used by the sculpting code.

    contours: MediaPipe FaceMesh contour edge sets, (E, 2) arrays keyed
    "left_eye", "left_eyebrow", "lips", "face_oval" (MediaPipe's LEFT is the
    subject's left), as stored with the template by `template_build.py`."""

    def __init__(self, v: np.ndarray, mirror: np.ndarray, contours: dict[str, np.ndarray]):
        self.v = v
        self.mirror = mirror
        edges = {k: [tuple(e) for e in np.asarray(a).tolist()] for k, a in contours.items()}
        self.left_eye = Contour(*_split_at_corners(_rings(edges["left_eye"])[0], v))
        self.left_brow = np.unique(np.asarray(contours["left_eyebrow"]))
        lip_rings = sorted(_rings(edges["lips"]), key=lambda r: -np.ptp(v[r, 0]))
        self.outer_lips = Contour(*_split_at_corners(lip_rings[0], v))  # corners 61 / 291
        self.inner_lips = Contour(*_split_at_corners(lip_rings[1], v))  # corners 78 / 308
        self.mouth_corner = self.outer_lips.corner_b  # subject's left corner (291)
        self.eye_center = v[LEFT_IRIS_CENTER].copy()
        self.mouth_center = 0.5 * (v[self.outer_lips.corner_a] + v[self.outer_lips.corner_b])
        self.face_oval = np.unique(np.asarray(contours["face_oval"]))
        # Which face vertices belong to the lower lip / jaw side of the mouth
        # seam: lower-lip ring members are 1, upper-lip ones 0; see jaw_weight().
        self.upper_lip_ring = np.unique(np.concatenate([self.outer_lips.upper[1:-1], self.inner_lips.upper[1:-1]]))
        self.lower_lip_ring = np.unique(np.concatenate([self.outer_lips.lower[1:-1], self.inner_lips.lower[1:-1]]))

    # --------------------------------------------------------------- masks
    def gauss(self, center, radii) -> np.ndarray:
        """(V,) anisotropic Gaussian falloff around `center` with per-axis radii (mm)."""
        d = (self.v - np.asarray(center, float)) / np.asarray(radii, float)
        return np.exp(-0.5 * (d ** 2).sum(1))

    def face_only(self, w: np.ndarray) -> np.ndarray:
        """Zero the iris points (they move only with gaze)."""
        w = w.copy()
        w[468:] = 0.0
        return w

    def lid_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the left eye: (upper-lid weight, lower-lid weight, opening height
        at each vertex's x). Weights are 1 on the margin and fall off away from
        the eye (upper toward the brow, lower toward the cheek)."""
        v, eye = self.v, self.left_eye
        x = v[:, 0]
        xa, xb = v[eye.corner_a, 0], v[eye.corner_b, 0]
        y_up, y_lo = eye.margin_y(v, x, "upper"), eye.margin_y(v, x, "lower")
        gap = np.clip(y_up - y_lo, 0.0, None)
        inside_x = smoothstep(xa - 4.0, xa + 2.0, x) * (1.0 - smoothstep(xb - 2.0, xb + 4.0, x))
        near_z = np.exp(-0.5 * ((v[:, 2] - self.eye_center[2]) / 10.0) ** 2)
        above = v[:, 1] - y_up
        below = y_lo - v[:, 1]
        w_up = np.where(above >= -0.3, np.exp(-0.5 * (np.clip(above, 0, None) / 5.0) ** 2), 0.0)
        w_lo = np.where(below >= -0.3, np.exp(-0.5 * (np.clip(below, 0, None) / 4.0) ** 2), 0.0)
        w_up = self.face_only(w_up * inside_x * near_z)
        w_lo = self.face_only(w_lo * inside_x * near_z)
        w_up[eye.lower] = 0.0
        w_lo[eye.upper] = 0.0
        w_up[[eye.corner_a, eye.corner_b]] = 0.0
        w_lo[[eye.corner_a, eye.corner_b]] = 0.0
        return w_up, w_lo, gap

    def jaw_weight(self) -> np.ndarray:
        """(V,) how much each vertex follows the jaw: 1 on the chin and lower lip,
        0 on the upper lip and above; the seam is sharp between the lips and
        widens into a soft band across the cheeks toward the ears."""
        v = self.v
        x, y = v[:, 0], v[:, 1]
        y_seam = self.mouth_center[1] + 0.55 * np.clip(np.abs(x) - 22.0, 0.0, None)
        band = 3.0 + 0.6 * np.clip(np.abs(x) - 22.0, 0.0, None)
        w = 1.0 - smoothstep(y_seam - band, y_seam + 0.5 * band, y)
        w[self.lower_lip_ring] = 1.0
        w[self.upper_lip_ring] = 0.0
        return self.face_only(w)

    def mirror_delta(self, delta: np.ndarray) -> np.ndarray:
        """The right-side twin of a left-side displacement field (V, 3)."""
        return delta[self.mirror] * np.array([-1.0, 1.0, 1.0])

    def symmetrize(self, delta: np.ndarray) -> np.ndarray:
        """Exactly left/right symmetric version of a displacement field."""
        return 0.5 * (delta + self.mirror_delta(delta))

    def left_half(self, soft: float = 4.0) -> np.ndarray:
        """(V,) 1 on the subject's left (+x), 0 on the right, soft across the midline."""
        return smoothstep(-soft, soft, self.v[:, 0])


def smoothstep(e0, e1, x):
    t = np.clip((np.asarray(x, float) - e0) / (np.asarray(e1, float) - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def rotate_about(points: np.ndarray, pivot, axis: str, angles: np.ndarray) -> np.ndarray:
    """Rotate each point about `pivot` around a coordinate axis by its own angle (rad)."""
    p = points - np.asarray(pivot, float)
    c, s = np.cos(angles), np.sin(angles)
    out = p.copy()
    if axis == "x":
        out[:, 1] = c * p[:, 1] - s * p[:, 2]
        out[:, 2] = s * p[:, 1] + c * p[:, 2]
    elif axis == "y":
        out[:, 0] = c * p[:, 0] + s * p[:, 2]
        out[:, 2] = -s * p[:, 0] + c * p[:, 2]
    else:
        out[:, 0] = c * p[:, 0] - s * p[:, 1]
        out[:, 1] = s * p[:, 0] + c * p[:, 1]
    return out + np.asarray(pivot, float)
