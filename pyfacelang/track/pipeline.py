"""Video in, face-model parameters out: frame source -> MediaPipe landmarks
-> FaceFitter, one row per input frame, written as a parameter file
(see DESIGN.md section 9)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import FaceLangError
from .fitter import FaceFitter, FitConfig
from .landmarks import LandmarkDetector
from .source import open_source


@dataclass
class Track:
    params: np.ndarray      # (T, P) float32, NaN rows where no face
    param_names: list
    valid: np.ndarray       # (T,) bool
    landmarks: np.ndarray   # (T, 478, 3) float32 MediaPipe landmarks in pixels, NaN where no face
    residual: np.ndarray    # (T,) float32 mean 2-D fit error in pixels
    camera: np.ndarray      # (T, 4) float32 weak-perspective camera s, tx, ty, tz
    fps: float
    model: str
    image_size: tuple       # (width, height)
    neutral: np.ndarray | None  # (478, 3) float32 personalised neutral of the rig track, mm (None for FLAME)
    # (3,) float32 axis-angle of the resting head pose relative to the camera
    # (FaceFitter.rest_rotation); tokens read the head relative to it. None for FLAME.
    rest_rotation: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"params": self.params.astype(np.float32), "param_names": np.array(self.param_names),
                "valid": self.valid, "landmarks": self.landmarks.astype(np.float32),
                "residual": self.residual.astype(np.float32), "camera": self.camera.astype(np.float32),
                "fps": np.float32(self.fps), "model": np.array(self.model),
                "image_size": np.array(self.image_size, np.int32),
                **({} if self.neutral is None else {"neutral": self.neutral.astype(np.float32)}),
                **({} if self.rest_rotation is None else {"rest_rotation": self.rest_rotation.astype(np.float32)})}


def save_npz(path, arrays: dict) -> None:
    """Write an .npz atomically (temp file in the same folder + rename); no pickles."""
    path = Path(path)
    if path.suffix != ".npz":
        raise FaceLangError(f"output must be a .npz file, got '{path}'")
    if not path.parent.exists():
        raise FaceLangError(f"output folder '{path.parent}' does not exist")
    write_atomic(path, lambda fh: np.savez(fh, **arrays), ".npz")


def track(source, *, max_frames: int | None = None, face_index: int | None = None, config: FitConfig | None = None,
          preview: str | None = None, progress: bool = False, flame=None) -> Track:
    """Track a video file, image, folder of images, webcam index or stream URL.

    Files are tracked offline: landmarks for every frame first, then the
    fitter calibrates identity on the opening seconds and fits every frame
    (`fit_sequence`), so the first frames get the calibrated identity too.
    Live sources (webcam, stream) are fitted online, frame by frame.
    flame: a FlameModel (with its MediaPipe embedding) to output FLAME
    parameters instead of the built-in rig's (offline; files only)."""
    if flame is not None:
        from .flame_fit import FlameFitter

        FlameFitter(flame)  # validates the model (embedding present) before any work
    if max_frames is not None and max_frames <= 0:
        raise FaceLangError(f"--max-frames must be positive, got {max_frames}")
    src = open_source(source)
    if src.live and preview:
        src.close()
        raise FaceLangError("--preview needs a file source (a live stream cannot be read twice); "
                            "record the stream to a file first")
    bar = None
    lmks, size = [], (0, 0)
    try:
        total = src.num_frames if max_frames is None else min(max_frames, src.num_frames or max_frames)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", desc=Path(str(source)).name, leave=False)
        with LandmarkDetector(static_image_mode=not src.live and src.num_frames == 1, face_index=face_index,
                              max_num_faces=4 if face_index is None else face_index + 1) as det:
            if src.live and flame is not None:
                raise FaceLangError("--model flame tracks files (offline); use the built-in rig for live sources")
            live_fitter = FaceFitter(None, config) if src.live else None
            results = []
            for frame in src:
                if max_frames is not None and frame.index >= max_frames:
                    break
                size = (frame.image.shape[1], frame.image.shape[0])
                lmk = det.detect(frame.image)
                lmks.append(lmk)
                if live_fitter is not None:
                    results.append(live_fitter.process(lmk, frame.time))
                if bar is not None:
                    bar.update(1)
        fps = float(src.fps)
    finally:
        if bar is not None:
            bar.close()
        src.close()
    if not lmks:
        raise FaceLangError(f"'{source}' produced no frames")
    if flame is not None:
        return _track_flame(flame, lmks, fps, size, preview, source)
    fitter = live_fitter if src.live else None
    if fitter is None:
        from .fitter import fit_sequence

        fitter = FaceFitter(None, config)
        results = fit_sequence(lmks, fps, config, fitter=fitter)
    if preview:
        _write_preview(source, preview, fps, fitter, lmks, results, src.live)
    nan_lmk = np.full((478, 3), np.nan, np.float32)
    return Track(np.stack([r.params for r in results]), list(fitter.model.param_names),
                 np.array([r.valid for r in results], bool),
                 np.stack([nan_lmk if x is None else x for x in lmks]),
                 np.array([r.residual for r in results], np.float32), np.stack([r.camera for r in results]),
                 fps, "builtin", size, fitter.neutral.astype(np.float32), fitter.rest_rotation.copy())


def _track_flame(flame, lmks, fps, size, preview, source) -> Track:
    from .flame_fit import FlameFitter

    results = FlameFitter(flame).fit_sequence(lmks, fps)
    if preview:
        _write_preview(source, preview, fps, None, lmks, results, False)
    nan_lmk = np.full((478, 3), np.nan, np.float32)
    return Track(np.stack([r.params for r in results]), list(flame.param_names),
                 np.array([r.valid for r in results], bool), np.stack([nan_lmk if x is None else x for x in lmks]),
                 np.array([r.residual for r in results], np.float32), np.stack([r.camera for r in results]),
                 fps, "flame", size, None)


def _write_preview(source, path, fps, fitter, lmks, results, live: bool) -> None:
    """The fitted mesh over each input frame (files are read again)."""
    from .preview import PreviewWriter

    if live:
        raise FaceLangError("--preview needs a file source (a live stream cannot be read twice)")
    writer = PreviewWriter(path, fps, fitter)
    try:
        with open_source(source) as src:
            for frame, lmk, res in zip(src, lmks, results):
                writer.write(frame.image, lmk, res)
        writer.close()
    except BaseException:
        writer.abort()
        raise
