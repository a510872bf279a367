"""Procedural identity basis of the built-in rig: symmetric displacement fields
(mm at weight 1, about one standard deviation of adult variation) for the
proportions that distinguish faces. Weights are unbounded but the fitter keeps
them near 0 with a prior."""
from __future__ import annotations

import numpy as np

from .regions import Regions, smoothstep

IDENTITY_NAMES = (
    "id_face_width", "id_face_height", "id_face_depth", "id_jaw_width", "id_chin_length",
    "id_chin_protrusion", "id_nose_length", "id_nose_width", "id_nose_bridge", "id_eye_spacing",
    "id_eye_size", "id_mouth_width", "id_lip_fullness", "id_brow_height", "id_cheek_fullness",
    "id_forehead_slope",
)


def sculpt_identity(r: Regions) -> np.ndarray:
    """(16, V, 3) identity displacements in `IDENTITY_NAMES` order."""
    v = r.v
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    n = len(v)
    eyes_l = r.gauss(r.eye_center, (11, 8, 12))
    eyes = np.maximum(eyes_l, eyes_l[r.mirror])
    lips = r.gauss(r.mouth_center + [0, 0, 4], (24, 10, 12))
    nose = r.gauss(v[1] + [0, 8, -8], (12, 16, 14))
    chin = smoothstep(-85.0, -115.0, y)
    lower = smoothstep(-45.0, -100.0, y)
    d = {k: np.zeros((n, 3)) for k in IDENTITY_NAMES}
    d["id_face_width"][:, 0] = 0.05 * x
    d["id_face_height"][:, 1] = 0.05 * y
    d["id_face_depth"][:, 2] = 0.07 * (z - z[:468].mean())
    d["id_jaw_width"][:, 0] = 0.08 * x * lower
    d["id_chin_length"][:, 1] = -5.0 * chin
    d["id_chin_protrusion"][:, 2] = 4.0 * chin
    tip = r.gauss(v[1], (10, 9, 12))
    d["id_nose_length"] += tip[:, None] * [0.0, -3.0, 2.0]
    d["id_nose_width"][:, 0] = 0.2 * x * nose * (np.abs(x) < 25)
    bridge = r.gauss(v[168], (6, 14, 8))  # 168: between the eyes
    d["id_nose_bridge"][:, 2] = 3.0 * bridge
    d["id_eye_spacing"][:, 0] = 2.5 * np.sign(x) * eyes
    d["id_eye_size"] = 0.16 * (v - np.where(x[:, None] > 0, r.eye_center, r.eye_center * [-1, 1, 1])) * eyes[:, None]
    d["id_mouth_width"][:, 0] = 0.10 * x * lips
    seam = r.inner_lips.margin_y(v, x, "upper") * 0.5 + r.inner_lips.margin_y(v, x, "lower") * 0.5
    d["id_lip_fullness"][:, 1] = 1.5 * np.tanh((y - seam) / 2.0) * lips
    d["id_lip_fullness"][:, 2] = 1.5 * lips
    brow_l = r.gauss(v[r.left_brow].mean(0), (16, 8, 12))
    d["id_brow_height"][:, 1] = 3.0 * np.maximum(brow_l, brow_l[r.mirror])
    cheek_l = r.gauss(r.mouth_center + [34, 22, -6], (14, 14, 16))
    cheek = np.maximum(cheek_l, cheek_l[r.mirror])
    d["id_cheek_fullness"] += cheek[:, None] * np.stack([np.sign(x) * 3.0, np.zeros(n), np.full(n, 2.0)], 1)
    d["id_forehead_slope"][:, 2] = -0.12 * np.clip(y - 20.0, 0.0, None)
    # The fields are evaluated at the iris points too, so irises follow their eyes.
    out = np.stack([r.symmetrize(d[k]) for k in IDENTITY_NAMES])
    return out.astype(np.float32)  # (16, V, 3)
