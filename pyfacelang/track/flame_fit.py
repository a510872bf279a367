"""Fitting FLAME to MediaPipe landmarks (`pyfacelang track --model flame`).

FLAME is nonlinear in its joints (jaw, global rotation), so this is a general
Levenberg-Marquardt with Jacobians from forward-mode autodiff
(torch.func.jacfwd) over FLAME's 105 embedded MediaPipe landmarks, evaluated
with LBS on just the vertices they use (`FlameModel.landmarks_sparse`).
Priors enter as extra residual rows. Camera: weak perspective as for the
rig, landmarks_px = s * F * L + t (F = diag(1, -1, -1)).

Shape is estimated over calibration frames spread across the opening
`identity_seconds` (alternating per-frame solves and a shape solve), then
frozen; every frame is then fitted with a warm start. This path is offline
and runs in milliseconds per frame (the fast path for live use is the
built-in rig, and retarget.py turns FLAME parameters into ARKit weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import FaceLangError
from .filters import OneEuroConfig, OneEuroFilter
from .fitter import FitResult, rigid_init

F = torch.tensor([1.0, -1.0, -1.0])


@dataclass
class FlameFitConfig:
    # Expression coefficients fitted per frame (FLAME has 100; the leading
    # ones carry most of the variance).
    num_expression: int = 50
    # Shape coefficients estimated during calibration (then frozen).
    num_shape: int = 50
    # Ridge priors, in squared pixels per unit coefficient: FLAME's
    # coefficients are roughly unit-variance, jaw rotation is in radians.
    expression_prior: float = 2.0
    shape_prior: float = 5.0
    jaw_prior: float = 50.0
    max_iters: int = 5
    cold_iters: int = 15
    identity_frames: int = 10
    identity_seconds: float = 2.0
    filter: OneEuroConfig = field(default_factory=OneEuroConfig)


class FlameFitter:
    def __init__(self, flame, config: FlameFitConfig | None = None):
        if getattr(flame, "name", None) != "flame":
            raise FaceLangError("FlameFitter needs a FLAME model")
        if not np.asarray(flame.landmark_mask).any():
            raise FaceLangError("FLAME tracking needs the MediaPipe landmark embedding: pass "
                                "--flame-embedding mediapipe_landmark_embedding.npz")
        self.flame = flame
        self.cfg = config or FlameFitConfig()
        self.E = min(self.cfg.num_expression, flame.num_expression)
        self.S = min(self.cfg.num_shape, flame.num_shape)
        self.idx = flame.landmark_indices                                  # (L,) MediaPipe ids
        from ..face import load_model
        from .fit_model import landmark_weights

        self.w_sqrt = torch.tensor(np.sqrt(landmark_weights(load_model("builtin"))[self.idx]))[:, None]  # (L, 1)
        sl = flame.slices
        self.i_exp = torch.arange(sl["expression"].start, sl["expression"].start + self.E)
        self.i_shape = torch.arange(sl["identity"].start, sl["identity"].start + self.S)
        rot = sl["rotations"].start
        self.i_global = torch.arange(rot, rot + 3)
        self.i_jaw = torch.arange(sl["jaw"].start, sl["jaw"].start + 3)
        self.shape = torch.zeros(self.S)

    # -------------------------------------------------------------- model
    def _full(self, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """x = [expr (E), global (3), jaw (3), log s, t (3)] -> FLAME params (1, P)."""
        p = torch.zeros(self.flame.num_params, dtype=x.dtype)
        p = p.index_put((self.i_shape,), shape.to(x.dtype))
        p = p.index_put((self.i_exp,), x[: self.E])
        p = p.index_put((self.i_global,), x[self.E: self.E + 3])
        p = p.index_put((self.i_jaw,), x[self.E + 3: self.E + 6])
        return p[None]

    def _residual(self, x, shape, obs):
        L = self.flame.landmarks_sparse(self._full(x, shape))[0]          # (L, 3) mm
        s, t = torch.exp(x[self.E + 6]), x[self.E + 7:]
        r = (s * F * L + t - obs) * self.w_sqrt                           # (L, 3) px
        prior = torch.cat([np.sqrt(self.cfg.expression_prior) * x[: self.E],
                           np.sqrt(self.cfg.jaw_prior) * x[self.E + 3: self.E + 6]])
        return torch.cat([r.reshape(-1), prior])

    def _lm(self, fn, x, iters: int):
        """Levenberg-Marquardt on residual function fn(x) -> (m,)."""
        from torch.func import jacfwd

        r = fn(x)
        cost = float(r @ r)
        mu = 1e-3
        for _ in range(iters):
            J = jacfwd(fn)(x)                                              # (m, n)
            H, g = J.T @ J, J.T @ r
            improved = False
            for _ in range(6):
                A = H + mu * torch.diag(torch.diagonal(H) + 1e-9)
                try:
                    d = torch.linalg.solve(A, g)
                except RuntimeError:
                    mu *= 4
                    continue
                xc = x - d
                rc = fn(xc)
                cc = float(rc @ rc)
                if cc < cost:
                    x, r, cost, mu, improved = xc, rc, cc, max(mu / 3, 1e-9), True
                    break
                mu *= 4
            if not improved or cost < 1e-12:
                break
        return x, cost

    def _cold(self, obs: torch.Tensor):
        neutral = self._full(torch.zeros(self.E + 10), self.shape)
        L0 = self.flame.landmarks_sparse(neutral)[0].numpy()
        J0 = self.flame.joints(neutral.numpy())[0, 0]
        R, s, t = rigid_init(L0, obs.numpy(), J0)
        from ..face.rotation import log_rotation_np

        x = torch.zeros(self.E + 10)
        x[self.E: self.E + 3] = torch.tensor(log_rotation_np(R))
        x[self.E + 6] = float(np.log(s))
        x[self.E + 7:] = torch.tensor(t, dtype=torch.float32)  # rigid_init's pivot is FLAME's root joint
        return x

    def _calibrate_shape(self, frames) -> None:
        xs = [self._lm(lambda x, o=o: self._residual(x, self.shape, o), self._cold(o), self.cfg.cold_iters)[0]
              for o in frames]
        for _ in range(2):
            def fn(shape):
                parts = [self._residual(x, shape, o)[: 3 * len(self.idx)] for x, o in zip(xs, frames)]
                return torch.cat(parts + [np.sqrt(self.cfg.shape_prior) * shape])
            self.shape, _ = self._lm(fn, self.shape, 4)
            xs = [self._lm(lambda x, o=o: self._residual(x, self.shape, o), x, self.cfg.max_iters)[0]
                  for x, o in zip(xs, frames)]

    # ------------------------------------------------------------- public
    def fit_sequence(self, landmarks, fps: float) -> list[FitResult]:
        """landmarks: sequence of (478, 3) MediaPipe landmarks in pixels, or None."""
        frames = [None if l is None else torch.as_tensor(np.asarray(l)[self.idx], dtype=torch.float32)
                  for l in landmarks]
        step = max(1, int(round(fps * self.cfg.identity_seconds / self.cfg.identity_frames)))
        calib = [o for o in frames[::step] if o is not None][: self.cfg.identity_frames]
        self.shape = torch.zeros(self.S)  # every sequence calibrates its own shape
        if calib:
            self._calibrate_shape(calib)
        # filter speeds in comparable units: coefficients 1, rotations 0.3 rad,
        # log-scale 0.05, translation 20 mm worth of pixels
        s0 = float(np.exp(self._cold(calib[0])[self.E + 6])) if calib else 1.0
        scale = np.r_[np.ones(self.E), np.full(6, 0.3), 0.05, np.full(3, 20.0 * s0)]
        filt, out, x_prev = OneEuroFilter(self.cfg.filter, scale=scale), [], None
        nan = np.full(self.flame.num_params, np.nan, np.float32)
        for i, o in enumerate(frames):
            if o is None:
                out.append(FitResult(nan, float("nan"), False, np.full(4, np.nan, np.float32),
                                     np.full((478, 3), np.nan, np.float32)))
                continue
            x0, iters = (self._cold(o), self.cfg.cold_iters) if x_prev is None else (x_prev, self.cfg.max_iters)
            x, _ = self._lm(lambda x, o=o: self._residual(x, self.shape, o), x0, iters)
            x_prev = x
            xf = torch.as_tensor(filt(x.numpy(), i / fps), dtype=torch.float32)
            with torch.no_grad():
                L = self.flame.landmarks_sparse(self._full(x, self.shape))[0]
                s, t = torch.exp(x[self.E + 6]), x[self.E + 7:]
                fit_px = (s * F * L + t).numpy()
                Lf = self.flame.landmarks_sparse(self._full(xf, self.shape))[0]
                out_px = np.full((478, 3), np.nan, np.float32)
                out_px[self.idx] = (torch.exp(xf[self.E + 6]) * F * Lf + xf[self.E + 7:]).numpy()
            residual = float(np.linalg.norm(fit_px[:, :2] - o.numpy()[:, :2], axis=1).mean())
            cam = np.r_[float(torch.exp(xf[self.E + 6])), xf[self.E + 7:].numpy()].astype(np.float32)
            out.append(FitResult(self._full(xf, self.shape)[0].detach().numpy().astype(np.float32),
                                 residual, True, cam, out_px))
        return out
