"""`FaceModel`: the one interface every face model implements.

A model maps a parameter vector (named slices: identity, expression, pose) to
geometry in millimetres:

    vertices(params)  (B, P) -> (B, V, 3)
    landmarks(params) (B, P) -> (B, 478, 3)   MediaPipe FaceMesh order; NaN rows
                                              where the model has no landmark
                                              (see `landmark_mask`)

Parameters may be numpy arrays or torch tensors, (P,) or (B, P); outputs have
the input's array type (torch outputs keep autograd, so fitters can
differentiate through them). A (P,) input is treated as B = 1.

Coordinate frame (all models): right-handed, +x toward the subject's left,
+y up, +z out of the face toward the camera; millimetres.
"""
from __future__ import annotations

import abc
import difflib
from typing import Mapping, Sequence

import numpy as np
import torch

from ..errors import ShapeError, UnknownParameterError

NUM_MEDIAPIPE_LANDMARKS = 478  # 468 face-mesh points + 10 iris points (refine_landmarks=True)


class FaceModel(abc.ABC):
    #: short model id, e.g. "builtin" or "flame"
    name: str = "face"

    def __init__(self, param_names: Sequence[str], slices: Mapping[str, slice],
                 triangles: np.ndarray, num_vertices: int):
        self.param_names: tuple[str, ...] = tuple(param_names)
        #: named parameter groups; at least "identity", "expression" and "pose"
        self.slices: dict[str, slice] = dict(slices)
        #: (F, 3) int32 vertex indices, counter-clockwise seen from outside
        self.triangles: np.ndarray = np.ascontiguousarray(triangles, dtype=np.int32)
        self.num_vertices: int = int(num_vertices)
        self._index = {n: i for i, n in enumerate(self.param_names)}
        if len(self._index) != len(self.param_names):
            raise ValueError(f"{self.name}: duplicate parameter names")

    # ------------------------------------------------------------------ layout
    @property
    def num_params(self) -> int:
        return len(self.param_names)

    def param_index(self, name: str) -> int:
        """Index of a named parameter; unknown names raise with close matches."""
        try:
            return self._index[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.param_names, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownParameterError(
                f"model '{self.name}' has no parameter '{name}'{hint}") from None

    @abc.abstractmethod
    def neutral_params(self) -> np.ndarray:
        """(P,) float32: mean identity, neutral expression, frontal head pose."""

    def params_from_dict(self, values: Mapping[str, float], base: np.ndarray | None = None) -> np.ndarray:
        """Neutral (or `base`) parameters with the named entries set. (P,) float32."""
        p = (self.neutral_params() if base is None else np.asarray(base, np.float32)).copy()
        for k, v in values.items():
            p[self.param_index(k)] = float(v)
        return p

    @property
    def landmark_mask(self) -> np.ndarray:
        """(478,) bool: which MediaPipe landmarks this model defines."""
        return np.ones(NUM_MEDIAPIPE_LANDMARKS, dtype=bool)

    # ---------------------------------------------------------------- geometry
    def vertices(self, params):
        """(B, P) or (P,) parameters -> (B, V, 3) vertices in mm."""
        p, back = self._as_batch(params)
        return back(self._vertices(p))

    def landmarks(self, params):
        """(B, P) or (P,) parameters -> (B, 478, 3) landmarks in mm (MediaPipe order)."""
        p, back = self._as_batch(params)
        return back(self._landmarks(p))

    @abc.abstractmethod
    def _vertices(self, params: torch.Tensor) -> torch.Tensor:
        """(B, P) float32 tensor -> (B, V, 3) tensor."""

    @abc.abstractmethod
    def _landmarks(self, params: torch.Tensor) -> torch.Tensor:
        """(B, P) float32 tensor -> (B, 478, 3) tensor."""

    # ---------------------------------------------------------------- helpers
    def _as_batch(self, params):
        """Validate and convert parameters to a (B, P) float32 tensor; returns it
        with a function that converts results back to the caller's array type."""
        is_numpy = not isinstance(params, torch.Tensor)
        if is_numpy:
            arr = np.asarray(params)
            if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
                raise ShapeError(f"{self.name}: parameters must be numeric, got dtype {arr.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        else:
            t = params if params.dtype == torch.float32 else params.float()
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != self.num_params:
            raise ShapeError(
                f"{self.name}: expected parameters of shape (P,) or (B, P) with P={self.num_params}, "
                f"got {tuple(t.shape)}")

        def back(out: torch.Tensor):
            return out.detach().cpu().numpy() if is_numpy else out

        return t, back

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}={s.stop - s.start}" for k, s in self.slices.items())
        return f"<{type(self).__name__} '{self.name}': V={self.num_vertices}, P={self.num_params} ({groups})>"
