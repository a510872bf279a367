"""Pure-PyTorch twins of every C++/CUDA kernel in csrc/. They are the oracle the
tests compare kernels against, and the fallback when a tensor needs autograd.
Keep them simple and obviously correct rather than fast."""
from __future__ import annotations

import torch


def blend_ref(tmpl: torch.Tensor, basis: torch.Tensor, coeffs: torch.Tensor,
              rot: torch.Tensor | None = None, trans: torch.Tensor | None = None,
              scale: torch.Tensor | None = None) -> torch.Tensor:
    """Twin of csrc/blend: scale * R @ (tmpl + sum_k coeffs[k] * basis[k]) + trans.

    tmpl (V, 3), basis (K, V, 3), coeffs (B, K), rot (B, 3, 3), trans (B, 3),
    scale (B,) -> (B, V, 3)."""
    B = coeffs.shape[0]
    K, V = basis.shape[0], tmpl.shape[0]
    shaped = tmpl[None] + (coeffs @ basis.reshape(K, V * 3)).reshape(B, V, 3)  # (B, V, 3)
    if rot is not None:
        shaped = shaped @ rot.transpose(1, 2)
    if scale is not None:
        shaped = shaped * scale[:, None, None]
    if trans is not None:
        shaped = shaped + trans[:, None, :]
    return shaped
