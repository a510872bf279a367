"""Preview-only geometry for the built-in rig: eyeballs behind the eye holes,
a mouth cavity behind the lips, and vertex colours (skin, lips, brows). Used
by the software renderer; not part of the model's parameters or landmarks."""
from __future__ import annotations

import numpy as np

from .builtin import EYEBALL_RADIUS

SKIN = (0.86, 0.69, 0.58)
LIPS = (0.72, 0.38, 0.38)
BROW = (0.33, 0.24, 0.19)
SCLERA = (0.94, 0.92, 0.88)
IRIS = (0.33, 0.22, 0.13)
PUPIL = (0.04, 0.03, 0.03)
SOCKET = (0.30, 0.14, 0.13)
MOUTH = (0.25, 0.06, 0.06)

_SPHERE_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def unit_sphere(n_lat: int = 14, n_lon: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """UV sphere: (N, 3) unit points and (F, 3) triangles (cached)."""
    key = (n_lat, n_lon)
    if key not in _SPHERE_CACHE:
        pts = [[0.0, 0.0, 1.0]]
        for i in range(1, n_lat):
            th = np.pi * i / n_lat
            for j in range(n_lon):
                ph = 2 * np.pi * j / n_lon
                pts.append([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])
        pts.append([0.0, 0.0, -1.0])
        tris = []
        ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
        for j in range(n_lon):
            tris.append([0, ring(1, j), ring(1, j + 1)])
            tris.append([len(pts) - 1, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
        for i in range(1, n_lat - 1):
            for j in range(n_lon):
                a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
                tris += [[a, c, b], [b, c, d]]
        _SPHERE_CACHE[key] = (np.array(pts), np.array(tris, dtype=np.int32))
    return _SPHERE_CACHE[key]


def _ring(contour) -> np.ndarray:
    """Closed ordered loop from a Contour's upper and lower paths."""
    return np.concatenate([contour.upper, contour.lower[1:-1][::-1]])


def face_colors(rig) -> np.ndarray:
    """(V, 3) RGB per face vertex: skin, with lips and brows tinted (cached on the rig)."""
    cached = getattr(rig, "_preview_colors", None)
    if cached is not None:
        return cached
    r = rig.regions
    v = r.v
    col = np.tile(np.array(SKIN), (len(v), 1))
    outer = _ring(r.outer_lips)
    import cv2

    poly = np.round(v[outer, :2] * 16).astype(np.int32)
    inside = np.array([cv2.pointPolygonTest(poly, (float(p[0] * 16), float(p[1] * 16)), False) >= 0 for p in v])
    col[inside] = LIPS
    brows = np.concatenate([r.left_brow, r.mirror[r.left_brow]])
    col[brows] = BROW
    col[468:] = SKIN
    rig._preview_colors = col
    return col


def build_preview(rig, verts: np.ndarray):
    """verts: (478, 3) unposed rig vertices -> (vertices, triangles, colours)."""
    r = rig.regions
    out_v = [verts]
    out_t = [rig.triangles]
    out_c = [face_colors(rig)]
    n = len(verts)
    sphere, sphere_tris = unit_sphere()
    for iris in ((473, 474, 475, 476, 477), (468, 469, 470, 471, 472)):
        c, ring = verts[iris[0]], verts[list(iris[1:])]
        g = np.cross(ring[2] - ring[0], ring[3] - ring[1])
        g = g / (np.linalg.norm(g) + 1e-9)
        if g[2] < 0:
            g = -g
        centre = c - EYEBALL_RADIUS * g
        r_iris = np.linalg.norm(ring - c, axis=1).mean()
        cos_iris = np.cos(np.arcsin(min(0.95, r_iris / EYEBALL_RADIUS)))
        cos_pupil = np.cos(0.42 * np.arcsin(min(0.95, r_iris / EYEBALL_RADIUS)))
        d = sphere @ np.eye(3)
        dots = d @ g
        col = np.where((dots > cos_pupil)[:, None], PUPIL, np.where((dots > cos_iris)[:, None], IRIS, SCLERA))
        out_v.append(centre + EYEBALL_RADIUS * d)
        out_t.append(sphere_tris + n)
        out_c.append(col)
        n += len(d)
    eye_left = _ring(r.left_eye)
    for loop, depth, colour in ((eye_left, 7.0, SOCKET), (r.mirror[eye_left], 7.0, SOCKET),
                                (_ring(r.inner_lips), 12.0, MOUTH)):
        centre = verts[loop].mean(0) - np.array([0.0, 0.0, depth])
        out_v.append(centre[None])
        m = len(loop)
        out_t.append(np.stack([np.full(m, n), loop, np.roll(loop, -1)], 1).astype(np.int32))
        out_c.append(np.array([colour]))
        n += 1
    colors = np.concatenate(out_c).astype(np.float32)
    # fan triangles share face vertices: give the cavity its colour via a copy of the loop
    verts_all = np.concatenate(out_v)
    tris_all = np.concatenate(out_t).astype(np.int32)
    return _recolour_fans(verts_all, tris_all, colors, len(rig.triangles) + 2 * len(sphere_tris))


def _recolour_fans(verts, tris, colors, first_fan_tri):
    """Fan triangles reuse face-border vertices (skin coloured); duplicate those
    vertices with the fan centre's colour so cavities render dark."""
    fan = tris[first_fan_tri:].copy()
    centre_ids = fan[:, 0]
    extra_v, extra_c = [], []
    base = len(verts)
    for k in range(len(fan)):
        for j in (1, 2):
            extra_v.append(verts[fan[k, j]])
            extra_c.append(colors[centre_ids[k]])
            fan[k, j] = base + len(extra_v) - 1
    tris = np.concatenate([tris[:first_fan_tri], fan])
    return (np.concatenate([verts, np.array(extra_v)]).astype(np.float32), tris.astype(np.int32),
            np.concatenate([colors, np.array(extra_c)]).astype(np.float32))
