"""Rotation helpers shared by the face models (stateless torch math)."""
from __future__ import annotations

import math

import numpy as np
import torch


def axis_angle_to_matrix(rvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. rvec (..., 3) axis * angle in radians -> (..., 3, 3).

    Uses the Taylor expansion of sin(t)/t and (1-cos t)/t^2 near zero so it is
    exact and differentiable at the identity (the most common pose)."""
    theta2 = (rvec * rvec).sum(-1, keepdim=True)  # (..., 1)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(theta2_safe)
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)  # sin t / t
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)  # (1 - cos t) / t^2
    x, y, z = rvec.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(rvec.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=rvec.dtype, device=rvec.device).expand_as(K)
    return eye + a[..., None] * K + b[..., None] * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Inverse of `axis_angle_to_matrix` for rotations with angle < pi. (..., 3, 3) -> (..., 3)."""
    cos = ((R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2] - 1.0) * 0.5).clamp(-1.0, 1.0)
    theta = torch.acos(cos)
    w = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = torch.sin(theta)
    small = sin.abs() < 1e-6
    factor = torch.where(small, 0.5 + theta * theta / 12.0, theta / (2.0 * torch.where(small, torch.ones_like(sin), sin)))
    return w * factor[..., None]


def rodrigues_np(rvec) -> np.ndarray:
    """NumPy twin of `axis_angle_to_matrix` for one rotation (3,) -> (3, 3), float64.
    Used on per-frame paths where torch's per-call overhead dominates, so the
    nine entries are plain float arithmetic (R = I + a K + b K^2, with
    K^2 = v v^T - |v|^2 I), not a chain of small array operations."""
    v = np.asarray(rvec, np.float64)
    if v.shape != (3,):
        v = v.reshape(3)
    x, y, z = v.tolist()
    t2 = x * x + y * y + z * z
    if not math.isfinite(t2):         # as the array formula gives (math.sin(inf) would raise)
        return np.full((3, 3), np.nan)
    if t2 < 1e-8:
        a, b = 1.0 - t2 / 6.0, 0.5 - t2 / 24.0
    else:
        t = math.sqrt(t2)
        a, b = math.sin(t) / t, (1.0 - math.cos(t)) / t2
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    return np.array([[1.0 + b * (x * x - t2), bxy - a * z, bxz + a * y],
                     [bxy + a * z, 1.0 + b * (y * y - t2), byz - a * x],
                     [bxz - a * y, byz + a * x, 1.0 + b * (z * z - t2)]])


def log_rotation_np(R) -> np.ndarray:
    """NumPy twin of `matrix_to_axis_angle` for one rotation (3, 3) -> (3,), float64."""
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = np.asarray(R, np.float64).tolist()
    if not math.isfinite(r00 + r11 + r22):     # NaN in, NaN out (min/max would hide it)
        return np.full(3, np.nan)
    theta = math.acos(min(1.0, max(-1.0, (r00 + r11 + r22 - 1.0) * 0.5)))
    sin = math.sin(theta)
    factor = 0.5 + theta * theta / 12.0 if abs(sin) < 1e-6 else theta / (2.0 * sin)
    return np.array([(r21 - r12) * factor, (r02 - r20) * factor, (r10 - r01) * factor])
