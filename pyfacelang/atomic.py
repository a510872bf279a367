"""Atomic file output: write beside the destination, fsync, rename into place.
A failure (or a kill) never leaves a partial destination file; at worst a
hidden temporary that the next run or `remove_quietly` cleans up."""
from __future__ import annotations

import os
import tempfile

from .errors import FaceLangError


def temp_path(path: str, suffix: str = "") -> str:
    """Create (and close) an empty hidden temporary file beside `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=folder)
    except OSError as exc:
        raise FaceLangError(f"cannot write {path}: {exc.strerror or exc}") from exc
    os.close(fd)
    return tmp


def publish(tmp: str, path: str) -> None:
    """fsync `tmp`, give it normal permissions (mkstemp makes 0600: keep an
    existing destination's mode, else 0666 minus the umask), rename over `path`."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def remove_quietly(path: str | None) -> None:
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def commit(tmp: str, path: str, before=None) -> None:
    """Run `before()` (fill or check the temporary), then publish it as `path`.
    On any failure the temporary is removed and `path` is untouched; OS errors
    become a FaceLangError naming the destination."""
    try:
        if before is not None:
            before()
        publish(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise FaceLangError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        remove_quietly(tmp)
        raise


def write_atomic(path, fill, suffix: str = "") -> None:
    """Atomically create `path` with fill(binary file object)."""
    path = os.fspath(path)
    tmp = temp_path(path, suffix)

    def _fill() -> None:
        with open(tmp, "wb") as fh:
            fill(fh)

    commit(tmp, path, _fill)
