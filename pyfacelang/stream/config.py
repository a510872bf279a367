"""Settings of the live loop (`pyfacelang live`, `pyfacelang.live()`), as a
dataclass; argparse stays in the CLI."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import FaceLangError


@dataclass(frozen=True)
class LiveConfig:
    # Seconds of tokens the captioner reads: the shipped captioner was trained
    # on 4 s windows, so this is what it describes best.
    window_s: float = 4.0
    # Seconds (of source time) between captions; 2 s gives overlapping windows
    # (each moment is described twice) without keeping the captioner busy.
    caption_every: float = 2.0
    # Frames waiting between capture and processing. Small on purpose: a
    # frame that waits is a frame of latency. When the queue is full and
    # `drop` is on, the oldest waiting frame is dropped, so latency never grows.
    queue_size: int = 2
    # Pace file sources at their own frame rate, as a camera would deliver
    # them (None: files paced, cameras and streams not, since they pace
    # themselves). `bench live` turns it off to read as fast as it can.
    realtime: bool | None = None
    # Drop old frames when processing falls behind (None: on exactly when the
    # source runs in real time). Off, capture waits instead (every frame is
    # processed; what a benchmark over a file wants).
    drop: bool | None = None
    # Stop after this many frames (None: the whole source).
    max_frames: int | None = None
    # Read a file source again from the start when it ends (soak tests, kiosks).
    loop: bool = False
    # Caption at all (off: tokens only, e.g. when driving an avatar).
    caption: bool = True
    # Read each fitted frame through the motion reader (track/reader.py)
    # before it is tokenized and sent: what `caption VIDEO` does offline, so
    # live and file captions agree. Off: the fitter's weights as they are.
    read_motion: bool = True
    # Keep each frame's BGR image on its event (for --show / --preview);
    # off by default so consumers that only want numbers do not hold images.
    keep_image: bool = False
    # torch intra-op threads while the loop runs (None: leave torch's setting).
    # The loop's torch work is many tiny ops on one frame; extra threads only
    # add wake-ups: one token took 8 ms with 2 threads and 0.3 ms with 1 on a
    # busy 2-core machine. The setting is process-wide and restored on stop.
    torch_threads: int | None = 1
    # Stop after this many seconds of wall time (None: when the source ends).
    max_seconds: float | None = None

    def __post_init__(self):
        if not self.window_s > 0 or not self.caption_every > 0:
            raise FaceLangError(f"window and caption interval must be positive, got {self.window_s} s and "
                                f"{self.caption_every} s")
        if self.queue_size < 1:
            raise FaceLangError(f"queue_size must be at least 1, got {self.queue_size}")
        if self.max_frames is not None and self.max_frames <= 0:
            raise FaceLangError(f"max_frames must be positive, got {self.max_frames}")
