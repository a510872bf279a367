"""`pyfacelang corpus ...` commands (CLI only: argparse lives here and in cli.py)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .errors import FaceLangError


def _seconds_range(text: str) -> tuple:
    try:
        lo, _, hi = text.partition("-")
        lo, hi = float(lo), float(hi or lo)
    except ValueError:
        raise FaceLangError(f"--seconds: expected A-B (e.g. 4-6), got '{text}'") from None
    if not 0.5 <= lo <= hi <= 60:
        raise FaceLangError(f"--seconds: need 0.5 <= A <= B <= 60, got '{text}'")
    return (lo, hi)


def cmd_synth(args, emit) -> int:
    from .corpus.build import build_synthetic
    from .corpus.synth import SynthConfig

    if args.clips <= 0 or not 1 <= args.fps <= 240 or args.shard_size <= 0 or not 0 <= args.prelude <= 1:
        raise FaceLangError("--clips and --shard-size must be positive, --fps within 1-240 and --prelude within 0-1")
    cfg = SynthConfig(clips=args.clips, fps=float(args.fps), seconds=_seconds_range(args.seconds), seed=args.seed,
                      prelude=args.prelude)
    t0 = time.perf_counter()
    out = build_synthetic(args.output, cfg, workers=args.workers, shard_size=args.shard_size,
                          progress=sys.stderr.isatty())
    dt = time.perf_counter() - t0
    print(f"corpus {args.output}: {out['clips']} clips in {out['shards']} shards "
          f"({out['built_shards']} built now) in {dt:.1f} s")
    return 0


def cmd_retrack(args, emit) -> int:
    from .corpus.retrack import RetrackConfig, retrack_corpus

    if args.clips <= 0 or args.size < 64:
        raise FaceLangError("--clips must be positive and --size at least 64")
    cfg = RetrackConfig(clips=args.clips, size=args.size, seed=args.seed, split=args.split)
    t0 = time.perf_counter()
    out = retrack_corpus(args.dir, args.output, cfg, workers=args.workers, progress=sys.stderr.isatty())
    print(f"retracked corpus {args.output}: {out['clips']} clips ({out['retracked_now']} now, "
          f"{out['face_lost']} left out: face lost) in {time.perf_counter() - t0:.1f} s")
    emit(out, args.json)
    return 0


def _open(folder):
    from .corpus.store import Corpus

    return Corpus(folder)


def cmd_info(args, emit) -> int:
    from .corpus.stats import corpus_info

    info = corpus_info(_open(args.dir))
    for k, v in info.items():
        print(f"  {k:16s} {v:.4g}" if isinstance(v, float) else f"  {k:16s} {v}")
    emit(info, args.json)
    return 0


def cmd_verify(args, emit) -> int:
    c = _open(args.dir)
    bad = c.verify()
    for b in bad:
        print(f"  BAD {b}")
    if bad:
        raise FaceLangError(f"{len(bad)} problem(s) in {args.dir}; first: {bad[0]}")
    print(f"  ok: {len(c)} clips in {len(c.shards)} shards verified")
    return 0


def cmd_stats(args, emit) -> int:
    from .corpus.stats import corpus_stats, plot_stats

    c = _open(args.dir)
    figures, counts = corpus_stats(c)
    for k, v in figures.items():
        print(f"  {k:16s} {v:.4g}" if isinstance(v, float) else f"  {k:16s} {v}")
    if args.plot:
        plot_stats(c, counts, args.plot)
        print(f"  plot: {args.plot}")
    emit(figures, args.json)
    return 0


def cmd_ingest(args, emit) -> int:
    from .corpus.ingest import ingest_videos

    out = ingest_videos(args.videos, args.captions, args.output, clip_seconds=args.clip_seconds, log=print)
    print(f"ingested {out['clips']} clips from {out['videos']} videos; skipped {len(out['skipped'])}"
          + "".join(f"\n  skipped {v}: {why}" for v, why in out["skipped"]))
    return 0


def cmd_import_flame(args, emit) -> int:
    from .cli import _load_flame_with_embedding
    from .corpus.ingest import import_flame

    flame = _load_flame_with_embedding(args)
    out = import_flame(args.files, flame, args.output, log=print)
    print(f"imported {out['clips']} clips; skipped {len(out['skipped'])}"
          + "".join(f"\n  skipped {f}: {why}" for f, why in out["skipped"]))
    return 0


def bench_corpus(args, emit) -> int:
    import os
    import shutil
    import tempfile

    from .corpus.build import build_synthetic
    from .corpus.stats import corpus_info
    from .corpus.synth import SynthConfig

    n = args.clips
    tmp = Path(tempfile.mkdtemp(prefix="pyfacelang-bench-corpus-"))
    try:
        cfg = SynthConfig(clips=n, fps=25.0, seconds=(4.0, 6.0), seed=0)
        t0 = time.perf_counter()
        build_synthetic(tmp, cfg, workers=0, shard_size=1000, log=lambda *_: None)
        dt = time.perf_counter() - t0
        info = corpus_info(_open(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {"clips": n, "workers": os.cpu_count(), "seconds": dt, "clips_per_s": n / dt,
               "frames_per_s": info["frames"] / dt, "bytes_per_frame": info["bytes_per_frame"],
               "est_50k_seconds": 50000 / (n / dt)}
    for k, v in figures.items():
        print(f"  {k:18s} {v:12.1f}")
    emit(figures, args.json)
    return 0


def add_parsers(sub, emit) -> None:
    c = sub.add_parser("corpus", help="build, check and inspect facial-motion corpora")
    cs = c.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")

    s = cs.add_parser("synth", help="synthesize a balanced, captioned corpus")
    s.add_argument("--clips", type=int, required=True)
    s.add_argument("--fps", type=float, default=25.0)
    s.add_argument("--seconds", default="4-6", help="clip length range, e.g. 4-6")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prelude", type=float, default=0.0,
                   help="share of rising clips with actions that open with an action before the emotion "
                        "(0 in every text-to-motion preset; see L2MTrainConfig.corpus_prelude)")
    s.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    s.add_argument("--shard-size", type=int, default=1000, help="clips per shard")
    s.add_argument("-o", "--output", required=True, help="corpus folder")
    s.set_defaults(func=lambda a: cmd_synth(a, emit))

    for name, fn, hlp in (("info", cmd_info, "sizes"), ("verify", cmd_verify, "check every clip's checksum"),
                          ("stats", cmd_stats, "balance and vocabulary use (last line: JSON)")):
        p = cs.add_parser(name, help=hlp)
        p.add_argument("dir")
        p.add_argument("--json", help="also write the figures to this file")
        if name == "stats":
            p.add_argument("--plot", help="write a PNG: word counts and a 2-D embedding of clips")
        p.set_defaults(func=lambda a, fn=fn: fn(a, emit))

    g = cs.add_parser("ingest", help="track real videos into corpus clips with their captions")
    g.add_argument("videos", nargs="+", help="video files (or folders of videos)")
    g.add_argument("--captions", required=True, help="JSON lines: {video, caption, [start, end, paraphrases, labels]}")
    g.add_argument("--clip-seconds", type=float, default=5.0, help="length of clips cut from uncaptioned spans")
    g.add_argument("-o", "--output", required=True)
    g.set_defaults(func=lambda a: cmd_ingest(a, emit))

    r = cs.add_parser("retrack", help="render synthetic clips on the rig and track them back (the tracker's "
                                      "reading of each labelled clip, for training captioners on video)")
    r.add_argument("dir", help="a synthetic corpus folder")
    r.add_argument("--clips", type=int, default=800, help="how many clips of the split (default 800, as train m2l)")
    r.add_argument("--split", choices=("train", "test"), default="train",
                   help="test: a held-out set for `eval m2l --corpus`")
    r.add_argument("--size", type=int, default=256, help="rendered frame size in pixels")
    r.add_argument("--seed", type=int, default=0, help="camera angles")
    r.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    r.add_argument("--json", help="also write the summary to this file")
    r.add_argument("-o", "--output", required=True, help="retracked corpus folder")
    r.set_defaults(func=lambda a: cmd_retrack(a, emit))

    f = cs.add_parser("import-flame", help="(text, FLAME parameters) pairs -> clips (retargeted to the rig)")
    f.add_argument("files", nargs="+", help=".npz files with `text`, `params` (T, P_flame) and `fps`")
    f.add_argument("--flame-path", required=True)
    f.add_argument("--flame-embedding", help="mediapipe_landmark_embedding.npz (default: next to the model)")
    f.add_argument("--flame-num-shape", type=int, help="shape components (needed when the file has <= 300)")
    f.add_argument("-o", "--output", required=True)
    f.set_defaults(func=lambda a: cmd_import_flame(a, emit))


__all__ = ["add_parsers", "bench_corpus"]
