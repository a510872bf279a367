"""`pyfacelang eval fit`: fit quality on real clips and synthetic sequences.

- residual_iod: mean 2-D distance between the fitted and the MediaPipe
  landmarks (the fit itself, before output smoothing), divided by the
  inter-ocular distance (outer eye corners 33-263), averaged over frames.
- jitter_ratio: jitter of the output landmarks over that of the raw MediaPipe
  landmarks, where jitter is the mean 2-D distance of each frame's landmarks
  from the midpoint of its two neighbours (the part of the frame-to-frame
  motion that is not smooth movement). Lower is smoother.
- recovery_err: mean absolute error of the recovered ARKit weights on
  synthetic sequences with known parameters (1 px landmark noise), and
  recovery_rot_deg the mean head-rotation error in degrees.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .fitter import FitConfig, fit_sequence
from .synthetic import synthetic_sequence

EYES = (33, 263)


def jitter(lmk: np.ndarray) -> float:
    """Mean distance of each frame's 2-D landmarks from the midpoint of its neighbours."""
    x = lmk[..., :2]
    return float(np.linalg.norm(0.5 * (x[2:] + x[:-2]) - x[1:-1], axis=-1).mean())


def fit_landmarks(landmarks: np.ndarray, fps: float, config: FitConfig | None = None):
    """Offline fit (see `fit_sequence`) of (T, 478, 3) landmarks (NaN rows = no face)."""
    return fit_sequence([None if np.isnan(lmk).any() else lmk for lmk in landmarks], fps, config)


def clip_metrics(landmarks: np.ndarray, results) -> dict:
    valid = np.array([r.valid for r in results])
    lm = landmarks[valid]
    out = np.stack([r.landmarks for r in results])[valid]
    iod = np.linalg.norm(lm[:, EYES[0], :2] - lm[:, EYES[1], :2], axis=1)
    res = np.array([r.residual for r in results])[valid]
    return {"frames": int(len(results)), "face_found": float(valid.mean()),
            "residual_iod": float((res / iod).mean()) if len(res) else float("nan"),
            "jitter_ratio": jitter(out) / jitter(lm) if len(lm) > 2 else float("nan")}


def track_clip_landmarks(path: Path):
    """MediaPipe landmarks of every frame of a clip: (T, 478, 3) (NaN rows: no face), fps."""
    from .landmarks import LandmarkDetector
    from .source import open_source

    rows = []
    with open_source(str(path)) as src, LandmarkDetector() as det:
        fps = src.fps
        for frame in src:
            lmk = det.detect(frame.image)
            rows.append(np.full((478, 3), np.nan, np.float32) if lmk is None else lmk)
    return np.stack(rows), fps


def recovery(rig, *, seeds=(0, 1, 2, 3), T: int = 90, config: FitConfig | None = None) -> dict:
    ex, rot = rig.slices["expression"], rig.slices["rotation"]
    w_err, r_err = [], []
    for seed in seeds:
        seq = synthetic_sequence(rig, T, seed=seed)
        cfg = config or FitConfig()
        from dataclasses import replace

        from .filters import OneEuroConfig

        res = fit_landmarks(seq["landmarks"], 30.0, replace(cfg, filter=OneEuroConfig(enabled=False)))
        P = np.stack([r.params for r in res])
        w_err.append(np.abs(P[:, ex] - seq["params"][:, ex]).mean())
        r_err.append(np.degrees(np.abs(P[:, rot] - seq["params"][:, rot])).mean())
    return {"recovery_err": float(np.mean(w_err)), "recovery_rot_deg": float(np.mean(r_err))}


def default_media_dir() -> Path | None:
    here = Path(__file__).resolve().parents[2]  # repository root when run from a checkout
    for cand in (Path.cwd() / ".." / "shared" / "media", here / ".." / "shared" / "media"):
        if cand.is_dir():
            return cand.resolve()
    return None


def eval_fit(media: Path | None, *, max_frames: int | None = None, config: FitConfig | None = None,
             log=print) -> dict:
    from ..face import load_model

    rig = load_model("builtin")
    figures: dict = {}
    clips = sorted(media.glob("*.mp4")) if media else []
    per_clip = {}
    for clip in clips:
        lmk, fps = track_clip_landmarks(clip)
        if max_frames:
            lmk = lmk[:max_frames]
        per_clip[clip.stem] = clip_metrics(lmk, fit_landmarks(lmk, fps, config))
        m = per_clip[clip.stem]
        log(f"  {clip.stem:32s} frames {m['frames']:4d}  face {m['face_found']:.0%}  "
            f"residual_iod {m['residual_iod']:.4f}  jitter_ratio {m['jitter_ratio']:.3f}")
    if per_clip:
        figures["residual_iod"] = float(np.mean([m["residual_iod"] for m in per_clip.values()]))
        figures["jitter_ratio"] = float(np.mean([m["jitter_ratio"] for m in per_clip.values()]))
        figures["face_found"] = float(np.mean([m["face_found"] for m in per_clip.values()]))
        figures["real_clips"] = per_clip
    else:
        log("  (no real clips found: pass --media DIR; real-clip figures omitted)")
    figures.update(recovery(rig, config=config))
    return figures
