"""`pyfacelang <command>`: the command line. argparse lives here only; each
command parses its options into plain values and calls library code.

Errors on bad input print one line to stderr and exit non-zero; no partial
output file is left behind (outputs are written atomically).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from .cli_l2m import add_eval_options as add_l2m_eval_options
from .cli_m2l import add_eval_options as add_m2l_eval_options
from .cli_tokens import add_bench_options, add_eval_options
from .errors import FaceLangError

EXIT_ERROR = 1
MIN_SIZE, MAX_SIZE = 64, 4096  # rendered image sizes accepted by the CLI


def _finite(text: str) -> float:
    """argparse type: a finite float."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got '{text}'")
    return v


def _image_size(text: str) -> int:
    """argparse type: an image size in pixels within [MIN_SIZE, MAX_SIZE]."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: '{text}'") from None
    if not MIN_SIZE <= v <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {v}")
    return v


def _parse_set(text: str) -> dict[str, float]:
    """'jawOpen=0.8,mouthSmileLeft=1' -> {'jawOpen': 0.8, 'mouthSmileLeft': 1.0}."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise FaceLangError(f"--set: expected NAME=VALUE, got '{item}'")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise FaceLangError(f"--set: value of '{name.strip()}' is not a number: '{value}'") from None
        if not math.isfinite(out[name.strip()]):
            raise FaceLangError(f"--set: value of '{name.strip()}' must be finite, got '{value}'")
    return out


def _load_model(args):
    from .face import load_model

    if args.model == "flame":
        if not args.flame_path:
            raise FaceLangError("--model flame needs --flame-path PATH (generic_model.pkl, flame2023.pkl or .npz)")
        if Path(args.flame_path).is_dir():
            raise FaceLangError(f"--flame-path {args.flame_path} is a directory; give the model file "
                                "(generic_model.pkl, flame2023.pkl or .npz)")
        return load_model("flame", path=args.flame_path)
    if args.flame_path:
        raise FaceLangError("--flame-path is only used with --model flame")
    return load_model("builtin")


def _params_with_bounds(model, values: dict[str, float]):
    params = model.params_from_dict(values)  # unknown names raise with suggestions
    if hasattr(model, "param_bounds"):
        lo, hi = model.param_bounds()
        for name, val in values.items():
            i = model.param_index(name)
            if not lo[i] <= val <= hi[i]:
                raise FaceLangError(f"--set: {name}={val:g} is outside its range [{lo[i]:g}, {hi[i]:g}]")
    return params


def cmd_render(args) -> int:
    from .render import write_image
    from .render.faces import blendshape_sheet, render_params
    from .render.video import IMAGE_FORMATS

    if args.params:
        from .render.sequence import render_param_files

        if not args.output.lower().endswith(".mp4"):
            raise FaceLangError(f"-o {args.output}: parameter files render to an .mp4 video")
        n = render_param_files(args.params, args.output, size=min(args.size, 768), source=args.source)
        print(f"wrote {args.output} ({n} frames, {len(args.params) + bool(args.source)} columns)")
        return 0
    if args.source:
        raise FaceLangError("--source is shown next to --params files; give at least one --params")
    if args.clip:
        from .render.clip import render_corpus_clip

        folder, sep, cid = args.clip.rpartition(":")
        if not sep or not folder or not cid:
            raise FaceLangError(f"--clip: expected DIR:ID, got '{args.clip}'")
        if not args.output.lower().endswith(".mp4"):
            raise FaceLangError(f"-o {args.output}: a clip renders to an .mp4 video")
        n = render_corpus_clip(folder, cid, args.output, size=args.size)
        print(f"wrote {args.output} ({n} frames)")
        return 0
    if not args.output.lower().endswith(IMAGE_FORMATS):
        raise FaceLangError(f"-o {args.output}: the output must be an image file ({', '.join(IMAGE_FORMATS)})")
    model = _load_model(args)
    if args.sheet:
        if args.set:
            raise FaceLangError("--sheet shows every blendshape at weight 1; it does not take --set")
        image = blendshape_sheet(model, tile=max(MIN_SIZE, args.size // 2))
    else:
        params = _params_with_bounds(model, _parse_set(args.set or ""))
        image = render_params(model, params, size=args.size, yaw=args.yaw, pitch=args.pitch)
    write_image(args.output, image)
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]})")
    return 0


def _load_flame_with_embedding(args):
    """FLAME from --flame-path with its MediaPipe embedding (--flame-embedding,
    default: mediapipe_landmark_embedding.npz next to the model file)."""
    from .face import load_model

    if not args.flame_path:
        raise FaceLangError("--model flame needs --flame-path PATH (generic_model.pkl, flame2023.pkl or .npz)")
    emb = args.flame_embedding or str(Path(args.flame_path).parent / "mediapipe_landmark_embedding.npz")
    if not Path(emb).is_file():
        raise FaceLangError(f"FLAME's MediaPipe landmark embedding not found: {emb} (pass --flame-embedding PATH)")
    return load_model("flame", path=args.flame_path, landmark_embedding=emb,
                      **({"num_shape": args.flame_num_shape} if args.flame_num_shape is not None else {}))


def cmd_track(args) -> int:
    from .track.pipeline import save_npz, track

    flame = None
    if args.model == "flame":
        flame = _load_flame_with_embedding(args)
    if args.preview and not args.preview.lower().endswith(".mp4"):
        raise FaceLangError(f"--preview must be an .mp4 file, got '{args.preview}'")
    if not args.output.endswith(".npz"):
        raise FaceLangError(f"-o must be a .npz file, got '{args.output}'")
    from pathlib import Path as _P

    for out in (args.output, args.preview):
        if out and not _P(out).resolve().parent.is_dir():
            raise FaceLangError(f"output folder '{_P(out).parent}' does not exist")
    tr = track(args.source, max_frames=args.max_frames, face_index=args.face_index, preview=args.preview,
               progress=not args.quiet and sys.stderr.isatty(), flame=flame)
    n, v = len(tr.valid), int(tr.valid.sum())
    if v == 0:
        raise FaceLangError(f"no face found in any of the {n} frames of '{args.source}'"
                            + (f" (face index {args.face_index})" if args.face_index is not None else ""))
    save_npz(args.output, tr.to_dict())
    print(f"wrote {args.output}: {n} frames at {tr.fps:g} fps, face found in {v} "
          f"({100.0 * v / n:.0f}%), mean residual {np.nanmean(tr.residual) if v else float('nan'):.2f} px"
          + (f"; preview {args.preview}" if args.preview else ""))
    return 0


def _emit(figures: dict, json_path) -> None:
    """Last stdout line: one JSON object with the figures (and --json PATH)."""
    import json

    line = json.dumps(figures, sort_keys=True)
    if json_path:
        from pathlib import Path as _P

        _P(json_path).write_text(line + "\n")
    print(line)


def _media_dir(arg):
    from .track.evaluate import default_media_dir

    if arg:
        if not Path(arg).is_dir():
            raise FaceLangError(f"--media {arg} is not a folder")
        return Path(arg)
    return default_media_dir()


def cmd_eval(args) -> int:
    if args.what == "tokenizer":
        from .cli_tokens import cmd_eval_tokenizer

        return cmd_eval_tokenizer(args, _emit, _media_dir)
    if args.what == "m2l":
        from .cli_m2l import cmd_eval_m2l

        return cmd_eval_m2l(args, _emit, _media_dir)
    if args.what == "l2m":
        from .cli_l2m import cmd_eval_l2m

        return cmd_eval_l2m(args, _emit)
    from .track.evaluate import eval_fit

    media = _media_dir(args.media)
    print(f"eval fit: real clips from {media or '(none)'}; synthetic recovery on 4 sequences")
    figures = eval_fit(media, max_frames=args.max_frames)
    print(f"  residual_iod {figures.get('residual_iod', float('nan')):.4f} (goal <= 0.03)  "
          f"jitter_ratio {figures.get('jitter_ratio', float('nan')):.3f} (goal <= 0.6)  "
          f"recovery_err {figures['recovery_err']:.4f}  recovery_rot_deg {figures['recovery_rot_deg']:.2f}")
    _emit(figures, args.json)
    return 0


def cmd_bench(args) -> int:
    if args.what == "live":
        from .cli_live import cmd_bench_live

        return cmd_bench_live(args, _emit, _media_dir)
    if args.what == "l2m":
        from .cli_l2m import cmd_bench_l2m

        return cmd_bench_l2m(args, _emit)
    if args.what == "m2l":
        from .cli_m2l import cmd_bench_m2l

        return cmd_bench_m2l(args, _emit)
    if args.what == "vq":
        from .cli_tokens import cmd_bench_vq

        return cmd_bench_vq(args, _emit)
    if args.what == "corpus":
        from .cli_corpus import bench_corpus

        print(f"bench corpus: {args.clips} five-second clips, all cores")
        return bench_corpus(args, _emit)
    from .track.bench import bench_fit

    media = _media_dir(args.media)
    clip = media / "LivePortrait_driving_d3.mp4" if media else None
    if clip is not None and clip.exists():
        from .track.evaluate import track_clip_landmarks

        lmk, fps = track_clip_landmarks(clip)
        lmk = lmk[~np.isnan(lmk).any(axis=(1, 2))]
        source = clip.name
    else:
        from .face import load_model
        from .track.synthetic import synthetic_sequence

        lmk, fps, source = synthetic_sequence(load_model("builtin"), 300)["landmarks"], 30.0, "synthetic (300 frames)"
    print(f"bench fit on {source}: {len(lmk)} frames")
    _emit(bench_fit(lmk, fps), args.json)
    return 0


def cmd_info(args) -> int:
    import platform

    import torch

    from . import __version__, _kernels
    from .face import load_model

    ext = _kernels.ext()
    print(f"pyfacelang {__version__}  python {platform.python_version()}  torch {torch.__version__}")
    print(f"extension: built_with_cuda={ext.built_with_cuda()}  cuda_devices={ext.cuda_device_count()}")
    print(f"builtin rig: {load_model('builtin')!r}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), like every other error here."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyfacelang", description="Face tracking, geometric face tokens, and face <-> language.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("render", help="render a face model to an image (or the blendshape sheet)")
    r.add_argument("--model", choices=["builtin", "flame"], default="builtin")
    r.add_argument("--flame-path", help="FLAME model file (with --model flame)")
    r.add_argument("--set", metavar="NAME=V,...", help="parameter values, e.g. jawOpen=0.8,mouthSmileLeft=1")
    r.add_argument("--sheet", action="store_true", help="all expression blendshapes at weight 1, labelled")
    r.add_argument("--clip", metavar="DIR:ID", help="render a corpus clip to a video (-o clip.mp4)")
    r.add_argument("--params", action="append", metavar="FILE",
                   help="render a parameter file (track/detokenize .npz) to a video; repeat to compare side by side")
    r.add_argument("--source", help="with --params: show this video as the first column")
    r.add_argument("--size", type=_image_size, default=512,
                   help=f"image size in pixels, {MIN_SIZE}-{MAX_SIZE} (sheet: tile = size/2)")
    r.add_argument("--yaw", type=_finite, default=0.0, help="view yaw in degrees")
    r.add_argument("--pitch", type=_finite, default=0.0, help="view pitch in degrees")
    r.add_argument("-o", "--output", required=True, help="output image (.png or .jpg)")
    r.set_defaults(func=cmd_render)

    t = sub.add_parser("track", help="video/images/webcam -> per-frame face-model parameters (.npz)")
    t.add_argument("source", help="video file, image, folder of images, webcam index (0) or stream URL")
    t.add_argument("-o", "--output", required=True, help="output parameter file (.npz)")
    t.add_argument("--model", choices=["builtin", "flame"], default="builtin")
    t.add_argument("--flame-path", help="FLAME model file (with --model flame)")
    t.add_argument("--flame-embedding", help="FLAME's mediapipe_landmark_embedding.npz (default: next to the model)")
    t.add_argument("--flame-num-shape", type=int, help="shape components in the FLAME file (needed when it has <= 300)")
    t.add_argument("--max-frames", type=int, help="stop after N frames")
    t.add_argument("--face-index", type=int, help="track this face (MediaPipe order) instead of the largest")
    t.add_argument("--preview", help="write the video with the fitted mesh drawn over it (.mp4)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_track)

    e = sub.add_parser("eval", help="quality figures (last line: JSON)")
    e.add_argument("what", choices=["fit", "tokenizer", "m2l", "l2m"], help="what to evaluate")
    e.add_argument("--media", help="folder of real clips (default: ../shared/media when present)")
    e.add_argument("--max-frames", type=int, help="use at most N frames per clip")
    e.add_argument("--json", help="also write the figures to this file")
    add_eval_options(e)
    add_m2l_eval_options(e)
    add_l2m_eval_options(e)
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="speed figures (last line: JSON)")
    b.add_argument("what", choices=["fit", "corpus", "vq", "live", "l2m", "m2l"], help="what to benchmark")
    b.add_argument("--clips", type=int, default=5000, help="corpus: clips to build")
    b.add_argument("--media", help="folder of real clips (default: ../shared/media when present)")
    b.add_argument("--json", help="also write the figures to this file")
    add_bench_options(b)
    g = b.add_argument_group("live")
    g.add_argument("--source", help="live: video file (default ../shared/media/LivePortrait_driving_d3.mp4)")
    g.add_argument("--max-frames", type=int, help="live: use at most N frames")
    g.add_argument("--runs", dest="repeats_live", type=int, default=1, help="live: runs (the best is reported)")
    g = b.add_argument_group("l2m")
    g.add_argument("--l2m", help="l2m: text-to-motion model folder (default: the shipped one)")
    g.add_argument("--seconds", type=float, default=10.0, help="l2m: seconds of motion per run")
    g = b.add_argument_group("m2l")
    g.add_argument("--m2l", help="m2l: caption model folder (default: the shipped one)")
    g.add_argument("--windows", type=int, default=40, help="m2l: 4 s windows to caption (fresh synthetic clips)")
    b.set_defaults(func=cmd_bench)

    from .cli_corpus import add_parsers as add_corpus_parsers
    from .cli_live import add_parsers as add_live_parsers
    from .cli_l2m import add_parsers as add_l2m_parsers
    from .cli_m2l import add_parsers as add_m2l_parsers
    from .cli_tokens import add_parsers as add_token_parsers

    add_corpus_parsers(sub, _emit)
    add_token_parsers(sub)
    add_m2l_parsers(sub)
    add_l2m_parsers(sub)
    add_live_parsers(sub)

    i = sub.add_parser("info", help="versions, extension build and device")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FaceLangError as e:
        sub = getattr(args, "corpus_command", None)
        print(f"pyfacelang {args.command}{' ' + sub if sub else ''}: error: {e}", file=sys.stderr)
    except FileNotFoundError as e:
        print(f"pyfacelang {args.command}: error: file not found: {e.filename or e}", file=sys.stderr)
    except OSError as e:
        print(f"pyfacelang {args.command}: error: {e.strerror or e}: {getattr(e, 'filename', '') or ''}",
              file=sys.stderr)
    except MemoryError:
        print(f"pyfacelang {args.command}: error: out of memory", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"pyfacelang {args.command}: interrupted", file=sys.stderr)
        return 130
    return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
