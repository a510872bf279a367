"""`pyfacelang demo`: the whole system on a sample it makes itself (no
camera, no download):

1. a performance with known labels from the corpus recipes (an emotion, a
   micro-action, a head motion) rendered on the built-in rig -> `input.mp4`;
2. that video through the live loop (landmarks -> fit -> one token per
   frame -> captions) -> `demo.mp4` side by side (input | fitted mesh, token
   strip, captions) and `events.jsonl`;
3. text -> motion -> the rig: `avatar.mp4`, `avatar.glb`, `avatar.csv`;
4. `summary.json`, printed at the end.

With a source (`--source 0`, a file) step 1 is skipped and the source runs
through steps 2-4.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import FaceLangError

DEMO_PROMPT = "a slow smile, then a surprised jaw drop"


def sample_plan(seconds: float = 6.0):
    """The demo performance: fixed so every run shows the same thing."""
    from ..corpus.synth import ClipPlan

    return ClipPlan(index=7, emotion="joyful", intensity=4, actions=("blink",), head="nod", seconds=seconds)


def make_sample(path, size: int = 320, seed: int = 0, seconds: float = 6.0) -> dict:
    """Render the demo performance to `path` (.mp4); returns its caption and labels."""
    from ..corpus.synth import SynthConfig, generate_clip
    from ..face import load_model
    from ..render.faces import model_mesh, render_params
    from ..render.raster import Camera
    from ..render.video import VideoWriter
    from ..tokens.geometry import rig_params

    cfg = SynthConfig(clips=1, seed=seed)
    motion, identity, meta = generate_clip(sample_plan(seconds), cfg)
    rig = load_model("builtin")
    P = rig_params(rig, motion, identity)
    cam = Camera(width=size, height=size).fit(model_mesh(rig, P[0])[0], margin=0.18)
    with VideoWriter(str(path), fps=cfg.fps) as vw:
        for p in P:
            vw.write(render_params(rig, p, camera=cam, supersample=1))
    return {"caption": meta["caption"], "labels": meta["labels"], "frames": len(P), "fps": cfg.fps}


def run_demo(out_dir="demo_out", source=None, prompt: str = DEMO_PROMPT, seconds: float = 5.0,
             log=print) -> dict:
    import cv2

    from ..l2m.animate import text_to_motion
    from ..l2m.export import write_arkit_csv, write_glb
    from ..render.compose import hstack_frames
    from ..render.sequence import render_param_files
    from ..render.video import VideoWriter
    from ..track.pipeline import save_npz
    from .config import LiveConfig
    from .overlay import LiveView
    from .session import LiveSession

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FaceLangError(f"demo output '{out}' exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    summary: dict = {"out": str(out)}
    if source is None:
        log("[1/3] making a sample: a performance from the corpus recipes, rendered on the built-in rig")
        sample = make_sample(out / "input.mp4")
        summary["sample"] = {"file": str(out / "input.mp4"), "truth": sample["caption"], "frames": sample["frames"]}
        log(f"      {sample['frames']} frames; what it shows: \"{sample['caption']}\"")
        source = str(out / "input.mp4")
    else:
        log(f"[1/3] source: {source}")
    log("[2/3] live loop: landmarks -> fit -> one token per frame -> captions")
    live_src = isinstance(source, int) or str(source).isdigit() or "://" in str(source)
    cfg = LiveConfig(realtime=False, drop=live_src, keep_image=True,
                     max_seconds=20.0 if live_src else None)
    view = LiveView(width=320)
    captions, tokens, pad = [], [], None
    truth = summary.get("sample", {}).get("truth", "")
    with LiveSession(source, cfg) as session, VideoWriter(str(out / "demo.mp4"), fps=session.fps) as vw, \
            open(out / "events.jsonl", "w") as jl:
        for ev in session.events():
            jl.write(json.dumps(ev.to_json()) + "\n")
            if ev.type == "caption":
                view.add_caption(ev)
                captions.append(ev.to_json())
                log(f"      {ev.start:5.1f}-{ev.end:4.1f}s  {ev.caption}")
            elif ev.type == "frame":
                tokens.append(-1 if ev.token is None else ev.token)
                img = ev.image
                s = 320 / img.shape[1]
                left = cv2.resize(img, (320, int(round(img.shape[0] * s))))
                right = view.frame(ev)
                if pad is None:   # the same panel every frame: laid out once
                    pad = np.zeros((right.shape[0] - left.shape[0], 320, 3), np.uint8)
                    _write_lines(pad, "input" + (" (what it shows):" if truth else ""), truth)
                vw.write(hstack_frames([np.concatenate([left, pad]), right]))
            elif ev.type == "status" and ev.kind != "end":
                log(f"      [{ev.kind}] {ev.message}")
        stats = session.stats.summary()
    toks = np.asarray(tokens)
    summary["live"] = {"frames": stats["frames_processed"], "with_face": stats["frames_with_face"],
                       "distinct_tokens": int(len(np.unique(toks[toks >= 0]))), "captions": captions,
                       "fps": stats["fps"], "video": str(out / "demo.mp4")}
    log(f"[3/3] text -> motion: \"{prompt}\" ({seconds:g} s)")
    anim = text_to_motion(prompt, seconds)
    save_npz(str(out / "avatar.npz"), anim.param_arrays())
    render_param_files([str(out / "avatar.npz")], str(out / "avatar.mp4"), size=320, labels=[prompt])
    write_glb(str(out / "avatar.glb"), _rig(), anim.motion, anim.fps)
    write_arkit_csv(str(out / "avatar.csv"), anim.motion, anim.fps)
    summary["avatar"] = {"prompt": prompt, "frames": len(anim.tokens), "fps": anim.fps,
                         "parts": [{"text": t, "start": round(f / anim.fps, 2)} for t, f in anim.segments],
                         "files": [str(out / f) for f in ("avatar.mp4", "avatar.glb", "avatar.csv", "avatar.npz")]}
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _write_lines(img: np.ndarray, title: str, text: str) -> None:
    """A title line, then `text` laid out whole in the rest of the panel (as the live view lays out captions)."""
    import cv2

    from .overlay import fit_caption

    grey = (170, 170, 170)
    cv2.putText(img, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, grey, 1, cv2.LINE_AA)
    lines, scale, pitch = fit_caption(text, img.shape[1] - 16, img.shape[0] - 26)
    for k, line in enumerate(lines):
        cv2.putText(img, line, (8, 26 + int(round(36 * scale)) + pitch * k), cv2.FONT_HERSHEY_SIMPLEX, scale, grey, 1,
                    cv2.LINE_AA)


def _rig():
    from ..face import load_model

    return load_model("builtin")


def format_summary(s: dict) -> str:
    lines = ["", f"demo done in {s['seconds']} s -> {s['out']}/"]
    if "sample" in s:
        lines.append(f"  sample (truth):   {s['sample']['truth']}")
    lv = s["live"]
    lines.append(f"  tracked:          {lv['with_face']}/{lv['frames']} frames with a face, "
                 f"{lv['distinct_tokens']} distinct tokens, {lv['fps']} fps")
    for c in lv["captions"]:
        lines.append(f"  caption {c['start']:4.1f}-{c['end']:4.1f}s: {c['caption']}")
    a = s["avatar"]
    lines.append(f"  text -> motion:   \"{a['prompt']}\" -> {a['frames']} frames at {a['fps']:g} fps")
    if len(a.get("parts", [])) > 1:
        lines.append("  in parts:         " + "; ".join(f"{p['start']:.1f} s '{p['text']}'" for p in a["parts"]))
    lines.append(f"  videos:           {lv['video']} (input | fit, tokens, captions), {a['files'][0]}")
    lines.append(f"  avatar files:     {a['files'][1]} (glTF), {a['files'][2]} (ARKit CSV)")
    return "\n".join(lines)
