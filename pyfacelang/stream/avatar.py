"""Play motion rows in real time to avatar sinks (VMC, WebSocket): frame i
is sent at start + i / fps, so a receiver sees the model's frame rate however
long sending takes; if the sender falls behind it skips ahead, never drifts."""
from __future__ import annotations

import threading
import time

import numpy as np

from ..errors import FaceLangError
from ..tokens.geometry import MOTION_DIM


def play_motion(motion, fps: float, sinks, *, loop: bool = False, stop: threading.Event | None = None,
                on_frame=None, max_seconds: float | None = None) -> dict:
    """Send each (55,) row of `motion` (T, 55) to every sink's `send(row, t,
    index)` at `fps`. loop: start again at the end until `stop` is set or
    `max_seconds` pass. Returns {'frames_sent', 'frames_skipped', 'seconds'}."""
    m = np.asarray(motion, np.float32)
    if m.ndim != 2 or m.shape[1] != MOTION_DIM or len(m) == 0:
        raise FaceLangError(f"motion: expected (T, {MOTION_DIM}) rows with T >= 1, got {m.shape}")
    if not fps > 0:
        raise FaceLangError(f"frame rate must be positive, got {fps}")
    stop = stop or threading.Event()
    t0 = time.perf_counter()
    sent = skipped = 0
    i = 0
    while not stop.is_set():
        if max_seconds is not None and i / fps >= max_seconds:
            break
        if i >= len(m) and not loop:
            break
        due = t0 + i / fps
        now = time.perf_counter()
        if now > due + 1.0 / fps:            # more than a frame late: skip to the present
            late = int((now - due) * fps)
            skipped += late
            i += late
            continue
        if due > now:
            stop.wait(due - now)
        row = m[i % len(m)]
        for s in sinks:
            s.send(row, i / fps, i)
        if on_frame is not None:
            on_frame(i, row)
        sent += 1
        i += 1
    return {"frames_sent": sent, "frames_skipped": skipped, "seconds": round(time.perf_counter() - t0, 3)}
