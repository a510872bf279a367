"""What the live loop emits: one `FrameEvent` per processed frame, a
`CaptionEvent` per caption and `StatusEvent`s (face lost or found, frames
dropped, camera gone, corrupt frame, end). All serialise to one JSON object
(`to_json()`), the lines of `--jsonl`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..face.arkit import ARKIT_52
from ..tokens.geometry import N_EXPR

# ARKit weights put on every frame event: the ones that carry emotion and the
# micro-actions the captioner names (blinks, smiles, jaw, brows, pout, sneer).
KEY_SHAPES = ("eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft", "mouthSmileRight",
              "mouthFrownLeft", "mouthFrownRight", "browInnerUp", "browDownLeft", "browDownRight",
              "mouthPucker", "noseSneerLeft", "eyeWideLeft", "eyeWideRight")
_KEY_IDX = [ARKIT_52.index(n) for n in KEY_SHAPES]


def head_degrees(motion_row: np.ndarray) -> dict:
    """Head rotation vector (rad; x = pitch, + chin down; y = yaw, + toward the
    subject's left; z = roll) -> {'pitch', 'yaw', 'roll'} in degrees."""
    r = np.degrees(np.asarray(motion_row[N_EXPR:N_EXPR + 3], np.float64))
    return {"pitch": round(float(r[0]), 2), "yaw": round(float(r[1]), 2), "roll": round(float(r[2]), 2)}


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


@dataclass
class FrameEvent:
    index: int                    # frame number in the source (dropped frames leave gaps)
    time: float                   # source time of the frame, seconds
    valid: bool                   # a face was fitted
    token: int | None             # the frame's face token (None: no face yet on this track)
    motion: np.ndarray | None     # (55,) ARKit weights + head rotation vector, None without a face
    stages_ms: dict               # capture / landmarks / fit / token, milliseconds
    latency_ms: float             # from the frame being read to this event
    result: object = None         # the FitResult (mesh landmarks for drawing); not serialised
    image: np.ndarray | None = None  # the BGR frame when LiveConfig.keep_image; not serialised
    type: str = field(default="frame", init=False)

    def to_json(self) -> dict:
        d = {"type": "frame", "t": round(self.time, 4), "index": self.index, "valid": self.valid,
             "token": self.token, "latency_ms": round(self.latency_ms, 3),
             "stages_ms": {k: round(v, 3) for k, v in self.stages_ms.items()}}
        if self.motion is not None:
            d["arkit"] = {n: round(float(self.motion[i]), 4) for n, i in zip(KEY_SHAPES, _KEY_IDX)}
            d["head"] = head_degrees(self.motion)
        return d


@dataclass
class CaptionEvent:
    start: float                  # window start, source seconds
    end: float                    # window end (its last frame), source seconds
    caption: str
    latency_ms: float             # from the window's last frame being processed to the caption
    tokens: int                   # face tokens the captioner read
    type: str = field(default="caption", init=False)

    def to_json(self) -> dict:
        return {"type": "caption", "start": round(self.start, 3), "end": round(self.end, 3), "caption": self.caption,
                "latency_ms": round(self.latency_ms, 2), "tokens": self.tokens}


@dataclass
class StatusEvent:
    time: float                   # source time, seconds (NaN before the first frame)
    kind: str                     # 'face_found', 'face_lost', 'dropped', 'corrupt_frame', 'source_error', 'end'
    message: str
    type: str = field(default="status", init=False)

    def to_json(self) -> dict:
        return {"type": "status", "t": _num(round(self.time, 4) if math.isfinite(self.time) else None),
                "kind": self.kind, "message": self.message}
