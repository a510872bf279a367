"""Retargeting between face models with the fitter's solver.

FLAME -> built-in rig: FLAME parameters give FLAME's MediaPipe landmarks
(through its `mediapipe_landmark_embedding`, 105 points); the rig is fitted
to those points (the others weigh nothing) exactly as it is fitted to
tracked landmarks, which yields ARKit-52 weights and head rotation for game
avatars. Units are mm, so the "camera" is the identity (s = 1)."""
from __future__ import annotations

import numpy as np

from ..errors import FaceLangError, ShapeError
from .fitter import FaceFitter, FitConfig, fit_sequence

FLIP = np.array([1.0, -1.0, -1.0])


def retarget_config() -> FitConfig:
    """Fit settings for retargeting: model output is noise-free, so no output
    smoothing and much weaker priors than for tracking (their shrinkage would
    bias the weights; with only the embedded landmarks observed, each shape's
    norm is small): ridge 0.001, sparsity 0.05 mm."""
    from .filters import OneEuroConfig

    return FitConfig(prior=0.001, l1=0.05, filter=OneEuroConfig(enabled=False))


def retarget_flame_to_rig(flame, flame_params, fps: float = 25.0, config: FitConfig | None = None,
                          rig=None) -> tuple[np.ndarray, np.ndarray]:
    """flame: a FlameModel loaded with `landmark_embedding=`; flame_params
    (T, P_flame). Returns (rig params (T, 75) float32, mean 2-D (x, y) landmark
    error per frame (T,) in mm)."""
    from ..face import load_model

    if getattr(flame, "name", None) != "flame":
        raise FaceLangError("retarget_flame_to_rig needs a FLAME model (load_model('flame', ...))")
    mask = np.asarray(flame.landmark_mask, bool)
    if mask.sum() < 20:
        raise FaceLangError("the FLAME model has no MediaPipe landmark embedding: load it with "
                            "landmark_embedding='.../mediapipe_landmark_embedding.npz'")
    P = np.asarray(flame_params, np.float32)
    if P.ndim == 1:
        P = P[None]
    if P.ndim != 2 or P.shape[1] != flame.num_params or len(P) == 0:
        raise ShapeError(f"expected FLAME parameters of shape (T, {flame.num_params}), got {P.shape}")
    if not np.isfinite(P).all():
        raise ShapeError("FLAME parameters contain NaN or infinite values")
    L = np.asarray(flame.landmarks(P), np.float64)                     # (T, 478, 3) mm, NaN where unmapped
    obs = np.where(mask[None, :, None], L * FLIP, 0.0).astype(np.float32)  # "pixels" with s = 1
    rig = rig or load_model("builtin")
    config = config or retarget_config()
    fitter = FaceFitter(rig, config, landmark_mask=mask)
    # identity from FLAME's own neutral: the sequence's mean shape, no expression, no pose
    neutral = np.zeros(flame.num_params, np.float32)
    neutral[flame.slices["identity"]] = P[:, flame.slices["identity"]].mean(0)
    L0 = np.asarray(flame.landmarks(neutral), np.float64)[0]
    fitter.calibrate_neutral(np.where(mask[:, None], L0 * FLIP, 0.0).astype(np.float32))
    results = fit_sequence(list(obs), fps, config, fitter=fitter)
    params = np.stack([r.params for r in results]).astype(np.float32)
    err = np.array([r.residual for r in results], np.float32)
    return params, err
