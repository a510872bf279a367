"""pyfacelang: a face in video -> one discrete geometric token per frame, and
translation both ways between those tokens and language.

Public entry points: `load_model` (face models), `live` (the live tracking
and captioning loop), `has_cuda`, `pyfacelang.render` (software previews)
and the `pyfacelang` command line.
"""
from __future__ import annotations

__version__ = "0.1.0"

import os as _os

# Library noise on stderr would break the one-line error contract: OpenCV's
# ffmpeg backend prints its own messages for corrupt files, MediaPipe logs
# through glog. Users can still override these before importing pyfacelang.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")   # our errors name the problem instead
_os.environ.setdefault("GLOG_minloglevel", "2")

from .errors import FaceLangError  # noqa: E402


def has_cuda() -> bool:
    """True only when the C++ extension was built with CUDA *and* a CUDA device
    is usable right now."""
    from . import _C

    return bool(_C.built_with_cuda()) and _C.cuda_device_count() > 0


def load_model(name: str = "builtin", **kwargs):
    """Load a face model by name ("builtin" or "flame"); see `pyfacelang.face.load_model`."""
    from .face import load_model as _load

    return _load(name, **kwargs)


def live(source=0, config=None, **kwargs):
    """Track, tokenize and caption a camera, stream or file live: a generator
    of events (or, with `callback=`, a loop). See `pyfacelang.stream.live`."""
    from .stream import live as _live

    return _live(source, config, **kwargs)


__all__ = ["FaceLangError", "has_cuda", "load_model", "live", "__version__"]
