"""Motion vectors and their identity-free geometry.

A *motion* row is what a token stands for: the 52 ARKit weights and the head
rotation (axis-angle, radians) of the built-in rig, 55 numbers in
`MOTION_NAMES` order (the corpus layout). Identity, translation and scale are
left out: they do not change what a face *does*.

`MotionGeometry` turns motion rows into the geometry the tokenizer is trained
on: the rig's vertices with identity at zero, posed by the head rotation about
the rig's neck pivot (mm). The encoder sees the head-frame displacements plus
the rotation; the losses and `vertex_l2_mm` use the posed vertices.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ShapeError
from ..face.arkit import ARKIT_52
from ..face.builtin import HEAD_PIVOT
from ..face.rotation import axis_angle_to_matrix, matrix_to_axis_angle

MOTION_NAMES = tuple(ARKIT_52) + ("head_rx", "head_ry", "head_rz")
N_EXPR = len(ARKIT_52)
MOTION_DIM = len(MOTION_NAMES)
# Feature scales: displacements are up to ~40 mm, rotations ~0.5 rad; these
# bring both to order one (0.1 rad at a ~100 mm lever is ~10 mm).
DISP_SCALE = 0.1
ROT_SCALE = 10.0


def motion_from_params(params: np.ndarray, names) -> np.ndarray:
    """(T, P) parameters with their names (a `track` file, a corpus clip or a
    motion file) -> (T, 55) motion rows. Raises ShapeError naming what is missing."""
    params = np.asarray(params)
    names = [str(n) for n in names]
    if params.ndim != 2 or params.shape[1] != len(names):
        raise ShapeError(f"parameters: expected shape (T, {len(names)}) to match param_names, got {params.shape}")
    pos = {n: i for i, n in enumerate(names)}
    missing = [n for n in MOTION_NAMES if n not in pos]
    if missing:
        hint = " (a FLAME track: run `pyfacelang track` with --model builtin)" if "jaw_rx" in pos or \
            any(n.startswith("exp") for n in pos) else ""
        raise ShapeError(f"parameters lack {len(missing)} motion channels, e.g. {', '.join(missing[:3])}{hint}")
    return params[:, [pos[n] for n in MOTION_NAMES]].astype(np.float32)


def head_relative(motion: np.ndarray, rest_rotation) -> np.ndarray:
    """Motion rows with the head rotation taken relative to a resting pose:
    R_rel = R_rest^T R (a camera turned by R_rest sees R_rest R_head).
    rest_rotation: (3,) axis-angle (a tracker's `FaceFitter.rest_rotation`,
    or the `rest_rotation` array of a track file); None or zeros: unchanged.
    Non-finite rows stay non-finite."""
    m = np.array(motion, dtype=np.float32, copy=True)
    if m.ndim != 2 or m.shape[1] != MOTION_DIM:
        raise ShapeError(f"motion: expected shape (T, {MOTION_DIM}), got {m.shape}")
    if rest_rotation is None:
        return m
    r = np.asarray(rest_rotation, np.float64).reshape(-1)
    if r.shape != (3,) or not np.isfinite(r).all():
        raise ShapeError(f"rest_rotation: expected 3 finite values (axis-angle), got {np.asarray(rest_rotation)!r}")
    if not r.any() or len(m) == 0:
        return m
    if len(m) == 1:     # the live path, one frame: NumPy, no torch call overhead
        from ..face.rotation import log_rotation_np, rodrigues_np
        m[0, N_EXPR:] = log_rotation_np(rodrigues_np(r).T @ rodrigues_np(m[0, N_EXPR:]))
        return m
    R0 = axis_angle_to_matrix(torch.from_numpy(r))                                   # (3, 3)
    R = axis_angle_to_matrix(torch.from_numpy(m[:, N_EXPR:].astype(np.float64)))   # (T, 3, 3)
    m[:, N_EXPR:] = matrix_to_axis_angle(R0.T @ R).numpy().astype(np.float32)
    return m


def fill_invalid(motion: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are invalid (no face) or non-finite hold the last valid row
    (the neutral face before the first one). Returns (filled, valid)."""
    motion = np.array(motion, dtype=np.float32, copy=True)
    ok = np.isfinite(motion).all(1)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    last = np.zeros(MOTION_DIM, np.float32)
    for t in range(len(motion)):
        if ok[t]:
            last = motion[t]
        else:
            motion[t] = last
    return motion, ok


class MotionGeometry(torch.nn.Module):
    """Rig buffers (template, ARKit basis, pivot) as a module so they follow
    `.to(device)`; every method is batched over leading dims."""

    def __init__(self, rig=None):
        super().__init__()
        if rig is None:
            from .. import load_model
            rig = load_model("builtin")
        self.register_buffer("template", torch.as_tensor(rig.template, dtype=torch.float32))        # (V, 3)
        self.register_buffer("basis", torch.as_tensor(rig.blendshapes, dtype=torch.float32))        # (52, V, 3)
        self.register_buffer("pivot", torch.tensor(HEAD_PIVOT, dtype=torch.float32))
        self.V = self.template.shape[0]

    def displacement(self, motion: torch.Tensor) -> torch.Tensor:
        """(..., 55) -> (..., V, 3) expression displacement in the head frame, mm."""
        w = motion[..., :N_EXPR]
        return torch.einsum("...k,kvc->...vc", w, self.basis)

    def posed(self, motion: torch.Tensor) -> torch.Tensor:
        """(..., 55) -> (..., V, 3) identity-free vertices, rotated about the pivot, mm."""
        x = self.template + self.displacement(motion) - self.pivot          # (..., V, 3)
        R = axis_angle_to_matrix(motion[..., N_EXPR:].reshape(-1, 3)).reshape(*motion.shape[:-1], 3, 3)
        return x @ R.transpose(-1, -2) + self.pivot

    def features(self, motion: torch.Tensor) -> torch.Tensor:
        """(..., 55) -> (..., 3V + 3) encoder input: scaled displacements, scaled rotation."""
        d = self.displacement(motion).flatten(-2) * DISP_SCALE                # (..., 3V)
        return torch.cat([d, motion[..., N_EXPR:] * ROT_SCALE], -1)

    @property
    def feature_dim(self) -> int:
        return 3 * self.V + 3


def coefficient_features(motion: torch.Tensor) -> torch.Tensor:
    """Encoder input of the coefficient baseline: the parameters, rotation scaled like above."""
    return torch.cat([motion[..., :N_EXPR], motion[..., N_EXPR:] * ROT_SCALE], -1)


def rig_params(rig, motion: np.ndarray, identity: np.ndarray | None = None) -> np.ndarray:
    """(T, 55) motion rows -> (T, P) built-in rig parameters: the given
    identity (or the mean face), no translation, unit scale."""
    P = np.tile(rig.neutral_params(), (len(motion), 1))
    if identity is not None:
        P[:, rig.slices["identity"]] = identity
    P[:, rig.slices["expression"]] = motion[:, :N_EXPR]
    P[:, rig.slices["rotation"]] = motion[:, N_EXPR:]
    return P


def track_identity(rig, params: np.ndarray, names) -> np.ndarray | None:
    """Mean identity of the valid rows of a built-in rig parameter file, or
    None when the file is not one (a FLAME track, a corpus clip)."""
    if [str(n) for n in names][: rig.num_params] != list(rig.param_names):
        return None
    ok = np.isfinite(params).all(1)
    return params[ok][:, rig.slices["identity"]].mean(0) if ok.any() else None
