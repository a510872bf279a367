"""Rotation helpers shared by the face models (stateless torch math)."""
from __future__ import annotations

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
