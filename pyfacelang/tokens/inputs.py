"""What commands that read faces accept: a tokens `.npz` (from `tokenize`), a
parameter `.npz` (from `track` or `detokenize`), or a video/image source
(tracked first). `face_tokens(...)` turns any of them into one token per frame."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceLangError


def read_npz(path: str) -> dict:
    if not Path(path).is_file():
        raise FaceLangError(f"input file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise FaceLangError(f"{path}: not a readable .npz file ({e})") from None


def motion_of(arrays: dict, path: str, reader="default"):
    """(motion (T, 55), valid flags or None) of a parameter file's arrays.

    A fitted track (from `pyfacelang track`; it records `rest_rotation`) is
    read as tokens need it: the head rotation relative to the resting pose,
    then the expression weights through the motion reader (`reader`: a
    MotionReader, "default" for the shipped one, None to skip). Other files
    (detokenize, animate, older tracks) are rig motion already: read as is."""
    from ..errors import ShapeError
    from .geometry import head_relative, motion_from_params

    if "params" not in arrays or "param_names" not in arrays:
        raise FaceLangError(f"{path}: expected 'params' and 'param_names' arrays (a file from `pyfacelang track` "
                            "or `detokenize`)")
    motion = motion_from_params(arrays["params"], arrays["param_names"])
    valid = arrays.get("valid")
    if valid is not None and len(valid) != len(motion):
        raise FaceLangError(f"{path}: 'valid' has {len(valid)} flags for {len(motion)} frames")
    if "rest_rotation" in arrays:
        try:
            motion = head_relative(motion, arrays["rest_rotation"])
        except ShapeError as e:
            raise FaceLangError(f"{path}: {e}") from None
        from ..track.reader import resolve_reader

        rd = resolve_reader(reader)
        if rd is not None:
            if valid is not None:
                motion = np.where(np.asarray(valid, bool)[:, None], motion, np.nan).astype(np.float32)
            motion = rd.read(motion)
    return motion, valid


def track_arrays(source: str, max_frames=None, progress: bool = False) -> dict:
    """Track a video/image source with the built-in rig -> parameter-file arrays."""
    from ..track.pipeline import track

    tr = track(source, max_frames=max_frames, progress=progress)
    if not tr.valid.any():
        raise FaceLangError(f"no face found in any of the {len(tr.valid)} frames of '{source}'")
    return tr.to_dict()


@dataclass
class FaceTokens:
    tokens: np.ndarray            # (T,) int32, one per input frame
    fps: float                    # frame rate of the input
    tokenizer_sha256: str | None  # the tokenizer that made them (None: unknown, an old file)
    arrays: dict                  # the input's arrays (parameters etc.), for writing back out


def face_tokens(source: str, tokenizer, max_frames=None, progress: bool = False, reader="default") -> FaceTokens:
    """Tokens for a tokens file as is, a parameter file or a video (tokenized
    with `tokenizer`; tracks read through `reader`, see `motion_of`)."""
    if source.endswith(".npz"):
        arrays = read_npz(source)
        if "tokens" in arrays:
            sha = str(arrays["tokenizer_sha256"]) if "tokenizer_sha256" in arrays else None
            return FaceTokens(np.asarray(arrays["tokens"]), float(arrays.get("fps", 25.0)), sha, arrays)
    else:
        arrays = track_arrays(source, max_frames, progress)
    motion, valid = motion_of(arrays, source, reader)
    tokens = tokenizer.encode(motion, valid)
    return FaceTokens(tokens, float(arrays.get("fps", 25.0)), tokenizer.sha256, arrays)
