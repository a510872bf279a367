"""The live view (`--show`, `--preview`, the demo video): the frame with the
fitted mesh, a strip of the last face tokens (one coloured cell per frame,
the colour a fixed function of the token id, so repeated tokens show as
runs) and the latest caption, wrapped."""
from __future__ import annotations

import collections
import dataclasses

import numpy as np

STRIP_H = 46          # token strip height in pixels
CAPTION_LINES = 3     # the caption panel's height, in lines at the full font size
CAPTION_SCALE = 0.5   # Hershey simplex scale of a caption that fits at full size
MIN_CAPTION_SCALE = 0.34   # smallest scale tried before a caption is cut (still legible at 320 px)
LINE_PITCH = 44       # line pitch in px per unit of font scale (22 px at 0.5, as the panel's height assumes)


def wrap_pixels(text: str, width_px: int, scale: float) -> list[str]:
    """Greedy word wrap measured with OpenCV's own glyph widths (a word
    wider than the line stays whole on its own line)."""
    lines, cur = [], ""
    for word in text.split():
        cand = f"{cur} {word}" if cur else word
        if cur and _width(cand, scale) > width_px:
            lines.append(cur)
            cur = word
        else:
            cur = cand
    return lines + [cur] if cur else lines


def _width(text: str, scale: float) -> int:
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]


def _shorten(line: str, width_px: int, scale: float) -> str:
    """`line` cut (by words, then by characters) so that it and " ..." fit."""
    while line and _width(line + " ...", scale) > width_px:
        line = line.rsplit(" ", 1)[0] if " " in line else line[:-1]
    return (line + " ...").strip()


def fit_caption(text: str, width_px: int, height_px: int) -> tuple[list[str], float, int]:
    """Lay a caption into a `width_px` x `height_px` panel: the largest font
    scale from CAPTION_SCALE down to MIN_CAPTION_SCALE at which every line
    fits in both directions; if none does, the smallest scale's lines are
    cut (a word wider than the panel too) and the last one ends in "...",
    so a caption is never clipped without a mark. A panel too low for one
    line at the smallest scale gets none. Returns (lines, scale, line pitch in px)."""
    if not text.strip():
        return [], CAPTION_SCALE, int(round(LINE_PITCH * CAPTION_SCALE))
    scale = CAPTION_SCALE
    while True:
        pitch = int(round(LINE_PITCH * scale))
        rows = (height_px - 4) // pitch
        lines = wrap_pixels(text, width_px, scale)
        if 0 < len(lines) <= rows and all(_width(line, scale) <= width_px for line in lines):
            return lines, scale, pitch
        if scale - 0.04 < MIN_CAPTION_SCALE:
            break
        scale = round(scale - 0.04, 2)
    if rows <= 0:
        return [], scale, pitch
    kept = [line if _width(line, scale) <= width_px else _shorten(line, width_px, scale) for line in lines[:rows]]
    if len(lines) > rows and not kept[-1].endswith("..."):
        kept[-1] = _shorten(kept[-1], width_px, scale)
    return kept, scale, pitch


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
        self._layout_key, self._layout = None, None    # fit_caption of (caption, width): once per caption

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
        cap_h = 8 + 22 * CAPTION_LINES      # fixed, so every frame has the same size
        if self._layout_key != (self.caption, w):
            self._layout_key, self._layout = (self.caption, w), fit_caption(self.caption, w - 16, cap_h)
        lines, scale, pitch = self._layout
        out = np.zeros((h + STRIP_H + cap_h, w, 3), np.uint8)
        out[:h] = img
        self._strip(out[h:h + STRIP_H], ev)
        y = h + STRIP_H + int(round(36 * scale))     # first baseline: 18 px down at full size
        if not lines:
            cv2.putText(out, "(waiting for the first caption)", (8, h + STRIP_H + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (150, 150, 150), 1, cv2.LINE_AA)
        for k, line in enumerate(lines):
            cv2.putText(out, line, (8, y + pitch * k), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)
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
