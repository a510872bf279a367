"""CLI for live use: `live` (webcam/stream/file -> tokens, captions, avatar
stream), `avatar` (text -> motion played to VMC / WebSocket), `demo`, and
`bench live`."""
from __future__ import annotations

import argparse
import json
import sys
import time

from .errors import FaceLangError


def _seconds(text, what):
    from .m2l.windows import parse_seconds

    return parse_seconds(text, what)


def _sinks(args, sinks: list) -> list:
    """Open the requested avatar sinks into `sinks` (so the caller closes
    whatever was opened, even when a later one fails)."""
    from .stream.sinks import VMCSender, WebSocketStream, parse_host_port

    if getattr(args, "vmc", None):
        host, port = parse_host_port(args.vmc)
        sinks.append(VMCSender(host, port, names=args.vmc_names))
        print(f"VMC: sending to {host}:{port} (OSC over UDP)")
    if getattr(args, "ws", None):
        host, port = parse_host_port(args.ws)
        ws = WebSocketStream(port, host)
        sinks.append(ws)
        print(f"WebSocket: ws://{ws.address[0]}:{ws.address[1]}/ (one JSON message per frame)")
    return sinks


def _close_all(things) -> None:
    for t in things:
        if isinstance(t, list):
            _close_all(t)
            continue
        try:
            t.close()
        except Exception:  # noqa: BLE001 - closing is best effort at exit
            pass


def cmd_live(args) -> int:
    from pathlib import Path

    from .stream import LiveConfig, LiveSession
    from .stream.bench import rss_mb

    for flag, path, ext in (("--jsonl", args.jsonl, ".jsonl"), ("--preview", args.preview, ".mp4")):
        if path and not Path(path).resolve().parent.is_dir():
            raise FaceLangError(f"{flag}: output folder '{Path(path).parent}' does not exist")
        if path and flag == "--preview" and not path.lower().endswith(ext):
            raise FaceLangError(f"--preview must be a .mp4 file, got '{path}'")
    cfg = LiveConfig(window_s=_seconds(args.window, "--window"), caption_every=_seconds(args.caption_every,
                                                                                          "--caption-every"),
                     realtime=args.realtime, max_frames=args.max_frames, loop=args.loop, caption=not args.no_caption,
                     keep_image=bool(args.show or args.preview), max_seconds=args.duration)
    session = LiveSession(args.source, cfg, tokenizer=args.tokenizer, captioner=args.captioner)
    sinks: list = []
    view = writer = jl = None
    show = args.show
    closing = [session, sinks]
    last_index = None
    try:
        _sinks(args, sinks)
        if args.show or args.preview:
            from .stream.overlay import LiveView

            view = LiveView(width=480)
        if args.preview:
            from .render.video import VideoWriter

            writer = VideoWriter(args.preview, fps=session.fps)
        if args.jsonl:
            jl = open(args.jsonl, "w", buffering=1)     # one whole line per event, flushed
            closing.append(jl)
        print(f"live: {args.source} at {session.fps:g} fps ({'paced' if session.realtime else 'as fast as read'}, "
              f"{'dropping old frames when behind' if session.drop else 'every frame processed'}); Ctrl-C stops")
        t_stats = time.perf_counter()
        for ev in session.events():
            if jl is not None:
                jl.write(json.dumps(ev.to_json()) + "\n")
            if ev.type == "caption":
                print(f"[{ev.start:7.2f}-{ev.end:7.2f}s] {ev.caption}  ({ev.latency_ms:.0f} ms)", flush=True)
                if view is not None:
                    view.add_caption(ev)
                for s in sinks:
                    if hasattr(s, "send_json"):
                        s.send_json(ev.to_json())
            elif ev.type == "status":
                if ev.kind != "end":
                    print(f"[{ev.kind}] {ev.message}", file=sys.stderr, flush=True)
            else:
                if ev.motion is not None:
                    for s in sinks:
                        s.send(ev.motion, ev.time, ev.index)
                if view is not None:
                    img = view.frame(ev)
                    if writer is not None:   # dropped frames: hold the view, so the video keeps real time
                        gap = 1 if last_index is None else max(1, ev.index - last_index)
                        for _ in range(gap):
                            writer.write(img)
                    last_index = ev.index
                    if show:
                        show = _imshow(img)
                        if show is None:       # 'q' or Esc pressed
                            break
            if args.stats_every and time.perf_counter() - t_stats >= args.stats_every:
                t_stats = time.perf_counter()
                st, q = session.stats, session.queue_lengths()
                print(f"[stats] {st.processed} frames, {st.dropped} dropped, {st.captions} captions, frame queue "
                      f"{q['frames']}/{cfg.queue_size} (max {st.queue_max}), landmarks queue "
                      f"{q['marks']}/1, events queue {q['events']}, rss {rss_mb():.1f} MiB", flush=True)
        if writer is not None:
            writer.close()
            writer = None
    except KeyboardInterrupt:        # the user's way to end a live run: keep the preview
        print("stopped", file=sys.stderr)
        if writer is not None:
            writer.close()
            writer = None
    finally:
        if writer is not None:       # an error: no half-written preview is left behind
            writer.abort()
        _close_all(closing)
    s = session.stats.summary()
    print(f"live done: {s['frames_processed']} frames ({s['frames_with_face']} with a face) at {s['fps']} fps, "
          f"{s['frames_dropped']} dropped, {s['captions']} captions (median latency "
          f"{s['caption_latency_ms']['median']} ms)")
    return 0


def _imshow(img):
    """Show a frame; False once there is no display (headless), None on quit."""
    import cv2

    try:
        cv2.imshow("pyfacelang live", img)
        key = cv2.waitKey(1) & 0xFF
    except cv2.error:
        print("no display available: running headless", file=sys.stderr)
        return False
    return None if key in (ord("q"), 27) else True


def cmd_avatar(args) -> int:
    import threading

    from .l2m.animate import text_to_motion
    from .cli_l2m import sample_config
    from .stream.avatar import play_motion

    if not args.vmc and not args.ws:
        args.vmc = "127.0.0.1:39539"
    sample = sample_config(args)
    anim = text_to_motion(args.text, args.seconds, model=args.model, tokenizer=args.tokenizer, sample=sample,
                          split=args.split)
    sinks: list = []
    stop = threading.Event()
    print(f"avatar: '{args.text}' -> {len(anim.tokens)} frames at {anim.fps:g} fps"
          f"{', looping' if args.loop else ''}; Ctrl-C stops")
    try:
        _sinks(args, sinks)
        r = play_motion(anim.motion, anim.fps, sinks, loop=args.loop, stop=stop, max_seconds=args.duration)
    except KeyboardInterrupt:
        stop.set()
        r = None
    finally:
        _close_all(sinks)
    if r is not None:
        print(f"sent {r['frames_sent']} frames in {r['seconds']} s ({r['frames_skipped']} skipped)")
    return 0


def cmd_demo(args) -> int:
    from .stream.demo import DEMO_PROMPT, format_summary, run_demo

    s = run_demo(args.output, source=args.source, prompt=args.prompt or DEMO_PROMPT, seconds=args.seconds)
    print(format_summary(s))
    return 0


def cmd_bench_live(args, emit, media_dir) -> int:
    from pathlib import Path

    from .stream.bench import bench_live, format_table

    source = args.source
    if source is None:
        media = media_dir(args.media)
        clip = media / "LivePortrait_driving_d3.mp4" if media else None
        if clip is None or not clip.exists():
            raise FaceLangError("bench live: give --source VIDEO (../shared/media is not here)")
        source = str(clip)
    elif not Path(source).is_file():
        raise FaceLangError(f"bench live: --source must be a video file, got '{source}'")
    print(f"bench live on {source}: as fast as read, captioner every 2 s of video")
    r = bench_live(source, max_frames=args.max_frames, repeats=args.repeats_live)
    print(format_table(r))
    emit(r, args.json)
    return 0


def add_parsers(sub) -> None:
    lv = sub.add_parser("live", help="live captioning from a webcam, stream or file (tokens, captions, avatar stream)")
    lv.add_argument("--source", default="0", help="webcam index, stream URL or video file (default 0: the webcam)")
    lv.add_argument("--show", action="store_true", help="a window with the fitted mesh, token strip and caption")
    lv.add_argument("--jsonl", help="write one JSON event per frame and per caption to this file")
    lv.add_argument("--preview", help="write the view (mesh, token strip, caption) as a video (.mp4)")
    lv.add_argument("--vmc", metavar="HOST:PORT", help="mirror the tracked face as VMC (OSC/UDP), e.g. 127.0.0.1:39539")
    lv.add_argument("--vmc-names", choices=["arkit", "pascal"], default="arkit",
                    help="blendshape names: eyeBlinkLeft (arkit) or EyeBlinkLeft (pascal)")
    lv.add_argument("--ws", metavar="[HOST:]PORT", help="serve frames and captions as WebSocket JSON on this port")
    lv.add_argument("--window", default="4s", help="seconds of tokens each caption reads")
    lv.add_argument("--caption-every", default="2s", help="seconds between captions")
    lv.add_argument("--no-caption", action="store_true", help="tokens only (no captioner)")
    lv.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                    help="pace files at their frame rate (default: files paced, cameras as they come)")
    lv.add_argument("--loop", action="store_true", help="play a file source again and again")
    lv.add_argument("--max-frames", type=int, help="stop after N frames")
    lv.add_argument("--duration", type=float, help="stop after this many seconds")
    lv.add_argument("--stats-every", type=float, help="print frame/queue/memory figures every S seconds")
    lv.add_argument("--tokenizer", help="tokenizer folder (default: shipped)")
    lv.add_argument("--captioner", help="caption model folder (default: shipped)")
    lv.set_defaults(func=cmd_live)

    av = sub.add_parser("avatar", help="text -> facial motion played in real time to VMC / WebSocket avatars")
    av.add_argument("text", help="what the face should do")
    av.add_argument("--seconds", type=float, default=5.0)
    av.add_argument("--vmc", metavar="HOST:PORT", help="VMC receiver (default 127.0.0.1:39539 when no --ws)")
    av.add_argument("--vmc-names", choices=["arkit", "pascal"], default="arkit")
    av.add_argument("--ws", metavar="[HOST:]PORT", help="serve the motion as WebSocket JSON on this port")
    av.add_argument("--loop", action="store_true", help="play again and again until Ctrl-C")
    av.add_argument("--duration", type=float, help="stop after this many seconds")
    av.add_argument("--model", help="motion model folder (default: shipped)")
    av.add_argument("--tokenizer", help="tokenizer folder (default: shipped)")
    av.add_argument("--top-k", type=int, default=None, help="as in animate")
    av.add_argument("--temperature", type=float, default=None, help="as in animate")
    av.add_argument("--cfg-scale", type=float, default=None, help="as in animate")
    av.add_argument("--part-cfg-scale", type=float, default=None, help="as in animate")
    av.add_argument("--seed", type=int, default=0)
    av.add_argument("--no-split", dest="split", action="store_false", help="as in animate")
    av.set_defaults(func=cmd_avatar)

    de = sub.add_parser("demo", help="the whole system on a sample it makes itself (or --source 0: the webcam)")
    de.add_argument("--source", help="run on this source instead of the generated sample (0: webcam)")
    de.add_argument("-o", "--output", default="demo_out", help="output folder (default demo_out)")
    de.add_argument("--prompt", help="text for the text -> motion part")
    de.add_argument("--seconds", type=float, default=5.0, help="length of the generated motion")
    de.set_defaults(func=cmd_demo)
