"""Render parameter files (from `track`, `detokenize`, ...) as one video,
side by side, optionally next to the source video: how a real clip and its
token reconstruction compare, frame by frame."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..errors import FaceLangError
from .compose import hstack_frames
from .faces import model_mesh, render_params
from .raster import Camera
from .video import VideoWriter


def _rig_rows(path: str, rig) -> tuple[np.ndarray, float]:
    """(T, P) built-in rig rows of a parameter file, pose translation/scale
    zeroed so every column shares one framing; NaN rows (no face) stay NaN."""
    from ..tokens.geometry import motion_from_params, rig_params, track_identity

    if not Path(path).is_file():
        raise FaceLangError(f"parameter file not found: {path}")
    with np.load(path, allow_pickle=False) as z:
        if "params" not in z.files or "param_names" not in z.files:
            raise FaceLangError(f"{path}: expected 'params' and 'param_names' arrays")
        params, names = z["params"], [str(n) for n in z["param_names"]]
        fps = float(z["fps"]) if "fps" in z.files else 25.0
        valid = z["valid"] if "valid" in z.files else np.ones(len(params), bool)
    motion = motion_from_params(params, names)
    P = rig_params(rig, motion, track_identity(rig, params, names))
    P[~(np.asarray(valid, bool) & np.isfinite(motion).all(1))] = np.nan
    return P, fps


def render_param_files(files: list[str], out_path: str, *, size: int = 384, source: str | None = None,
                       labels: list[str] | None = None) -> int:
    """Write `out_path` (.mp4): one column per parameter file (and the source
    video first when given), at the first file's frame rate. Returns frames written."""
    import cv2

    from ..face import load_model

    rig = load_model("builtin")
    rows, fps = zip(*(_rig_rows(f, rig) for f in files))
    T = min(len(r) for r in rows)
    labels = list(labels or [Path(f).stem for f in files])
    ok = [p for p in rows[0][:T:max(1, T // 8)] if np.isfinite(p).all()] or [rig.neutral_params()]
    cam = Camera(width=size, height=size).fit(np.concatenate([model_mesh(rig, p)[0] for p in ok]), margin=0.12)
    blank = np.full((size, size, 3), 40, np.uint8)
    src = None
    with contextlib.ExitStack() as stack:
        if source is not None:
            from ..track.source import open_source
            src = iter(stack.enter_context(open_source(source)))
            labels = [Path(source).name] + labels
        vw = stack.enter_context(VideoWriter(out_path, fps=fps[0]))
        for t in range(T):
            tiles = []
            if src is not None:
                frame = next(src, None)
                img = blank if frame is None else frame.image
                h, w = img.shape[:2]
                s = size / max(h, w)
                img = cv2.resize(img, (int(w * s), int(h * s)))
                tile = blank.copy()
                y0, x0 = (size - img.shape[0]) // 2, (size - img.shape[1]) // 2
                tile[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
                tiles.append(tile)
            for r in rows:
                tiles.append(render_params(rig, r[t], camera=cam, supersample=1) if np.isfinite(r[t]).all()
                             else blank)
            vw.write(hstack_frames(tiles, [f"{lab}  t={t / fps[0]:.2f}s" if i == 0 else lab
                                           for i, lab in enumerate(labels)]))
    return T
