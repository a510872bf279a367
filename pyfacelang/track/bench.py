"""`pyfacelang bench fit`: fitter speed, against the baseline a researcher would
write, in one run.

- fit_us_per_frame: the C++ solver on one thread, frames chained (each warm
  started from the previous one), as in live tracking: total time / frames.
- api_us_per_frame: the same through `FaceFitter.process` (filtering and
  bookkeeping included).
- batch_frames_per_s: independent cold-started frames on all cores (corpus
  building).
- baseline_us_per_frame: the same objective (weights, prior, bounds) in
  PyTorch, solved per frame by autograd + Adam from the same warm start until
  its loss is within 1% of our solver's loss for that frame; one thread.
- speedup = baseline_us_per_frame / fit_us_per_frame.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import _kernels
from .fitter import FaceFitter, FitConfig, rigid_init


def _objective(fm, obs, w, d, s, t, R0):
    from .._reference import FLIP
    from ..face.rotation import axis_angle_to_matrix

    R = axis_angle_to_matrix(d) @ R0
    X = fm.tmpl + torch.einsum("k,kvc->vc", w, fm.basis)
    p = torch.tensor(fm.pivot)
    Y = (X - p) @ R.T + p
    r = s * torch.tensor(FLIP) * Y + t - obs
    return 0.5 * (fm.weights[:, None] * r * r).sum() + 0.5 * (fm.prior * w * w).sum() + (fm.l1 * w).sum()


def adam_frame(fm, obs, init, target: float, max_steps: int = 3000) -> tuple[int, float]:
    """Adam from `init` until loss <= 1.01 * target. Returns (steps, loss)."""
    w0, R0, s0, t0 = init
    w = w0.clone().requires_grad_(True)
    d = torch.zeros(3, requires_grad=True)
    s = s0.clone().requires_grad_(True)
    t = t0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [w], "lr": 0.02}, {"params": [d], "lr": 0.003},
                            {"params": [s], "lr": 0.003}, {"params": [t], "lr": 0.3}])
    loss = float("inf")
    for step in range(1, max_steps + 1):
        opt.zero_grad()
        L = _objective(fm, obs, w, d, s, t, R0)
        loss = L.item()
        if loss <= 1.01 * target:
            return step, loss
        L.backward()
        opt.step()
        with torch.no_grad():
            w.clamp_(fm.lo, fm.hi)
    return max_steps, loss


def bench_fit(landmarks: np.ndarray, fps: float, *, baseline_frames: int = 20, config: FitConfig | None = None,
              log=print) -> dict:
    cfg = config or FitConfig()
    lmk = np.asarray(landmarks, np.float32)
    N = len(lmk)
    fitter = FaceFitter(None, cfg)
    # calibrated track state (identity frozen) from the first frames
    for i in range(min(N, int(fps * cfg.identity_seconds) + 2)):
        fitter.process(lmk[i], i / fps)
    fm = fitter._fm
    obs = torch.from_numpy(lmk)
    w0, R0, s0, t0 = (x.expand(N, *x.shape[1:]).contiguous() for x in fitter._prev)

    # 1. chained, one thread
    _kernels.fit(fm, obs[:10], w0[:10], R0[:10], s0[:10], t0[:10], max_iters=cfg.max_iters, tol=cfg.tol, chain=True)
    times = []
    for _ in range(3):
        t_start = time.perf_counter()
        out = _kernels.fit(fm, obs, w0, R0, s0, t0, max_iters=cfg.max_iters, tol=cfg.tol, chain=True)
        times.append(time.perf_counter() - t_start)
    fit_us = min(times) / N * 1e6
    iters = float(out[5].float().mean())

    # 2. the Python API
    f2 = FaceFitter(None, cfg)
    t_start = time.perf_counter()
    for i in range(N):
        f2.process(lmk[i], i / fps)
    api_us = (time.perf_counter() - t_start) / N * 1e6

    # 3. independent cold frames on all cores
    inits = [rigid_init(fm.tmpl.numpy(), o, fm.pivot) for o in lmk]
    R = torch.tensor(np.stack([r for r, _, _ in inits]), dtype=torch.float32)
    s = torch.tensor([x for _, x, _ in inits], dtype=torch.float32)
    t = torch.tensor(np.stack([x for _, _, x in inits]), dtype=torch.float32)
    t_start = time.perf_counter()
    _kernels.fit(fm, obs, torch.zeros(N, fm.K), R, s, t, max_iters=cfg.cold_iters, tol=cfg.tol, num_threads=0)
    batch_fps = N / (time.perf_counter() - t_start)

    # 4. baseline: autograd + Adam, same warm starts and targets, one thread
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        idx = np.linspace(1, N - 1, min(baseline_frames, N - 1)).astype(int)
        steps, t_base = [], 0.0
        for i in idx:
            init = (out[0][i - 1], out[1][i - 1], out[2][i - 1], out[3][i - 1])
            target = float(out[4][i])
            t_start = time.perf_counter()
            n_steps, _ = adam_frame(fm, obs[i], init, target)
            t_base += time.perf_counter() - t_start
            steps.append(n_steps)
    finally:
        torch.set_num_threads(prev_threads)
    base_us = t_base / len(idx) * 1e6
    figures = {"frames": N, "fit_us_per_frame": fit_us, "fit_iters_per_frame": iters, "api_us_per_frame": api_us,
               "batch_frames_per_s": batch_fps, "baseline_us_per_frame": base_us,
               "baseline_adam_steps": float(np.mean(steps)), "speedup": base_us / fit_us}
    log(f"  {'measure':28s} {'value':>12s}")
    for k, v in figures.items():
        log(f"  {k:28s} {v:12.1f}")
    return figures
