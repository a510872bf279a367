"""Face models behind one interface (`FaceModel`): the built-in ARKit-52 rig
and FLAME."""
from __future__ import annotations

from .arkit import ARKIT_52
from .base import NUM_MEDIAPIPE_LANDMARKS, FaceModel

_BUILTIN_CACHE = None


def load_model(name: str = "builtin", *, path=None, **kwargs) -> FaceModel:
    """Load a face model.

    - ``load_model("builtin")``: the embedded, redistributable rig (cached; it
      is immutable).
    - ``load_model("flame", path=".../generic_model.pkl", landmark_embedding=...,
      ibug_embedding=..., num_shape=..., num_expression=...)``: FLAME 2020/2023
      from the user's local files.
    """
    global _BUILTIN_CACHE
    from ..errors import FaceLangError

    key = name.lower()
    if key == "builtin":
        if path is not None or kwargs:
            raise FaceLangError("the builtin model takes no path or options")
        if _BUILTIN_CACHE is None:
            from .builtin import BuiltinRig

            _BUILTIN_CACHE = BuiltinRig()
        return _BUILTIN_CACHE
    if key == "flame":
        if path is None:
            raise FaceLangError("load_model('flame') needs path=... to a FLAME model file "
                                "(generic_model.pkl, flame2023.pkl or an .npz export)")
        from .flame import load_flame

        return load_flame(path, **kwargs)
    raise FaceLangError(f"unknown face model '{name}' (choose 'builtin' or 'flame')")


__all__ = ["ARKIT_52", "NUM_MEDIAPIPE_LANDMARKS", "FaceModel", "load_model"]
