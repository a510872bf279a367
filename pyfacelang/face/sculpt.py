"""Procedural ARKit-52 blendshapes for the built-in rig.

Each shape is a displacement field (478, 3) in mm at weight 1, sculpted from
region masks with smooth falloff (see `regions.py`) so that it does what its
ARKit name says. Sided shapes are sculpted once for the subject's left (+x)
and mirrored exactly for the right. Magnitudes follow typical maximal human
motion at weight 1 (e.g. jawOpen drops the chin ~25 mm; a blink closes the
~11 mm eye opening).

The template has no tongue (MediaPipe's topology ends at the inner lip
contour): `tongueOut` is approximated by what a protruding tongue does to the
visible mesh: the mouth opens slightly and the lower lip is pushed forward
and down at its centre.
"""
from __future__ import annotations

import numpy as np

from .arkit import ARKIT_52
from .regions import LEFT_IRIS, Regions, rotate_about, smoothstep

X, Y, Z = np.eye(3)


def _vec(w: np.ndarray, d) -> np.ndarray:
    """Per-vertex weight (V,) times a displacement vector (3,) -> (V, 3)."""
    return w[:, None] * np.asarray(d, float)[None, :]


class Sculptor:
    """Builds every blendshape from one template; `build()` -> (52, V, 3)."""

    def __init__(self, regions: Regions):
        self.r = regions
        self.v = regions.v
        self.w_up, self.w_lo, self.gap = regions.lid_weights()
        self.w_jaw = regions.jaw_weight()
        mc = regions.v[regions.mouth_corner]
        self.corner = mc
        # Mouth area: lips and the skin around them.
        self.w_mouth = regions.face_only(regions.gauss(regions.mouth_center + [0, 0, 4], (24, 10, 12)))
        self.w_corner = regions.face_only(regions.gauss(mc, (9, 8, 10)))
        self.lip_side = regions.left_half(6.0)
        # Lips: ~1 on and between the outer and inner lip contours, falling off
        # over a few mm; split into upper and lower by the jaw seam.
        lip_ids = np.concatenate([regions.upper_lip_ring, regions.lower_lip_ring,
                                  [regions.outer_lips.corner_a, regions.outer_lips.corner_b]])
        core = np.zeros(len(self.v))
        for i in lip_ids:
            core = np.maximum(core, regions.gauss(self.v[i], (4.0, 3.0, 5.0)))
        core = regions.face_only(core)
        self.upper_lip = core * (1.0 - self.w_jaw)
        self.lower_lip = core * self.w_jaw

    # ------------------------------------------------------------------ eyes
    def eyeBlinkLeft(self):
        # The upper lid slides down over the opening; the lower lid rises a little.
        d = _vec(self.w_up, -Y) * (0.85 * self.gap)[:, None]
        d += _vec(self.w_lo, Y) * (0.15 * self.gap)[:, None]
        d += _vec(self.w_up, Z) * 1.5 * np.sin(np.pi * np.clip(self.gap / (self.gap.max() + 1e-9), 0, 1))[:, None]
        return d

    def eyeSquintLeft(self):
        d = _vec(self.w_lo, Y) * (0.35 * self.gap)[:, None]
        d += _vec(self.w_up, -Y) * (0.12 * self.gap)[:, None]
        under = self.r.face_only(self.r.gauss(self.r.eye_center + [2, -14, 4], (12, 6, 10)))
        return d + _vec(under, [0, 2.5, 1.0])

    def eyeWideLeft(self):
        d = _vec(self.w_up, Y) * (0.40 * self.gap)[:, None]
        d += _vec(self.w_lo, -Y) * (0.12 * self.gap)[:, None]
        brow = self.r.face_only(self.r.gauss(self.r.v[self.r.left_brow].mean(0), (14, 6, 12)))
        return d + _vec(brow, [0, 1.5, 0])

    def _gaze(self, axis: str, angle: float, lid_follow: float):
        """Rotate the left iris about the eyeball centre; lids follow vertical gaze."""
        d = np.zeros_like(self.v)
        centre = self.r.eye_center - np.array([0.0, 0.0, 12.0])  # eyeball radius ~12 mm
        ids = list(LEFT_IRIS)
        d[ids] = rotate_about(self.v[ids], centre, axis, np.full(len(ids), angle)) - self.v[ids]
        if lid_follow:
            d += _vec(self.w_up, Y) * (lid_follow * self.gap)[:, None]
        return d

    def eyeLookOutLeft(self):  # toward the subject's left (+x)
        return self._gaze("y", np.radians(30), 0.0)

    def eyeLookInLeft(self):  # toward the nose (-x)
        return self._gaze("y", -np.radians(30), 0.0)

    def eyeLookUpLeft(self):
        return self._gaze("x", -np.radians(25), 0.15)

    def eyeLookDownLeft(self):
        return self._gaze("x", np.radians(25), -0.35)

    # ------------------------------------------------------------------ jaw
    def _jaw_rotation(self, angle: float) -> np.ndarray:
        pivot = np.array([0.0, -25.0, -75.0])  # near the temporomandibular joints
        moved = rotate_about(self.v, pivot, "x", self.w_jaw * angle)
        return moved - self.v

    def jawOpen(self):
        # Rotation about the joints plus the forward/down glide of the condyles,
        # so the chin drops mostly down rather than swinging back.
        return self._jaw_rotation(np.radians(18.0)) + _vec(self.w_jaw, [0, -6.0, 16.0])

    def jawForward(self):
        return _vec(self.w_jaw, [0, 0, 5.0])

    def jawLeft(self):
        return _vec(self.w_jaw, [6.0, 0, 0])

    # ---------------------------------------------------------------- mouth
    def mouthClose(self):
        # Lips meet while the jaw stays open: cancels most of jawOpen on the lips.
        lips = self.r.face_only(self.r.gauss(self.r.mouth_center + [0, -3, 4], (22, 8, 40)))
        open_ = self.jawOpen()
        d = -0.8 * open_ * (lips * self.w_jaw)[:, None]
        d += _vec(lips * (1 - self.w_jaw), [0, -0.2 * abs(open_[14, 1]), 0])
        return d

    def _toward_centre(self, amount: float):
        """Mouth area drawn horizontally toward the midline (corners move most)."""
        v, w = self.v, self.w_mouth
        return _vec(w, -X) * (amount * np.tanh(v[:, 0] / 12.0))[:, None]

    def mouthFunnel(self):
        # Open "O": lips flare forward and apart, corners come in.
        d = self._toward_centre(5.0) + _vec(self.w_mouth, [0, 0, 5.0])
        d += _vec(self.upper_lip, [0, 4.0, 1.5]) + _vec(self.lower_lip, [0, -5.0, 1.5])
        return d

    def mouthPucker(self):
        # Closed kiss: lips pushed forward and together, corners in.
        d = self._toward_centre(10.0) + _vec(self.w_mouth, [0, 0, 7.0])
        d += _vec(self.upper_lip, [0, -0.6, 1.5]) + _vec(self.lower_lip, [0, 0.6, 1.5])
        return d

    def mouthLeft(self):
        return _vec(self.w_mouth, [7.0, 0, 0])

    def mouthSmileLeft(self):
        c = self.w_corner
        cheek = self.r.face_only(self.r.gauss(self.corner + [8, 14, 0], (12, 12, 12)))
        return _vec(c, [4.5, 6.0, -2.5]) + _vec(cheek, [0.5, 2.5, 2.0])

    def mouthFrownLeft(self):
        chin_side = self.r.face_only(self.r.gauss(self.corner + [2, -12, -2], (10, 10, 10)))
        return _vec(self.w_corner, [1.0, -5.5, -1.0]) + _vec(chin_side, [0, -1.5, 0])

    def mouthDimpleLeft(self):
        return _vec(self.w_corner, [3.0, 0.5, -3.5])

    def mouthStretchLeft(self):
        side = self.r.face_only(self.r.gauss(self.corner + [4, -10, 0], (12, 12, 12)))
        return _vec(self.w_corner, [6.0, -2.0, -1.5]) + _vec(side * self.w_jaw, [2.0, -2.5, 0])

    def mouthRollLower(self):
        return _vec(self.lower_lip, [0, 2.0, -4.5])

    def mouthRollUpper(self):
        return _vec(self.upper_lip, [0, -2.0, -4.5])

    def mouthShrugLower(self):
        chin = self.r.face_only(self.r.gauss(self.v[152] + [0, 18, 0], (18, 14, 14)))
        return _vec(self.lower_lip, [0, 2.5, 2.0]) + _vec(chin, [0, 2.0, 1.5])

    def mouthShrugUpper(self):
        return _vec(self.upper_lip, [0, 2.5, 2.0])

    def mouthPressLeft(self):
        side = self.lip_side
        d = _vec(self.upper_lip * side, [0, -2.0, -2.5]) + _vec(self.lower_lip * side, [0, 2.0, -2.5])
        return d + _vec(self.w_corner, [1.5, 0, 0])

    def mouthLowerDownLeft(self):
        return _vec(self.lower_lip * self.lip_side, [0.5, -5.0, 0.5])

    def mouthUpperUpLeft(self):
        nasolabial = self.r.face_only(self.r.gauss(self.corner + [-6, 14, 4], (8, 10, 10)))
        return _vec(self.upper_lip * self.lip_side, [0.5, 5.0, 0.5]) + _vec(nasolabial, [0, 1.5, 0.5])

    # ---------------------------------------------------------------- brows
    def _brow(self, inner_bias: float):
        """Left brow weight, biased toward its inner (inner_bias > 0) or outer end."""
        r, v = self.r, self.v
        b = v[r.left_brow]
        w = np.zeros(len(v))
        for p in b:
            w = np.maximum(w, r.gauss(p, (7, 7, 9)))
        forehead = r.gauss(b.mean(0) + [0, 12, 0], (16, 10, 14))
        w = np.maximum(w, 0.5 * forehead)
        t = (v[:, 0] - b[:, 0].min()) / np.ptp(b[:, 0])  # 0 inner end, 1 outer end
        bias = np.clip(1.0 - inner_bias * (t - 0.5) * 2.0, 0.0, 2.0) / (1 + abs(inner_bias))
        w = w * bias * (v[:, 1] > self.r.left_eye.margin_y(v, v[:, 0], "upper") + 2.0)
        return r.face_only(w)

    def browDownLeft(self):
        w = self._brow(0.6)
        return _vec(w, [-1.5, -5.0, 1.0])

    def browInnerUp(self):
        w = self._brow(1.0)
        return self.r.symmetrize(_vec(w, [0.5, 9.0, 0.5]) * 2.0)

    def browOuterUpLeft(self):
        return _vec(self._brow(-1.0), [0, 6.5, 0])

    # ---------------------------------------------------------- cheeks, nose
    def cheekPuff(self):
        r = self.r
        w = r.face_only(r.gauss(r.mouth_center + [30, 14, -8], (14, 16, 16)))
        d = _vec(w, [8.0, 0, 4.0])
        return r.symmetrize(d) * 2.0

    def cheekSquintLeft(self):
        w = self.r.face_only(self.r.gauss(self.r.eye_center + [4, -20, 2], (14, 10, 12)))
        return _vec(w, [0, 3.5, 1.5]) + _vec(self.w_lo, Y) * (0.12 * self.gap)[:, None]

    def noseSneerLeft(self):
        r = self.r
        alar = r.face_only(r.gauss(r.v[1] + [14, 4, -14], (7, 10, 9)))
        side = r.face_only(r.gauss(r.v[1] + [10, 20, -12], (6, 12, 8)))
        lip = self.upper_lip * self.lip_side
        return _vec(alar, [0.5, 3.5, 0.5]) + _vec(side, [0, 2.0, 0.5]) + _vec(lip, [0, 1.5, 0])

    def tongueOut(self):
        centre = self.r.face_only(self.r.gauss(self.r.mouth_center + [0, -4, 6], (9, 6, 10)))
        return 0.1 * self.jawOpen() + _vec(np.maximum(centre, self.lower_lip * centre ** 0.25) * self.w_jaw,
                                            [0, -5.0, 12.0])

    # ----------------------------------------------------------------- all
    def build(self) -> np.ndarray:
        shapes = []
        for name in ARKIT_52:
            fn = getattr(self, name, None)
            if fn is not None:
                d = fn()
            elif name.endswith("Right") and hasattr(self, name[:-5] + "Left"):
                d = self.r.mirror_delta(getattr(self, name[:-5] + "Left")())
            else:
                raise NotImplementedError(f"no sculpt for {name}")
            shapes.append(d)
        return np.stack(shapes).astype(np.float32)  # (52, V, 3)


def sculpt_blendshapes(regions: Regions) -> np.ndarray:
    """(52, V, 3) ARKit blendshape displacements (mm) in `ARKIT_52` order."""
    return Sculptor(regions).build()


__all__ = ["sculpt_blendshapes", "smoothstep"]
