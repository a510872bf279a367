"""`pyfacelang bench l2m`: time to generate seconds of motion from text with
the C++ decoding loop (csrc/decode) against the torch loop in the same
process, with and without classifier-free guidance.

Same prompt, same model, same number of tokens; each figure is the median of
`repeats` runs after a warm-up. The prompt's forward pass (text encoder,
prefix) is torch in both and included."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from .config import SampleConfig

PROMPT = "a slow smile, then a surprised jaw drop"


def generation_ms(model, seconds: float = 10.0, repeats: int = 5, sample: SampleConfig = SampleConfig(),
                  backend: str = "auto") -> float:
    """Median milliseconds to generate `seconds` of motion for one prompt."""
    model.generate([PROMPT], seconds=1.0, sample=sample, backend=backend)   # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.generate([PROMPT], seconds=seconds, sample=sample, backend=backend)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def bench_l2m(model, seconds: float = 10.0, repeats: int = 5, sample: SampleConfig = SampleConfig()) -> dict:
    import torch

    rows = []
    for guided in (True, False):
        s = sample if guided else dataclasses.replace(sample, cfg_scale=1.0)
        base = generation_ms(model, seconds, repeats, s, "torch")
        for backend in ("torch", "kernel"):
            ms = base if backend == "torch" else generation_ms(model, seconds, repeats, s, backend)
            rows.append({"backend": backend, "guided": guided and s.cfg_scale != 1.0, "ms": round(ms, 2),
                         "ms_per_frame": round(ms / model.frames(seconds), 4),
                         "speedup_vs_torch": round(base / ms, 2)})
    best = min(r["ms"] for r in rows if r["backend"] == "kernel" and r["guided"] == rows[0]["guided"])
    return {"prompt": PROMPT, "seconds": seconds, "frames": model.frames(seconds), "repeats": repeats,
            "torch_threads": torch.get_num_threads(), "cfg_scale": sample.cfg_scale, "rows": rows,
            "ms_10s": round(best * 10.0 / seconds, 2)}


def format_table(res: dict) -> str:
    lines = [f"{'backend':8s} {'guided':>6s} {'ms':>9s} {'ms/frame':>9s} {'x torch':>8s}"]
    for r in res["rows"]:
        lines.append(f"{r['backend']:8s} {str(r['guided']):>6s} {r['ms']:9.1f} {r['ms_per_frame']:9.3f} "
                     f"{r['speedup_vs_torch']:8.2f}")
    return "\n".join(lines)
