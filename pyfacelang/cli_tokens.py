"""CLI for geometric tokens: `train tokenizer`, `tokenize`, `detokenize`,
`eval tokenizer`, `bench vq`. argparse stays here; the work is in
`pyfacelang.tokens`."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from .errors import FaceLangError


def _positive(text: str) -> int:
    import argparse
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: '{text}'") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def _non_negative(text: str) -> float:
    """argparse type: a finite float >= 0 (`cli._finite`, plus the sign)."""
    import argparse

    from .cli import _finite
    v = _finite(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def _out_npz(path: str) -> None:
    if not path.endswith(".npz"):
        raise FaceLangError(f"-o must be a .npz file, got '{path}'")
    if not Path(path).resolve().parent.is_dir():
        raise FaceLangError(f"output folder '{Path(path).parent}' does not exist")


# ----------------------------------------------------------------- train
def corpus_or_build(corpus, output, cfg) -> str:
    """--corpus as given, or (none given) the preset's synthetic corpus built
    in OUTPUT/corpus (resumable, like the training)."""
    if corpus is None:
        from .corpus.build import build_synthetic
        from .corpus.synth import SynthConfig

        corpus = str(Path(output) / "corpus")
        print(f"no --corpus: building the preset's synthetic corpus ({cfg.corpus_clips} clips, seed "
              f"{cfg.corpus_seed}) in {corpus}")
        seconds = tuple(getattr(cfg, "corpus_seconds", SynthConfig.seconds))
        prelude = float(getattr(cfg, "corpus_prelude", 0.0))
        build_synthetic(corpus, SynthConfig(clips=cfg.corpus_clips, seed=cfg.corpus_seed, seconds=seconds,
                                            prelude=prelude),
                        log=lambda *a: None)
    elif not Path(corpus).is_dir():
        raise FaceLangError(f"--corpus {corpus} is not a folder")
    return corpus


def cmd_train_reader(args) -> int:
    from .corpus.retrack import RetrackConfig, retrack_corpus
    from .track.reader import PRESETS, train_reader

    preset = args.preset or "default"
    if preset not in PRESETS:
        raise FaceLangError(f"train reader: unknown preset '{preset}' (choose from {', '.join(sorted(PRESETS))})")
    cfg = PRESETS[preset]
    for key in ("steps", "threads"):
        if getattr(args, key, None) is not None:
            cfg = dataclasses.replace(cfg, **{key: getattr(args, key)})
    corpus = corpus_or_build(args.corpus, args.output, cfg)
    retracked = args.retracked
    if retracked is None:
        retracked = str(Path(args.output) / "retracked")
        print(f"no --retracked: retracking {cfg.retracked_clips} corpus clips into {retracked} "
              "(rig render -> landmarks -> fit; resumable)")
        retrack_corpus(corpus, retracked, RetrackConfig(clips=cfg.retracked_clips),
                       progress=not args.quiet and sys.stderr.isatty(), log=lambda *a: None)
    elif not Path(retracked).is_dir():
        raise FaceLangError(f"--retracked {retracked}: not a folder (make one with `pyfacelang corpus retrack`)")
    s = train_reader(corpus, retracked, args.output, cfg, preset=preset,
                     progress=not args.quiet and sys.stderr.isatty())
    print(f"wrote motion reader {args.output} ({s['steps']} steps on {s['train_clips']} clips, {s['seconds']:.0f} s)")
    return 0


def cmd_train(args) -> int:
    if args.what == "reader":
        return cmd_train_reader(args)
    if args.what == "m2l":
        from .cli_m2l import cmd_train_m2l

        return cmd_train_m2l(args)
    if args.what in ("l2m", "l2m-eval"):
        from .cli_l2m import cmd_train_l2m

        return cmd_train_l2m(args)
    from .tokens.config import PRESETS
    from .tokens.train import train_tokenizer

    args.preset = args.preset or "default"
    if args.preset not in PRESETS:
        raise FaceLangError(f"train tokenizer: unknown preset '{args.preset}' (choose from {', '.join(sorted(PRESETS))})")
    extra = [o for o, v in (("--base", args.base), ("--lora-rank", args.lora_rank), ("--tokenizer", args.tokenizer),
                            ("--encoder", args.encoder), ("--conditioning", args.conditioning)) if v is not None]
    if extra:
        raise FaceLangError(f"train tokenizer: {', '.join(extra)} only apply to models that read tokens "
                            "(m2l, l2m)")
    cfg = PRESETS[args.preset]
    if args.steps:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.codebook_size:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, codebook_size=args.codebook_size))
    if args.param_weight is not None:
        cfg = dataclasses.replace(cfg, param_weight=args.param_weight)
    if args.threads:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    corpus = corpus_or_build(args.corpus, args.output, cfg)
    summary = train_tokenizer(corpus, args.output, cfg, progress=not args.quiet and sys.stderr.isatty(),
                              preset=args.preset)
    print(f"wrote tokenizer {args.output} ({summary['steps']} steps on {summary['train_clips']} clips, "
          f"{summary['seconds']:.0f} s)")
    return 0


# ------------------------------------------------------- tokenize / detok
def cmd_tokenize(args) -> int:
    from .tokens.inputs import motion_of, read_npz, track_arrays
    from .tokens.tokenizer import FaceTokenizer
    from .track.pipeline import save_npz

    _out_npz(args.output)
    tok = FaceTokenizer.load(args.tokenizer)
    if args.input.endswith(".npz"):
        arrays = read_npz(args.input)
    else:
        arrays = track_arrays(args.input, args.max_frames, progress=not args.quiet and sys.stderr.isatty())
    motion, valid = motion_of(arrays, args.input)
    tokens = tok.encode(motion, valid)
    fps = float(arrays.get("fps", 25.0))
    out = {**arrays, "tokens": tokens, "fps": np.float32(fps), "tokenizer": np.array(str(args.tokenizer or "default")),
           "tokenizer_sha256": np.array(tok.sha256), "codebook_size": np.int32(tok.codebook_size)}
    save_npz(args.output, out)
    print(f"wrote {args.output}: {len(tokens)} tokens at {fps:g} fps ({len(np.unique(tokens))} distinct, "
          f"codebook {tok.codebook_size})")
    return 0


def cmd_detokenize(args) -> int:
    from .face import load_model
    from .tokens.geometry import MOTION_NAMES, rig_params, track_identity
    from .tokens.tokenizer import FaceTokenizer
    from .track.pipeline import save_npz

    from .tokens.inputs import read_npz

    _out_npz(args.output)
    arrays = read_npz(args.input)
    if "tokens" not in arrays:
        raise FaceLangError(f"{args.input}: no 'tokens' array (write one with `pyfacelang tokenize`)")
    tok = FaceTokenizer.load(args.tokenizer)
    made_by = str(arrays["tokenizer_sha256"]) if "tokenizer_sha256" in arrays else None
    if made_by is not None and made_by != tok.sha256:
        raise FaceLangError(f"{args.input}: its tokens were made by tokenizer {made_by[:12]}, not by "
                            f"{args.tokenizer or 'the shipped one'} ({tok.sha256[:12]}); pass the matching --tokenizer")
    motion = tok.decode(arrays["tokens"])
    rig = load_model("builtin")
    names = arrays.get("param_names")
    identity = None if names is None or "params" not in arrays else track_identity(rig, arrays["params"], names)
    P = rig_params(rig, motion, identity)   # the tracked identity is kept (it is not part of the tokens)
    fps = float(arrays.get("fps", 25.0))
    save_npz(args.output, {"params": P.astype(np.float32), "param_names": np.array(rig.param_names),
                           "valid": np.ones(len(P), bool), "motion": motion, "motion_names": np.array(MOTION_NAMES),
                           "tokens": np.asarray(arrays["tokens"], np.int32), "fps": np.float32(fps),
                           "model": np.array("builtin")})
    print(f"wrote {args.output}: {len(P)} frames of built-in rig parameters at {fps:g} fps")
    return 0


# -------------------------------------------------------------- eval / bench
def cmd_eval_tokenizer(args, emit, media_dir) -> int:
    from .tokens.evaluate import eval_tokenizer, real_clip_motion, synthetic_test_clips
    from .tokens.tokenizer import FaceTokenizer
    from .tokens.train import load_clips

    tok = FaceTokenizer.load(args.tokenizer)
    base = None if args.no_baseline else FaceTokenizer.load(args.baseline or "baseline")
    if args.corpus:
        clips = load_clips(args.corpus, "test")
        source = f"test split of {args.corpus}"
    else:
        clips, labels = synthetic_test_clips(args.seed, args.clips, labels=True)
        source = f"{args.clips} fresh synthetic clips (seed {args.seed})"
    print(f"eval tokenizer ({args.tokenizer or 'default'}) on {source}: {sum(map(len, clips))} frames")
    media = None if args.no_real else media_dir(args.media)
    real = real_clip_motion(media) if media else None
    if media is None and not args.no_real:
        print("  (no real clips found: pass --media DIR; real-clip figures omitted)")
    fig = eval_tokenizer(tok, base, clips, real)
    if args.readout:
        from .tokens.readout import ReadoutConfig, readout
        given = {"train_clips": args.readout_clips, "steps": args.readout_steps}
        rc = ReadoutConfig(**{k: v for k, v in given.items() if v})
        if args.corpus:   # the readout needs labels: the synthetic test set, whatever --corpus says
            clips, labels = synthetic_test_clips(args.seed, args.clips, labels=True)
        print(f"  readout: sequence readers of the labels, trained on {rc.train_clips} fresh clips, "
              f"scored on {args.clips} (seed {args.seed})")
        fig["readout"] = readout(tok, clips, labels, rc)
    emit(fig, args.json)
    return 0


def cmd_bench_vq(args, emit) -> int:
    from .tokens.bench import bench_vq, format_table

    print(f"bench vq: nearest code, N={args.n} K={args.k} D={args.d}, {args.data} data")
    res = bench_vq(args.n, args.k, args.d, threads=args.threads, data=args.data, repeats=args.repeats)
    print(format_table(res))
    emit(res, args.json)
    return 0


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="train a model: the geometric tokenizer, or the captioner (m2l)")
    t.add_argument("what", choices=["tokenizer", "m2l", "l2m", "l2m-eval", "reader"],
                   help="what to train (l2m-eval: the motion encoder and classifier `eval l2m` scores with; "
                        "reader: the motion reader that tracked faces are read through, from retracked clips)")
    t.add_argument("--corpus", help="corpus folder (default: build the preset's synthetic corpus in OUT/corpus)")
    t.add_argument("-o", "--output", required=True, help="output model folder (rerun to resume)")
    t.add_argument("--preset", help="training recipe. tokenizer: default (shipped: the action probe plus a left/right "
                                    "asymmetry term), asym-pw100 (= default), baseline (coefficient space), micro-err "
                                    "(the default of sessions 26-36: dead codes restarted on badly served frames), "
                                    "micro-pw300 (the default before, without that rule), "
                                    "fidelity-2048 (the default before the probe), k1024, fidelity (K=4096), micro, "
                                    "micro-2, micro-wide, micro-l1, micro-l4 (other action-probe recipes), micro-err2, "
                                    "asym, asym-hi, asym-pw150 (micro-err plus the asymmetry term; the -pw one also "
                                    "lowers param_weight), tiny. "
                                    "m2l: default (shipped built-in, with a face reader, 8000 steps), "
                                    "face-conv-8k (= default), face-conv-6k (6000 steps, the default before), "
                                    "face-conv (3000 steps, the default before that), "
                                    "plain (the earlier default, no face reader), retracked (30%% tracked renders, not "
                                    "shipped), actions (adds a micro-actions task, not shipped), hf (with --base), "
                                    "tiny. "
                                    "l2m: default (shipped; captions, paraphrases and short prompts; code "
                                    "features; input corruption up to 0.5), corrupt5 (= default), mask-mix (half of "
                                    "the corrupted inputs masked, not shipped), codefeat (the "
                                    "default of sessions 27-37, corruption up to 0.8), corrupt3 (0.3, not "
                                    "shipped), onset (event onsets weigh more, not shipped), ids (no code "
                                    "features), global (baseline, shipped; corruption 0.8), global-c5 (the "
                                    "baseline at 0.5, not shipped), events, events6, near, near-half, mask (not "
                                    "shipped), captions (captions and paraphrases only, the earlier "
                                    "recipe), splice (spliced context, not shipped), tiny, tiny-codefeat, "
                                    "tiny-global. "
                                    "reader: default (shipped), tiny")
    t.add_argument("--steps", type=_positive, help="override the preset's optimiser steps")
    t.add_argument("--codebook-size", type=_positive, help="tokenizer: override the preset's codebook size")
    t.add_argument("--param-weight", type=_non_negative, help="tokenizer: override the preset's parameter-error weight")
    t.add_argument("--threads", type=_positive, help="torch threads (default: all cores)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from .cli_l2m import add_train_options as add_l2m_train_options
    from .cli_m2l import add_train_options
    add_train_options(t)
    add_l2m_train_options(t)
    t.set_defaults(func=cmd_train)

    k = sub.add_parser("tokenize", help="params .npz (from track) or video -> one geometric token per frame")
    k.add_argument("input", help="a parameter file from `pyfacelang track`, or a video/image source (tracked first)")
    k.add_argument("-o", "--output", required=True, help="output .npz (input arrays + tokens int32 (T,))")
    k.add_argument("--tokenizer", help="tokenizer folder (default: the one shipped in the package)")
    k.add_argument("--max-frames", type=int, help="video input: stop after N frames")
    k.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    k.set_defaults(func=cmd_tokenize)

    d = sub.add_parser("detokenize", help="tokens .npz -> built-in rig parameters .npz")
    d.add_argument("input", help="a .npz with a 'tokens' array")
    d.add_argument("-o", "--output", required=True, help="output parameter file (.npz)")
    d.add_argument("--tokenizer", help="tokenizer folder (default: the one shipped in the package)")
    d.set_defaults(func=cmd_detokenize)


def add_eval_options(e) -> None:
    g = e.add_argument_group("tokenizer")
    g.add_argument("--tokenizer", help="tokenizer folder (default: shipped)")
    g.add_argument("--baseline", help="coefficient-space baseline folder (default: shipped)")
    g.add_argument("--no-baseline", action="store_true", help="skip the coefficient baseline")
    g.add_argument("--corpus", help="evaluate on the test split of this corpus")
    g.add_argument("--seed", type=int, default=1234, help="seed of the fresh synthetic test set (no --corpus)")
    g.add_argument("--clips", type=_positive, default=500, help="clips in the synthetic test set")
    g.add_argument("--no-real", action="store_true", help="skip the real clips")
    g.add_argument("--readout", action="store_true",
                   help="also train sequence readers of the labels on true and on tokenized motion (~10 min): "
                        "how much of the emotion, intensity and micro-actions the tokens keep (synthetic test set)")
    g.add_argument("--readout-clips", type=_positive, help="training clips of each reader (default 8000)")
    g.add_argument("--readout-steps", type=_positive, help="optimiser steps of each reader (default 1500)")


def add_bench_options(b) -> None:
    g = b.add_argument_group("vq")
    g.add_argument("--n", type=_positive, default=100_000, help="queries (frames)")
    g.add_argument("--k", type=_positive, default=1024, help="codebook size")
    g.add_argument("--d", type=_positive, default=64, help="code dimension")
    g.add_argument("--data", choices=["gaussian", "clustered"], default="gaussian")
    g.add_argument("--repeats", type=_positive, default=5)
    g.add_argument("--threads", type=int, default=0, help="worker threads (0 = all cores)")
