"""Atomic image and video output.

Both writers put data into a hidden temporary file next to the destination
and `os.replace` it into place only when everything succeeded, so a crash or
an exception never leaves a truncated .mp4/.png behind (and never clobbers a
previous good file with a partial one)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from ..atomic import commit, remove_quietly, temp_path
from ..errors import FaceLangError, ShapeError


def _check_folder(path: str | os.PathLike) -> tuple[str, str]:
    """(absolute path, its folder); FaceLangError if the folder is missing."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FaceLangError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise FaceLangError(f"cannot write {path}: it is a directory")
    return path, folder


def _check_frame(frame, name: str = "frame") -> np.ndarray:
    img = np.asarray(frame)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ShapeError(f"{name} must have shape (H, W, 3) BGR, got {img.shape}")
    if img.dtype != np.uint8:
        raise ShapeError(f"{name} must be uint8, got {img.dtype}")
    return np.ascontiguousarray(img)


IMAGE_FORMATS = (".png", ".jpg", ".jpeg")


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 BGR (or (H, W) grey) image atomically, encoded
    by the file's extension (.png, .jpg/.jpeg)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None].repeat(3, axis=2)
    img = _check_frame(img, "image")
    path, folder = _check_folder(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_FORMATS:
        raise FaceLangError(f"{path}: unsupported image format '{ext or '(none)'}' (use {', '.join(IMAGE_FORMATS)})")
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise FaceLangError(f"could not encode {path} as {ext}")
    tmp = temp_path(path, ext)

    def fill() -> None:
        with open(tmp, "wb") as fh:
            fh.write(buf.tobytes())

    commit(tmp, path, fill)


class VideoWriter:
    """Write frames to an .mp4 (OpenCV, 'mp4v' codec) atomically.

        with VideoWriter("out.mp4", fps=30) as vw:
            for frame in frames:          # (H, W, 3) uint8 BGR, all one size
                vw.write(frame)
        # out.mp4 exists only now; if the block raised, nothing was written.

    The frame size is taken from the first frame.  `close()` publishes the
    file; `abort()` discards it.  Closing without any frame raises
    FaceLangError (an empty video is almost always a bug upstream).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, fourcc: str = "mp4v"):
        self.path, self._folder = _check_folder(path)
        if not fps > 0:
            raise FaceLangError(f"fps must be positive, got {fps}")
        if len(fourcc) != 4:
            raise FaceLangError(f"fourcc must be 4 characters, got {fourcc!r}")
        self.fps = float(fps)
        self.fourcc = fourcc
        self.frame_size: tuple[int, int] | None = None  # (width, height)
        self.frame_count = 0
        self._writer: cv2.VideoWriter | None = None
        self._tmp: str | None = None
        self._done = False

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # never leave a stray temp file behind
        try:
            if not self._done:
                self.abort()
        except Exception:
            pass

    # -- writing -----------------------------------------------------------
    def _open(self, width: int, height: int) -> None:
        self._tmp = temp_path(self.path, ".mp4")
        writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*self.fourcc),
                                 self.fps, (width, height))
        if not writer.isOpened():
            writer.release()
            remove_quietly(self._tmp)
            self._tmp = None
            raise FaceLangError(f"cannot write {self.path}: OpenCV could not open a "
                                f"{self.fourcc!r} video writer for {width}x{height} frames")
        self._writer = writer
        self.frame_size = (width, height)

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame; its size must match the first."""
        if self._done:
            raise FaceLangError(f"VideoWriter for {self.path} is already closed")
        img = _check_frame(frame)
        height, width = img.shape[:2]
        if self._writer is None:
            self._open(width, height)
        elif (width, height) != self.frame_size:
            raise ShapeError(f"frame {self.frame_count} is {width}x{height} but the video is "
                             f"{self.frame_size[0]}x{self.frame_size[1]} (set by the first frame)")
        self._writer.write(img)
        self.frame_count += 1

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._done:
            return
        self._done = True
        if self._writer is None:
            raise FaceLangError(f"no frames were written to {self.path}")
        self._writer.release()
        self._writer = None
        tmp, self._tmp = self._tmp, None

        def check() -> None:
            if os.path.getsize(tmp) == 0:
                raise FaceLangError(f"OpenCV produced an empty file for {self.path}")

        commit(tmp, self.path, check)

    def abort(self) -> None:
        """Discard everything written so far; the destination is untouched."""
        self._done = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        remove_quietly(self._tmp)
        self._tmp = None
