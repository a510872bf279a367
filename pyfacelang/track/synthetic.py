"""Synthetic landmark sequences with known rig parameters, for recovery tests,
`eval fit` and `bench fit`: smooth random expression and head-pose
trajectories, projected with a weak-perspective camera like MediaPipe's
output, plus Gaussian landmark noise."""
from __future__ import annotations

import numpy as np

F = np.array([1.0, -1.0, -1.0])


def smooth_curve(rng, T: int, knots: int = 4) -> np.ndarray:
    """(T,) smooth curve in [0, 1] through random knots (cosine easing),
    starting at 0 (sequences start from a resting face, as the fitter's
    calibration expects)."""
    k = rng.uniform(0, 1, knots) * (rng.uniform(0, 1, knots) < 0.6)
    k[0] = 0.0
    x = np.linspace(0, knots - 1, T)
    i = np.minimum(x.astype(int), knots - 2)
    f = 0.5 - 0.5 * np.cos(np.pi * (x - i))
    return k[i] * (1 - f) + k[i + 1] * f


def synthetic_sequence(rig, T: int = 60, *, seed: int = 0, active: int = 6, noise_px: float = 1.0,
                       image_size: int = 512) -> dict:
    """A sequence of T frames: `params` (T, P) ground truth, `landmarks`
    (T, 478, 3) pixels (noisy), `camera` (T, 4)."""
    rng = np.random.default_rng(seed)
    P = np.tile(rig.neutral_params(), (T, 1))
    ex = rig.slices["expression"]
    P[:, rig.slices["identity"]] = rng.normal(0, 0.5, rig.slices["identity"].stop)
    for k in rng.choice(np.arange(ex.start, ex.stop), active, replace=False):
        P[:, k] = smooth_curve(rng, T)
    rot = rig.slices["rotation"]
    for c in range(3):
        P[:, rot.start + c] = 0.25 * (smooth_curve(rng, T) - 0.5)
    s = rng.uniform(1.6, 2.4)
    t = np.array([image_size / 2, image_size / 2, 0.0]) + rng.normal(0, 10, 3)
    V = rig.vertices(P).astype(np.float64)                        # (T, V, 3) mm
    lmk = s * F * V + t + rng.normal(0, noise_px, V.shape)
    cam = np.tile(np.r_[s, t], (T, 1))
    return {"params": P.astype(np.float32), "landmarks": lmk.astype(np.float32), "camera": cam.astype(np.float32)}
