"""`pyfacelang bench m2l`: time to caption one 4 s window (batch 1, one CPU
thread: what the live captioner does every 2 s) with the C++ decoding loop
(csrc/decode) against the torch loop in the same process, on the same
windows, with the same model; and batched captioning (what `eval m2l` and
`caption` over a file do) per window.

The windows are fresh synthetic clips (`seed`), cut to `window_s`. The
prompt's forward pass (face reader, context) is torch in both and included,
and so are the beam-search repairs of malformed answers (`CaptionModel
.repair_beams`), which also decode through the chosen backend. Each figure
is a median over the windows after a warm-up; both backends must give the
same captions, which the benchmark checks."""
from __future__ import annotations

import time

import numpy as np
import torch


def _window_ms(model, windows, backend: str) -> tuple[list[float], list[str]]:
    model.backend = backend
    model.caption(windows[0])                      # warm-up
    times, texts = [], []
    for w in windows:
        t0 = time.perf_counter()
        texts.append(model.caption(w))
        times.append(1000.0 * (time.perf_counter() - t0))
    return times, texts


def _batch_ms(model, windows, backend: str, batch: int) -> float:
    model.backend = backend
    t0 = time.perf_counter()
    for k in range(0, len(windows), batch):
        model.caption_batch(windows[k:k + batch])
    return 1000.0 * (time.perf_counter() - t0) / len(windows)


def bench_m2l(model, tokenizer, *, windows: int = 40, seed: int = 1234, window_s: float = 4.0,
              batch: int = 32, threads: int = 1) -> dict:
    from ..errors import FaceLangError
    from .data import synthetic_items

    if not hasattr(model, "backend"):
        raise FaceLangError(f"bench m2l: the {model.kind} captioner has one decoding loop (the built-in one has two)")
    n = int(round(window_s * model.fps))
    items = synthetic_items(seed, windows, tokenizer, seconds=(window_s, window_s + 2.0))
    seqs = [it.tokens[:n] for it in items]
    was_threads, was_backend = torch.get_num_threads(), model.backend
    torch.set_num_threads(threads)
    try:
        rows = {}
        texts = {}
        for backend in ("torch", "kernel"):
            times, texts[backend] = _window_ms(model, seqs, backend)
            rows[backend] = {"backend": backend, "window_ms": round(float(np.median(times)), 2),
                             "window_ms_p95": round(float(np.percentile(times, 95)), 2),
                             "batch_ms_per_window": round(_batch_ms(model, seqs, backend, batch), 2)}
        if texts["kernel"] != texts["torch"]:
            bad = sum(a != b for a, b in zip(texts["kernel"], texts["torch"]))
            raise FaceLangError(f"bench m2l: the two decoding loops captioned {bad} of {len(seqs)} windows "
                                "differently")
    finally:
        torch.set_num_threads(was_threads)
        model.backend = was_backend
    base = rows["torch"]
    for r in rows.values():
        r["speedup_vs_torch"] = round(base["window_ms"] / r["window_ms"], 2)
        r["batch_speedup_vs_torch"] = round(base["batch_ms_per_window"] / r["batch_ms_per_window"], 2)
    words = float(np.mean([len(t.split()) for t in texts["kernel"]]))
    return {"windows": len(seqs), "window_s": window_s, "tokens_per_window": n, "seed": seed, "batch": batch,
            "torch_threads": threads, "mean_caption_words": round(words, 1), "rows": list(rows.values()),
            "window_ms": rows["kernel"]["window_ms"], "example": texts["kernel"][0]}


def format_table(res: dict) -> str:
    lines = [f"{'backend':8s} {'ms/window':>10s} {'p95':>8s} {'x torch':>8s} {'batched ms/window':>18s} "
             f"{'x torch':>8s}"]
    for r in res["rows"]:
        lines.append(f"{r['backend']:8s} {r['window_ms']:10.1f} {r['window_ms_p95']:8.1f} "
                     f"{r['speedup_vs_torch']:8.2f} {r['batch_ms_per_window']:18.2f} "
                     f"{r['batch_speedup_vs_torch']:8.2f}")
    return "\n".join(lines)
