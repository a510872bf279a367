"""The built-in rig: MediaPipe's 478-point face topology, a procedural identity
basis, the 52 ARKit blendshapes and a head pose.

    vertices = s * R @ (T + B_id @ id + B_arkit @ w - pivot) + pivot + t

T is the neutral template (see `template_build.py`), `w` the ARKit weights in
[0, 1], R the head rotation (axis-angle, radians) about a pivot near the top
of the neck, s = exp(head_log_scale), t a translation in mm. Landmark i is
vertex i, so `landmarks` is MediaPipe FaceMesh order by construction.
"""
from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from .. import _kernels
from .._reference import blend_ref
from ..errors import ModelFileError
from .arkit import ARKIT_52
from .base import FaceModel
from .identity import IDENTITY_NAMES, sculpt_identity
from .regions import Regions
from .rotation import axis_angle_to_matrix
from .sculpt import sculpt_blendshapes

POSE_NAMES = ("head_rx", "head_ry", "head_rz", "head_tx", "head_ty", "head_tz", "head_log_scale")
#: head rotation centre in the template frame (mm): behind and below the eyes,
#: roughly the top of the neck, so a nod looks like a nod
HEAD_PIVOT = (0.0, -45.0, -85.0)
EYEBALL_RADIUS = 12.0  # mm; iris points sit on the front of the eyeball


def _load_template():
    try:
        with resources.files("pyfacelang.face").joinpath("data/builtin_template.npz").open("rb") as f:
            d = np.load(f, allow_pickle=False)
            contours = {k[len("contour_"):]: d[k] for k in d.files if k.startswith("contour_")}
            return d["vertices"].astype(np.float64), d["triangles"], d["mirror"], contours
    except (FileNotFoundError, KeyError) as e:
        raise ModelFileError(f"built-in rig template is missing from the package ({e}); "
                             "rebuild it with `python -m pyfacelang.face.template_build`") from e


class BuiltinRig(FaceModel):
    name = "builtin"

    def __init__(self):
        v, tris, mirror, contours = _load_template()
        n_id, n_bs = len(IDENTITY_NAMES), len(ARKIT_52)
        names = IDENTITY_NAMES + ARKIT_52 + POSE_NAMES
        slices = {
            "identity": slice(0, n_id),
            "expression": slice(n_id, n_id + n_bs),
            "pose": slice(n_id + n_bs, n_id + n_bs + 7),
            "rotation": slice(n_id + n_bs, n_id + n_bs + 3),
            "translation": slice(n_id + n_bs + 3, n_id + n_bs + 6),
            "scale": slice(n_id + n_bs + 6, n_id + n_bs + 7),
        }
        super().__init__(names, slices, tris, len(v))
        self.regions = Regions(v, mirror, contours)
        self.template = v.astype(np.float32)                        # (V, 3)
        self.identity_basis = sculpt_identity(self.regions)         # (16, V, 3)
        self.blendshapes = sculpt_blendshapes(self.regions)         # (52, V, 3)
        self.mirror = mirror.astype(np.int64)
        basis = np.concatenate([self.identity_basis, self.blendshapes])  # (68, V, 3)
        self._cpu = {"tmpl": torch.from_numpy(self.template), "basis": torch.from_numpy(basis),
                     "pivot": torch.tensor(HEAD_PIVOT, dtype=torch.float32)}
        self._dev_cache: dict[torch.device, dict[str, torch.Tensor]] = {}

    # ----------------------------------------------------------------- layout
    def neutral_params(self) -> np.ndarray:
        return np.zeros(self.num_params, dtype=np.float32)

    def param_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) per parameter: ARKit weights in [0, 1], identity within +-4 std,
        rotations within +-90 degrees, log-scale within +-1, translation within +-10 m."""
        lo = np.empty(self.num_params, np.float32)
        hi = np.empty(self.num_params, np.float32)
        lo[self.slices["identity"]], hi[self.slices["identity"]] = -4.0, 4.0
        lo[self.slices["expression"]], hi[self.slices["expression"]] = 0.0, 1.0
        lo[self.slices["rotation"]], hi[self.slices["rotation"]] = -np.pi / 2, np.pi / 2
        lo[self.slices["scale"]], hi[self.slices["scale"]] = -1.0, 1.0
        lo[self.slices["translation"]], hi[self.slices["translation"]] = -1e4, 1e4
        return lo, hi

    # --------------------------------------------------------------- geometry
    def _buffers(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device.type == "cpu":
            return self._cpu
        if device not in self._dev_cache:
            self._dev_cache[device] = {k: t.to(device) for k, t in self._cpu.items()}
        return self._dev_cache[device]

    def _pose(self, params: torch.Tensor):
        """(B, P) -> rotation (B, 3, 3), effective translation (B, 3), scale (B,)
        such that x' = s R x + t' equals a rotation about HEAD_PIVOT."""
        buf = self._buffers(params.device)
        pose = params[:, self.slices["pose"]]
        R = axis_angle_to_matrix(pose[:, 0:3])
        s = torch.exp(pose[:, 6])
        pivot = buf["pivot"]
        t = pose[:, 3:6] + pivot - s[:, None] * (R @ pivot)
        return R, t, s

    def _coeffs(self, params: torch.Tensor) -> torch.Tensor:
        return params[:, : self.slices["expression"].stop]  # identity, then ARKit weights

    def _vertices(self, params: torch.Tensor) -> torch.Tensor:
        buf = self._buffers(params.device)
        R, t, s = self._pose(params)
        coeffs = self._coeffs(params)
        if params.requires_grad and torch.is_grad_enabled():
            return blend_ref(buf["tmpl"], buf["basis"], coeffs, R, t, s)
        if params.device.type == "cuda" and not _kernels.ext().built_with_cuda():
            return blend_ref(buf["tmpl"], buf["basis"], coeffs, R, t, s)
        return _kernels.blend(buf["tmpl"], buf["basis"], coeffs, R, t, s)

    def _landmarks(self, params: torch.Tensor) -> torch.Tensor:
        return self._vertices(params)

    def vertices_unposed(self, params) -> np.ndarray:
        """(B, V, 3) numpy: identity + expression in the head frame, no pose."""
        p, _ = self._as_batch(params)
        p = p.detach().cpu()
        return _kernels.blend(self._cpu["tmpl"], self._cpu["basis"], self._coeffs(p)).numpy()

    # ---------------------------------------------------------------- preview
    def preview_mesh(self, params):
        """Geometry for a nice software render of one parameter vector:
        the face mesh plus an eyeball per eye (iris and pupil coloured toward
        the current gaze) and a dark mouth cavity behind the inner lips.

        Returns (vertices (N, 3) float32 mm, triangles (F, 3) int32,
        vertex_colors (N, 3) float RGB in [0, 1])."""
        from .preview import build_preview

        p, _ = self._as_batch(params)
        if p.shape[0] != 1:
            raise ValueError("preview_mesh takes one parameter vector")
        unposed = self.vertices_unposed(p)[0]
        R, t, s = (x[0].detach().cpu().numpy() for x in self._pose(p.detach().cpu()))
        verts, tris, colors = build_preview(self, unposed)
        posed = s * verts @ R.T + t
        return posed.astype(np.float32), tris, colors
