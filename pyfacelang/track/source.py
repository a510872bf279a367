"""Frame sources: a video file, an image, a folder of images, a webcam index
or a stream URL, all behind one iterator of (index, time_s, BGR frame)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FaceLangError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_IMAGE_FPS = 25.0  # frame rate given to image folders (the corpus rate)


class SourceError(FaceLangError):
    """A frame source that cannot be opened or read."""


@dataclass
class Frame:
    index: int          # 0-based frame number in the source
    time: float         # seconds from the start (index / fps for files)
    image: np.ndarray   # (H, W, 3) uint8 BGR


class FrameSource:
    """Iterate frames from SOURCE. Use `open_source(spec)`.

    Attributes: `fps` (frames per second; image folders use DEFAULT_IMAGE_FPS,
    a single image 0), `num_frames` (None when unknown: webcam, stream),
    `name`."""

    fps: float
    num_frames: int | None
    name: str
    live: bool = False

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoSource(FrameSource):
    """A video file, webcam index or stream URL read with OpenCV."""

    def __init__(self, spec, *, live: bool = False):
        import cv2

        self.name = str(spec)
        self.live = live
        self._cap = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            what = "camera" if isinstance(spec, int) else ("stream" if live else "video")
            raise SourceError(f"cannot open {what} '{spec}' (missing, unreadable or not a video)")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 30.0
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.num_frames = n if (n > 0 and not live) else None

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            ok, img = self._cap.read()
            if not ok or img is None:
                break
            yield Frame(i, i / self.fps, img)
            i += 1
        if i == 0:
            raise SourceError(f"'{self.name}' has no readable frames (corrupt or empty video)")

    def close(self) -> None:
        self._cap.release()


class ImageSource(FrameSource):
    """One image file or a folder of images (sorted by name)."""

    def __init__(self, path: Path):
        self.name = str(path)
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not self.files:
                raise SourceError(f"folder '{path}' contains no images ({', '.join(IMAGE_EXTS)})")
            self.fps = DEFAULT_IMAGE_FPS
        else:
            self.files = [path]
            self.fps = DEFAULT_IMAGE_FPS
        self.num_frames = len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        for i, f in enumerate(self.files):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise SourceError(f"cannot read image '{f}' (corrupt or not an image)")
            yield Frame(i, i / self.fps, img)


def open_source(spec) -> FrameSource:
    """SOURCE -> FrameSource: an int or digit string is a webcam index, a
    string with '://' a stream URL, an existing folder a folder of images, a
    file with an image extension an image, any other existing file a video."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return VideoSource(int(spec), live=True)
    s = os.fspath(spec)
    if "://" in s:
        return VideoSource(s, live=True)
    path = Path(s)
    if not path.exists():
        raise SourceError(f"'{s}' not found (expected a video, an image, a folder of images, "
                          "a webcam index or a stream URL)")
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTS:
        return ImageSource(path)
    return VideoSource(s)
