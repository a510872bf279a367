"""Captioning a long token sequence in sliding windows, with timestamps."""
from __future__ import annotations

import re

import numpy as np

from ..errors import FaceLangError
from .templates import DEFAULT_PROMPT


def parse_seconds(text: str, what: str = "duration") -> float:
    """'4s', '4', '2.5s', '500ms' -> seconds (> 0)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*", str(text))
    if not m:
        raise FaceLangError(f"{what}: expected a duration such as 4s, 2.5s or 500ms, got '{text}'")
    v = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if v <= 0:
        raise FaceLangError(f"{what}: must be positive, got '{text}'")
    return v


def resample(tokens: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Nearest-frame resampling of a token sequence to another frame rate."""
    if abs(fps_in - fps_out) < 1e-6 or len(tokens) == 0:
        return tokens
    n = max(1, int(round(len(tokens) * fps_out / fps_in)))
    idx = np.minimum(((np.arange(n) + 0.5) * fps_in / fps_out).astype(np.int64), len(tokens) - 1)
    return tokens[idx]


def window_spans(n: int, fps: float, window_s: float, stride_s: float) -> list[tuple[int, int]]:
    """Frame spans [start, end) of the windows. A sequence no longer than the
    window is one window; otherwise windows every stride, plus one ending at
    the last frame so the tail is covered."""
    W = max(1, int(round(window_s * fps)))
    S = max(1, int(round(stride_s * fps)))
    if n <= W:
        return [(0, n)]
    spans = [(s, s + W) for s in range(0, n - W + 1, S)]
    if spans[-1][1] < n:
        spans.append((n - W, n))
    return spans


def caption_windows(model, tokens: np.ndarray, fps: float, window_s: float = 4.0, stride_s: float = 2.0,
                    prompt: str = DEFAULT_PROMPT, batch: int = 32) -> list[dict]:
    """[{'start', 'end' (seconds), 'caption'}] for each window of `tokens` (at `fps`)."""
    if fps <= 0 or not np.isfinite(fps):
        raise FaceLangError(f"frame rate must be positive, got {fps}")
    spans = window_spans(len(tokens), fps, window_s, stride_s)
    seqs = [resample(np.asarray(tokens[a:b]), fps, model.fps) for a, b in spans]
    texts = []
    for k in range(0, len(seqs), batch):
        texts += model.caption_batch(seqs[k:k + batch], prompt)
    return [{"start": round(a / fps, 3), "end": round(b / fps, 3), "caption": t} for (a, b), t in zip(spans, texts)]
