"""`pyfacelang bench live`: the live loop over a file read as fast as it
can (no real-time pacing; capture waits instead of dropping, so every frame
is processed) with the captioner running, against MediaPipe alone on the
same frames in the same process (the baseline: what landmarks alone allow).
"""
from __future__ import annotations

import time

import numpy as np


def landmarks_alone(source, max_frames: int | None = None) -> dict:
    """Baseline: decode + MediaPipe FaceMesh only, one thread, every frame."""
    from ..track.landmarks import LandmarkDetector
    from ..track.source import open_source

    n, t_lmk = 0, 0.0
    with open_source(source) as src, LandmarkDetector() as det:
        t0 = time.perf_counter()
        for frame in src:
            if max_frames is not None and n >= max_frames:
                break
            a = time.perf_counter()
            det.detect(frame.image)
            t_lmk += time.perf_counter() - a
            n += 1
        wall = time.perf_counter() - t0
    return {"frames": n, "fps": round(n / wall, 1), "landmarks_ms": round(t_lmk / max(n, 1) * 1e3, 3)}


def bench_live(source, *, caption_every: float = 2.0, window_s: float = 4.0, max_frames: int | None = None,
               repeats: int = 1) -> dict:
    from .config import LiveConfig
    from .session import LiveSession

    base = landmarks_alone(source, max_frames)
    cfg = LiveConfig(realtime=False, drop=False, caption_every=caption_every, window_s=window_s,
                     max_frames=max_frames)
    runs = []
    for _ in range(max(1, repeats)):
        with LiveSession(source, cfg) as s:
            for _ev in s.events():
                pass
            runs.append(s.stats.summary())
    best = max(runs, key=lambda r: r["fps"] or 0)
    st = best["stage_ms"]
    return {"source": str(source), "frames": best["frames_processed"], "fps": best["fps"],
            "fps_runs": [r["fps"] for r in runs],
            "stage_ms_median": {k: v["median"] for k, v in st.items()},
            "stage_ms_p95": {k: v["p95"] for k, v in st.items()},
            "frame_latency_ms_median": best["latency_ms"]["median"],
            "caption_latency_ms": best["caption_latency_ms"]["median"],
            "caption_latency_ms_p95": best["caption_latency_ms"]["p95"],
            "captions": best["captions"], "captions_skipped": best["captions_skipped"],
            "dropped_frames": best["frames_dropped"], "frames_with_face": best["frames_with_face"],
            "baseline_landmarks_only_fps": base["fps"], "baseline_landmarks_ms": base["landmarks_ms"],
            "fps_vs_landmarks_only": round((best["fps"] or 0) / base["fps"], 3) if base["fps"] else None}


def format_table(r: dict) -> str:
    rows = [("end to end (live loop, captioner on)", f"{r['fps']:.1f} fps", ""),
            ("baseline: decode + MediaPipe alone", f"{r['baseline_landmarks_only_fps']:.1f} fps",
             f"ratio {r['fps_vs_landmarks_only']:.2f}")]
    for k in ("capture", "landmarks", "fit", "token"):
        rows.append((f"stage {k}", f"{r['stage_ms_median'][k]:.3f} ms", f"p95 {r['stage_ms_p95'][k]:.3f} ms"))
    cl = r["caption_latency_ms"]
    rows.append(("caption latency (window end -> caption)", "-" if cl is None else f"{cl:.1f} ms",
                 f"{r['captions']} captions, {r['captions_skipped']} skipped"))
    rows.append(("dropped frames", str(r["dropped_frames"]), f"{r['frames']} processed"))
    w = max(len(a) for a, _, _ in rows)
    return "\n".join(f"  {a:<{w}}  {b:>12}  {c}" for a, b, c in rows)


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return float(np.nan)
