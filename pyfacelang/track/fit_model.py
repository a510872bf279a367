"""`FitModel`: what the fitting kernels need for one linear blendshape model,
one identity and one set of landmark weights, including the sums over
landmarks that let the solver assemble its normal equations in O(K^2)
(see csrc/fit/fit.h)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from ..errors import FaceLangError


def landmark_weights(rig, *, contour: float = 2.0, oval: float = 0.5, iris: float = 1.0) -> np.ndarray:
    """(V,) landmark weights for fitting the built-in rig to MediaPipe: eye and
    lip contours count more (they carry blinks and mouth shapes), the face
    oval less (MediaPipe's silhouette points slide along the jaw)."""
    r = rig.regions
    w = np.ones(rig.num_vertices, np.float32)
    eyes = np.concatenate([r.left_eye.vertices, r.mirror[r.left_eye.vertices]])
    lips = np.concatenate([r.upper_lip_ring, r.lower_lip_ring, [r.outer_lips.corner_a, r.outer_lips.corner_b,
                                                                r.inner_lips.corner_a, r.inner_lips.corner_b]])
    w[r.face_oval] = oval
    w[eyes] = contour
    w[lips] = contour
    w[468:] = iris
    return w


@dataclass(frozen=True)
class FitModel:
    tmpl: torch.Tensor      # (V, 3) float32, neutral vertices with identity applied, mm
    basis: torch.Tensor     # (K, V, 3) float32 expression blendshapes, mm
    weights: torch.Tensor   # (V,) float32 landmark weights
    lo: torch.Tensor        # (K,) float32 lower bounds
    hi: torch.Tensor        # (K,) float32 upper bounds
    prior: torch.Tensor     # (K,) float32 ridge prior toward neutral
    l1: torch.Tensor        # (K,) float32 linear (sparsity) prior per unit weight
    pivot: tuple            # (3,) head rotation centre, mm
    gram: torch.Tensor      # (K, K) float64
    cross: torch.Tensor     # (K, K, 3) float64
    bsum: torch.Tensor      # (K, 3) float64
    gram_t: torch.Tensor    # (K,) float64
    cross_t: torch.Tensor   # (K, 3) float64
    bw: np.ndarray          # (K, V, 3) float64 weighted basis (CPU cache for with_template)

    @property
    def K(self) -> int:
        return self.basis.shape[0]

    @property
    def V(self) -> int:
        return self.tmpl.shape[0]

    @classmethod
    def build(cls, tmpl, basis, weights, lo, hi, prior, pivot, l1=None) -> "FitModel":
        f32 = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32).contiguous()  # noqa: E731
        basis_t, w_t = f32(basis), f32(weights)
        B = basis_t.double()  # (K, V, 3)
        om = w_t.double()
        if not (torch.isfinite(B).all() and torch.isfinite(om).all() and (om >= 0).all()):
            raise FaceLangError("fit model: basis and landmark weights must be finite, weights >= 0")
        Bw = B * om[None, :, None]
        gram = torch.einsum("kvc,jvc->kj", Bw, B).contiguous()
        cross = torch.linalg.cross(Bw[:, None], B[None, :], dim=-1).sum(2).contiguous()  # (K, K, 3)
        bsum = Bw.sum(1).contiguous()
        lo_t, hi_t, prior_t = f32(lo), f32(hi), f32(prior)
        l1_t = torch.zeros_like(prior_t) if l1 is None else f32(l1)
        m = cls(f32(tmpl), basis_t, w_t, lo_t, hi_t, prior_t, l1_t, tuple(float(x) for x in pivot),
                gram, cross, bsum, torch.zeros(0), torch.zeros(0), Bw.numpy())
        return m.with_template(tmpl)

    def with_template(self, tmpl) -> "FitModel":
        """Same model with another neutral (e.g. a newly estimated identity)."""
        T = np.asarray(tmpl, np.float64)
        gram_t = np.tensordot(self.bw, T, 2)                                   # (K,)
        cross_t = np.cross(T[None], self.bw).sum(1)                           # (K, 3) sum_i T_i x Bw_k,i
        dev = self.tmpl.device
        return replace(self, tmpl=torch.as_tensor(T, dtype=torch.float32).contiguous().to(dev),
                       gram_t=torch.from_numpy(gram_t).contiguous().to(dev),
                       cross_t=torch.from_numpy(np.ascontiguousarray(cross_t)).to(dev))

    def to(self, device) -> "FitModel":
        # the dataclass fields only (not `_checked`, the kernel wrapper's note); bw stays on CPU
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return FitModel(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()})

    def addresses(self) -> dict:
        d = {k: getattr(self, k).data_ptr() for k in
             ("tmpl", "basis", "weights", "lo", "hi", "prior", "l1", "gram", "cross", "bsum", "gram_t", "cross_t")}
        d["pivot"] = list(self.pivot)
        return d


def rig_fit_model(rig, *, identity=None, weights=None, prior: float = 0.5) -> FitModel:
    """FitModel for the built-in rig's 52 ARKit shapes with an identity applied."""
    from ..face.builtin import HEAD_PIVOT

    tmpl = rig.template.astype(np.float64)
    if identity is not None:
        tmpl = tmpl + np.tensordot(np.asarray(identity, np.float64), rig.identity_basis.astype(np.float64), 1)
    lo, hi = rig.param_bounds()
    ex = rig.slices["expression"]
    return FitModel.build(tmpl, rig.blendshapes, landmark_weights(rig) if weights is None else weights,
                          lo[ex], hi[ex], np.full(len(rig.blendshapes), prior, np.float32), HEAD_PIVOT)
