"""One Euro filter (Casiez, Roussel & Vogel, CHI 2012): an adaptive low-pass
filter whose cutoff rises with speed, so still faces stop jittering while
fast motion keeps little lag."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class OneEuroConfig:
    # Cutoff (Hz) when the signal is still: lower = less jitter, more lag at rest.
    min_cutoff: float = 0.5
    # How fast the cutoff rises with speed: higher = less lag in fast motion.
    beta: float = 1.0
    # Cutoff (Hz) of the derivative estimate that drives the adaptation.
    d_cutoff: float = 1.0
    # False passes values through untouched.
    enabled: bool = True


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters vectors (any shape) sampled at known times. `reset()` forgets history.

    `scale` (same shape as the values, optional) divides the speed before it
    adapts the cutoff, so parameters of different units (radians, mm, weights
    in [0, 1]) share one `beta`."""

    def __init__(self, config: OneEuroConfig | None = None, scale=None):
        self.cfg = config or OneEuroConfig()
        self.scale = None if scale is None else np.asarray(scale, np.float64)
        self.reset()

    def reset(self) -> None:
        self._x = None
        self._dx = None
        self._t = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if not self.cfg.enabled:
            return x.copy()
        if self._x is None or not np.isfinite(x).all():
            if np.isfinite(x).all():
                self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if dt <= 0:
            dt = 1e-3
        dx = (x - self._x) / dt
        a_d = _alpha(self.cfg.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        speed = np.abs(self._dx) if self.scale is None else np.abs(self._dx) / self.scale
        cutoff = self.cfg.min_cutoff + self.cfg.beta * speed
        tau = 1.0 / (2.0 * math.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x.copy()
