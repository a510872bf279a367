"""The live view (`--show`, `--preview`, the demo video): the frame with the
fitted mesh, a strip of the last face tokens (one coloured cell per frame,
the colour a fixed function of the token id, so repeated tokens show as
runs) and the latest caption, wrapped."""
from __future__ import annotations

import collections
import dataclasses
import textwrap

import numpy as np

STRIP_H = 46          # token strip height in pixels
CAPTION_LINES = 3


def token_color(token: int | None) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per token id (golden-ratio hue); grey for None."""
    import cv2

    if token is None:
        return (60, 60, 60)
    hue = int((token * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 170 + (token * 37) % 86, 200 + (token * 11) % 56]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


class LiveView:
    """Keeps the recent tokens and the latest caption; `frame(event)` draws
    the view of one FrameEvent (which must carry its image)."""

    def __init__(self, model=None, cells: int = 120, width: int | None = None):
        from ..face import load_model
        from ..track.preview import MeshOverlay

        self.mesh = MeshOverlay(model or load_model("builtin"))
        self.tokens = collections.deque(maxlen=cells)
        self.caption = ""
        self.caption_span = ""
        self.width = width

    def add_caption(self, ev) -> None:
        self.caption = ev.caption
        self.caption_span = f"{ev.start:.1f}-{ev.end:.1f}s"

    def frame(self, ev) -> np.ndarray:
        import cv2

        self.tokens.append(ev.token)
        img, res = ev.image, ev.result
        if self.width is not None and img.shape[1] != self.width:
            s = self.width / img.shape[1]
            img = cv2.resize(img, (self.width, int(round(img.shape[0] * s))))
            if res is not None and res.valid:
                res = dataclasses.replace(res, landmarks=res.landmarks * np.float32(s))
        img = self.mesh.draw(img, res, weights=False) if res is not None else img.copy()
        h, w = img.shape[:2]
        lines = textwrap.wrap(self.caption, width=max(20, w // 11))[:CAPTION_LINES] if self.caption else []
        cap_h = 8 + 22 * CAPTION_LINES      # fixed, so every frame has the same size
        out = np.zeros((h + STRIP_H + cap_h, w, 3), np.uint8)
        out[:h] = img
        self._strip(out[h:h + STRIP_H], ev)
        y = h + STRIP_H + 18
        if not lines:
            cv2.putText(out, "(waiting for the first caption)", (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (150, 150, 150),
                        1, cv2.LINE_AA)
        for k, line in enumerate(lines):
            cv2.putText(out, line, (8, y + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(out, f"t={ev.time:.2f}s", (w - 92, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, f"t={ev.time:.2f}s", (w - 92, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        return out

    def _strip(self, strip: np.ndarray, ev) -> None:
        import cv2

        strip[:] = 25
        n = self.tokens.maxlen
        cw = strip.shape[1] / n
        for i, t in enumerate(self.tokens):
            x0 = int(round((n - len(self.tokens) + i) * cw))
            x1 = int(round((n - len(self.tokens) + i + 1) * cw))
            cv2.rectangle(strip, (x0, 4), (max(x0, x1 - 1), 26), token_color(t), -1)
        label = f"token {ev.token}" if ev.token is not None else "no face"
        cv2.putText(strip, label, (6, 41), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
        if self.caption_span:
            cv2.putText(strip, f"caption {self.caption_span}", (strip.shape[1] - 150, 41), cv2.FONT_HERSHEY_SIMPLEX,
                        0.42, (180, 180, 180), 1, cv2.LINE_AA)
