"""A small software z-buffer renderer (pure numpy) for previewing face meshes.

Coordinate frame of the input (millimetres): right-handed, +x toward the
subject's left (image right when looking at the face), +y up, +z out of the
face toward the viewer.  The view is orthographic and looks down -z after the
camera rotation, so "larger view z" means "nearer the viewer".

Pipeline:
  1. rotate vertices about the framing pivot (yaw about +y, then pitch about +x)
     and map view x/y to pixel coordinates with the framing's mm-per-pixel;
  2. rasterize: each triangle is cut into per-row spans whose covered pixel
     centres are solved from the edge functions, spans are expanded into
     fragments in large vectorized chunks, and a z-buffer keeps the nearest
     fragment per pixel;
  3. shade each covered pixel once: two-sided normals (flat or interpolated
     per-vertex), Lambert key light + soft headlight + Blinn-Phong specular.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import FaceLangError, ShapeError

#: default albedo (RGB in [0, 1]) used when no colours are given
DEFAULT_SKIN = (0.87, 0.71, 0.61)
#: default key-light direction in VIEW space (toward the light): upper left, front
DEFAULT_LIGHT_DIR = (-0.4, 0.5, 1.0)

# fragments expanded per vectorized chunk (bounds temporary memory)
_CHUNK_FRAGMENTS = 1 << 20
# tolerance on barycentric weights so shared edges leave no cracks
_EDGE_EPS = 1e-9


@dataclass(frozen=True)
class Framing:
    """Where the camera looks and how far it is zoomed.

    pivot: 3-D point (mm, model space) the view rotates around.
    center: view-space (x, y) in mm (relative to the pivot, after rotation)
        that lands on the image centre.
    mm_per_pixel: size of one pixel in mm.
    """

    pivot: tuple[float, float, float]
    center: tuple[float, float]
    mm_per_pixel: float


@dataclass
class Camera:
    """Orthographic camera.

    yaw: degrees about +y; positive yaw turns the mesh so that its +z front
        moves toward image right (the subject turns toward their left).
    pitch: degrees about +x, applied after yaw; positive pitch moves the +z
        front downward (the view looks at the face from above).
    width, height: image size in pixels.
    framing: fixed `Framing`; if None, `render_mesh` fits one to the mesh it
        draws.  Fit once (e.g. `Camera().fit(all_frames)`) and reuse the
        camera so that every frame of a video has the same framing.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    width: int = 512
    height: int = 512
    framing: Framing | None = None

    def __post_init__(self) -> None:
        if int(self.width) < 1 or int(self.height) < 1:
            raise ShapeError(f"Camera size must be positive, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)

    def rotation(self) -> np.ndarray:
        """(3, 3) matrix R with view = R @ (v - pivot)."""
        cy, sy = np.cos(np.radians(self.yaw)), np.sin(np.radians(self.yaw))
        cp, sp = np.cos(np.radians(self.pitch)), np.sin(np.radians(self.pitch))
        r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
        r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        return r_pitch @ r_yaw

    def fit(self, vertices: np.ndarray, margin: float = 0.08) -> "Camera":
        """Return a copy of this camera whose framing makes `vertices` fill
        the image, leaving `margin` (fraction of width/height) on each side.

        vertices: (V, 3) or (T, V, 3); pass all frames of a video to get one
        framing that contains every frame.
        """
        pts = np.asarray(vertices, dtype=np.float64)
        if pts.ndim < 2 or pts.shape[-1] != 3 or pts.size == 0:
            raise ShapeError(f"Camera.fit expects vertices of shape (V, 3) or (T, V, 3), "
                             f"got {pts.shape}")
        pts = pts.reshape(-1, 3)  # (N, 3)
        _check_finite(pts, "vertices")
        if not 0.0 <= margin < 0.5:
            raise FaceLangError(f"margin must be in [0, 0.5), got {margin}")
        pivot = 0.5 * (pts.min(0) + pts.max(0))  # (3,) bounding-box centre
        view = (pts - pivot) @ self.rotation().T  # (N, 3)
        lo, hi = view[:, :2].min(0), view[:, :2].max(0)  # (2,)
        ext = (hi - lo) / (1.0 - 2.0 * margin)
        mmpp = max(ext[0] / self.width, ext[1] / self.height)
        framing = Framing(pivot=tuple(float(c) for c in pivot),
                          center=tuple(float(c) for c in 0.5 * (lo + hi)),
                          mm_per_pixel=float(mmpp) if mmpp > 0.0 else 1.0)  # 1.0: single point
        return dataclasses.replace(self, framing=framing)

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) model-space mm -> (V, 3) [pixel x, pixel y, view depth].

        Pixel (i, j) covers x in [i, i+1), y in [j, j+1); y grows downward.
        Depth is view z in mm (larger = nearer).  Requires a framing.
        """
        if self.framing is None:
            raise FaceLangError("Camera has no framing; call camera.fit(vertices) first")
        f = self.framing
        view = (np.asarray(vertices, np.float64) - np.asarray(f.pivot)) @ self.rotation().T
        scale = np.array([1.0, -1.0]) / f.mm_per_pixel  # image y grows downward
        xy = 0.5 * np.array([self.width, self.height]) + (view[:, :2] - f.center) * scale
        return np.concatenate([xy, view[:, 2:]], axis=1)  # (V, 3)


# ----------------------------------------------------------------- validation
def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a).all(axis=-1)).ravel() if a.ndim > 1 else []
        where = f" (first bad rows: {bad[:5].tolist()})" if len(bad) else ""
        raise ShapeError(f"{name} contain NaN or infinite values{where}")


def _check_mesh(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices)
    if v.ndim != 2 or v.shape[1] != 3 or not np.issubdtype(v.dtype, np.number):
        raise ShapeError(f"vertices must have shape (V, 3), got {v.shape} ({v.dtype})")
    v = v.astype(np.float64)
    _check_finite(v, "vertices")
    t = np.asarray(triangles)
    if t.size == 0:
        t = t.reshape(0, 3)
    if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.integer):
        raise ShapeError(f"triangles must be an integer array of shape (F, 3), "
                         f"got {t.shape} ({t.dtype})")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= len(v)):
        raise ShapeError(f"triangle indices must be in [0, {len(v)}), "
                         f"got range [{t.min()}, {t.max()}]")
    return v, t


def _check_colors(c, n: int, name: str, shape: str) -> np.ndarray | None:
    if c is None:
        return None
    c = np.asarray(c)
    if c.shape != (n, 3) or not np.issubdtype(c.dtype, np.number):
        raise ShapeError(f"{name} must have shape {shape} = ({n}, 3) RGB in [0, 1], "
                         f"got {c.shape} ({c.dtype})")
    _check_finite(c, name)
    return np.clip(c.astype(np.float64), 0.0, 1.0)


# ------------------------------------------------------------------- geometry
def _face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F, 3) un-normalised face normals (length = 2 * area), winding order."""
    p0, p1, p2 = (vertices[triangles[:, k]] for k in range(3))  # (F, 3) each
    return np.cross(p1 - p0, p2 - p0)


def _normalize(n: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis; zero-length rows become (0, 0, 1)."""
    length = np.sqrt(np.einsum("...c,...c->...", n, n))[..., None]
    bad = length[..., 0] < 1e-12
    out = n / np.where(bad[..., None], 1.0, length)
    out[bad] = (0.0, 0.0, 1.0)
    return out


def _scatter_add(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """(N, 3) values summed into (n, 3) rows by (N,) index."""
    return np.stack([np.bincount(index, values[:, c], minlength=n) for c in range(3)], axis=1)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) unit per-vertex normals: area-weighted sum of incident face
    normals.  Where the winding is consistent this is the usual normal on
    the winding's side.  Triangles wound against their neighbours do not
    cancel: each face normal is flipped to agree with the vertex's provisional
    normal before summing (two refinement passes).  Vertices with no incident
    non-degenerate triangle get (0, 0, 1)."""
    return _vertex_normals(*_check_mesh(vertices, triangles))


def _vertex_normals(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    n_v = len(v)
    fn = np.repeat(_face_normals(v, t), 3, axis=0)  # (3F, 3) one row per corner
    corner = t.reshape(-1)  # (3F,)
    ref = _scatter_add(fn, corner, n_v)  # (V, 3) plain sum, follows winding
    # where opposite windings (nearly) cancel, start from one incident face
    total = np.bincount(corner, np.linalg.norm(fn, axis=1), minlength=n_v)  # (V,)
    weak = np.linalg.norm(ref, axis=1) < 0.25 * total
    if weak.any():
        some_face = np.zeros_like(v)
        some_face[corner] = fn  # any one incident face per vertex
        ref[weak] = some_face[weak]
    for _ in range(2):
        sign = np.where(np.einsum("nc,nc->n", fn, ref[corner]) < 0.0, -1.0, 1.0)
        ref = _scatter_add(fn * sign[:, None], corner, n_v)
    return _normalize(ref)


# ---------------------------------------------------------------- rasterizer
def rasterize(screen: np.ndarray, triangles: np.ndarray, width: int, height: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterization of projected triangles (see `Camera.project`).

    screen: (V, 3) [pixel x, pixel y, depth] with larger depth = nearer.
    Returns tri_id (H, W) int64 (-1 where empty), bary (H, W, 3) barycentric
    weights of the triangle's corners (0 where empty) and depth (H, W)
    (-inf where empty).  Pixel centres (i + 0.5, j + 0.5) are sampled; on
    equal depth the triangle listed first wins; degenerate ones are skipped.
    """
    screen = np.asarray(screen, np.float64)
    _check_finite(screen, "screen coordinates")
    pix, tri, bary, depth = _rasterize_flat(screen, np.asarray(triangles, np.int64), width, height)
    tri_id = np.full(height * width, -1, dtype=np.int64)
    weights = np.zeros((height * width, 3))
    zbuf = np.full(height * width, -np.inf)
    tri_id[pix], weights[pix], zbuf[pix] = tri, bary, depth
    return tri_id.reshape(height, width), weights.reshape(height, width, 3), zbuf.reshape(height, width)


def _rasterize_flat(screen: np.ndarray, triangles: np.ndarray, width: int, height: int):
    """Core of `rasterize`, returning only covered pixels:
    (pix (P,) flat index y * width + x, tri (P,), bary (P, 3), depth (P,)).

    Method: every triangle is cut into one span per pixel row of its
    bounding box; the covered x-range of each span is solved from the three
    edge functions, spans are expanded into fragments in vectorized chunks,
    and each chunk is merged into a z-buffer with `np.maximum.at`.
    """
    n_pix = width * height
    nothing = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0))
    if len(triangles) == 0:
        return nothing
    p = screen[triangles]  # (F, 3 corners, 3)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]  # (F, 3) each
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # pixel columns / rows whose centre (i + 0.5) lies inside the bounding box
    x0 = np.clip(np.ceil(x.min(1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(x.max(1) - 0.5), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(y.min(1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(y.max(1) - 0.5), -1, height - 1).astype(np.int64)
    scale = np.abs(x).max(1) + np.abs(y).max(1) + 1.0
    keep = (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-9 * scale * scale)
    ids = np.nonzero(keep)[0]  # (K,) triangles to draw, in draw order
    if len(ids) == 0:
        return nothing

    # barycentric weights and depth are affine in the pixel centre (cx, cy):
    #   w_e = a[:, e] * cx + b[:, e] * cy + c[:, e],   w_2 = 1 - w_0 - w_1
    inv = 1.0 / area[ids]
    xs, ys, zs = x[ids], y[ids], z[ids]  # (K, 3)
    a, b, c = (np.empty((len(ids), 3)) for _ in range(3))
    for e, (i, j) in enumerate(((1, 2), (2, 0))):  # w_e: edge opposite corner e
        a[:, e] = (ys[:, i] - ys[:, j]) * inv
        b[:, e] = (xs[:, j] - xs[:, i]) * inv
        c[:, e] = (xs[:, i] * ys[:, j] - xs[:, j] * ys[:, i]) * inv
    a[:, 2], b[:, 2], c[:, 2] = -a[:, 0] - a[:, 1], -b[:, 0] - b[:, 1], 1.0 - c[:, 0] - c[:, 1]
    az, bz, cz = (np.sum(m * zs, axis=1) for m in (a, b, c))  # (K,) depth plane

    # one span per (triangle, bounding-box row)
    rows = y1[ids] - y0[ids] + 1  # (K,)
    span_tri = np.repeat(np.arange(len(ids)), rows)  # (S,)
    row = np.arange(len(span_tri)) - np.repeat(np.cumsum(rows) - rows, rows) + y0[ids][span_tri]
    cy = row + 0.5
    sa = a[span_tri]  # (S, 3)
    r = b[span_tri] * cy[:, None] + c[span_tri]  # (S, 3) edge values at x = 0
    # solve a * x + r >= -eps for x on each edge
    safe = np.where(sa == 0.0, 1.0, sa)
    bound = (-_EDGE_EPS - r) / safe
    lo = np.where(sa > 0.0, bound, -np.inf).max(1)  # (S,)
    hi = np.where(sa < 0.0, bound, np.inf).min(1)
    flat_ok = np.all((sa != 0.0) | (r >= -_EDGE_EPS), axis=1)  # edges parallel to the row
    xs_ = np.maximum(np.ceil(np.maximum(lo, -1.0) - 0.5), x0[ids][span_tri]).astype(np.int64)
    xe_ = np.minimum(np.floor(np.minimum(hi, width + 1.0) - 0.5), x1[ids][span_tri]).astype(np.int64)
    n_frag = np.where(flat_ok, np.maximum(xe_ - xs_ + 1, 0), 0)  # (S,)
    live = np.nonzero(n_frag)[0]  # drop empty spans
    span_tri, row, xs_, n_frag, sa, r = (q[live] for q in (span_tri, row, xs_, n_frag, sa, r))
    rz, sz = bz[span_tri] * (row + 0.5) + cz[span_tri], az[span_tri]  # (S,) depth plane per row

    # chunks of consecutive spans with about _CHUNK_FRAGMENTS fragments each
    ends = np.cumsum(n_frag)
    cuts = np.searchsorted(ends, np.arange(_CHUNK_FRAGMENTS, ends[-1] if len(ends) else 0,
                                           _CHUNK_FRAGMENTS), side="left")
    bounds = np.unique(np.concatenate([[0], cuts + 1, [len(live)]]).clip(0, len(live)))
    zbuf = np.full(n_pix, -np.inf)
    sbuf = np.full(n_pix, -1, dtype=np.int64)  # winning span per pixel
    row_base = row * width
    for s, e in zip(bounds[:-1], bounds[1:]):
        cnt = n_frag[s:e]
        fs = np.repeat(np.arange(s, e), cnt)  # (M,) span of each fragment
        px = np.arange(len(fs)) - np.repeat(np.cumsum(cnt) - cnt - xs_[s:e], cnt)  # (M,)
        pix = row_base[fs] + px
        depth = sz[fs] * (px + 0.5) + rz[fs]
        old = zbuf[pix]
        np.maximum.at(zbuf, pix, depth)
        win = np.nonzero((depth == zbuf[pix]) & (depth > old))[0]
        if len(win) == 0:
            continue
        # ties inside the chunk: the earliest fragment (= earliest triangle) wins
        first = np.full(n_pix, len(fs), dtype=np.int64)
        np.minimum.at(first, pix[win], win)
        win = win[first[pix[win]] == win]  # one fragment per pixel
        sbuf[pix[win]] = fs[win]

    pix = np.flatnonzero(sbuf >= 0)  # (P,)
    span = sbuf[pix]
    cx = (pix % width) + 0.5
    bary = np.empty((len(pix), 3))
    bary[:, :2] = sa[span, :2] * cx[:, None] + r[span, :2]
    bary[:, 2] = 1.0 - bary[:, 0] - bary[:, 1]
    return pix, ids[span_tri[span]], bary, zbuf[pix]


# ------------------------------------------------------------------ renderer
def _shade(n: np.ndarray, albedo: np.ndarray, light: np.ndarray, ambient: float,
           diffuse: float, headlight: float, specular: float, shininess: float) -> np.ndarray:
    """Lambert key light + headlight + Blinn-Phong highlight.

    n: (P, 3) unit view-space normals facing the viewer; albedo: (P, 3) or
    (1, 3) RGB; light: (3,) unit vector.  Returns (P, 3) RGB (not clipped)."""
    half = light + np.array([0.0, 0.0, 1.0])  # viewer looks down -z
    half /= max(np.linalg.norm(half), 1e-12)
    lam = np.clip(n @ light, 0.0, None)  # (P,)
    head = np.clip(n[:, 2], 0.0, None)  # soft headlight from the viewer
    spec = np.where(lam > 0.0, np.clip(n @ half, 0.0, None) ** shininess, 0.0)
    lit = albedo * (ambient + diffuse * lam + headlight * head)[:, None]
    return lit + (specular * spec)[:, None]


def render_mesh(vertices: np.ndarray, triangles: np.ndarray, *,
                camera: Camera | None = None,
                vertex_colors: np.ndarray | None = None,
                face_colors: np.ndarray | None = None,
                background=(0.12, 0.12, 0.14),
                light_dir=DEFAULT_LIGHT_DIR,
                shading: str = "smooth",
                ambient: float = 0.22,
                diffuse: float = 0.62,
                headlight: float = 0.2,
                specular: float = 0.15,
                shininess: float = 32.0,
                supersample: int = 1) -> np.ndarray:
    """Render a triangle mesh to an (H, W, 3) uint8 BGR image (OpenCV order).

    vertices: (V, 3) mm; triangles: (F, 3) integer indices, either winding
    (both sides are drawn and lit; normals are flipped toward the viewer).
    camera: view and image size; without a framing one is fitted to this mesh.
    vertex_colors: (V, 3) RGB in [0, 1], interpolated across triangles;
    face_colors: (F, 3) RGB per triangle (give at most one of the two);
    neither: `DEFAULT_SKIN`.  background: RGB in [0, 1].
    light_dir: key-light direction in view space (+x image right, +y up,
    +z toward the viewer); the light moves with the camera.
    shading: "smooth" (interpolated vertex normals) or "flat" (face normals).
    Lighting: albedo * (ambient + diffuse * max(n.l, 0) + headlight *
    max(n.v, 0)) + specular * max(n.h, 0) ** shininess (Blinn-Phong, white).
    supersample: render at k times the size and downsample (anti-aliasing).
    """
    v, t = _check_mesh(vertices, triangles)
    if shading not in ("smooth", "flat"):
        raise FaceLangError(f'shading must be "smooth" or "flat", got {shading!r}')
    if vertex_colors is not None and face_colors is not None:
        raise FaceLangError("pass vertex_colors or face_colors, not both")
    vcol = _check_colors(vertex_colors, len(v), "vertex_colors", "(V, 3)")
    fcol = _check_colors(face_colors, len(t), "face_colors", "(F, 3)")
    bg = np.asarray(background, np.float64)
    light = np.asarray(light_dir, np.float64)
    if bg.shape != (3,) or light.shape != (3,):
        raise ShapeError(f"background and light_dir must have shape (3,), "
                         f"got {bg.shape} and {light.shape}")
    if not (np.all(np.isfinite(light)) and np.linalg.norm(light) > 1e-12):
        raise FaceLangError(f"light_dir must be a finite non-zero 3-vector, got {light_dir}")
    ss = int(supersample)
    if ss < 1:
        raise FaceLangError(f"supersample must be >= 1, got {supersample}")

    cam = camera if camera is not None else Camera()
    if cam.framing is None:
        cam = cam.fit(v if len(t) == 0 else v[np.unique(t)])
    f = cam.framing
    width, height = cam.width * ss, cam.height * ss
    big = dataclasses.replace(cam, width=width, height=height,
                              framing=dataclasses.replace(f, mm_per_pixel=f.mm_per_pixel / ss))

    pix, tid, w, _ = _rasterize_flat(big.project(v), t, width, height)  # (P,), (P,), (P, 3)
    out = np.empty((height, width, 3), np.uint8)
    out[:] = np.round(np.clip(bg[::-1], 0.0, 1.0) * 255.0).astype(np.uint8)  # BGR
    if len(pix):
        rot = cam.rotation()
        fn_all = _face_normals(v, t) @ rot.T  # (F, 3) view space, winding side
        face_n = _normalize(fn_all[tid])  # (P, 3)
        if shading == "smooth":
            cn = (_vertex_normals(v, t) @ rot.T)[t]  # (F, 3 corners, 3)
            # orient each corner normal to its triangle's side (any winding)
            cn *= np.where(np.einsum("fkc,fc->fk", cn, fn_all) < 0.0, -1.0, 1.0)[..., None]
            n = _normalize(np.einsum("pk,pkc->pc", w, cn[tid]))
        else:
            n = face_n
        # two-sided lighting: whichever side faces the viewer gets the light
        n = n * np.where(face_n[:, 2] < 0.0, -1.0, 1.0)[:, None]

        if fcol is not None:
            albedo = fcol[tid]
        elif vcol is not None:
            albedo = np.einsum("pk,pkc->pc", w, vcol[t[tid]])
        else:
            albedo = np.asarray(DEFAULT_SKIN)[None, :]
        rgb = _shade(n, albedo, light / np.linalg.norm(light), ambient, diffuse, headlight, specular, shininess)
        out.reshape(-1, 3)[pix] = np.clip(rgb[:, ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)

    if ss > 1:
        out = cv2.resize(out, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out)
