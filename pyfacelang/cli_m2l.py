"""CLI for Motion2Language: `train m2l`, `caption`, `eval m2l`. argparse
stays here; the work is in `pyfacelang.m2l`."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from .errors import FaceLangError


def cmd_train_m2l(args) -> int:
    from .m2l.config import PRESETS
    from .m2l.train import train_m2l

    base = args.base or "builtin"
    preset = args.preset or ("default" if base == "builtin" else "hf")
    if preset not in PRESETS:
        raise FaceLangError(f"train m2l: unknown preset '{preset}' (choose from {', '.join(sorted(PRESETS))})")
    if args.codebook_size:
        raise FaceLangError("train m2l: --codebook-size belongs to the tokenizer (the model reads the "
                            "tokenizer's codebook; pass --tokenizer)")
    cfg = PRESETS[preset]
    for key in ("steps", "lora_rank", "threads"):
        v = getattr(args, key, None)
        if v is not None:
            cfg = dataclasses.replace(cfg, **{key: v})
    if base != "builtin" and not Path(base).is_dir():
        raise FaceLangError(f"--base {base}: not a folder (give 'builtin' or a local Hugging Face model directory)")
    from .cli_tokens import corpus_or_build
    corpus = corpus_or_build(args.corpus, args.output, cfg)
    retracked = getattr(args, "retracked", None)
    if retracked and not Path(retracked).is_dir():
        raise FaceLangError(f"--retracked {retracked}: not a folder (make one with `pyfacelang corpus retrack`)")
    s = train_m2l(corpus, args.output, cfg, base=base, tokenizer=args.tokenizer,
                  progress=not args.quiet and sys.stderr.isatty(), preset=preset, retracked=retracked,
                  init=getattr(args, "init", None))
    print(f"wrote caption model {args.output} ({s['steps']} steps on {s['train_clips']} clips, {s['seconds']:.0f} s)")
    return 0


def _fmt_time(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:05.2f}"


def cmd_caption(args) -> int:
    from .atomic import write_atomic
    from .m2l import load_caption_model
    from .m2l.windows import caption_windows, parse_seconds
    from .tokens.inputs import face_tokens
    from .tokens.tokenizer import FaceTokenizer

    window = parse_seconds(args.window, "--window")
    stride = parse_seconds(args.stride, "--stride")
    if args.jsonl and not Path(args.jsonl).resolve().parent.is_dir():
        raise FaceLangError(f"--jsonl: folder '{Path(args.jsonl).parent}' does not exist")
    model = load_caption_model(args.model)
    tok = FaceTokenizer.load(args.tokenizer)
    model.check_tokenizer(tok.sha256, f"the tokenizer {args.tokenizer or '(shipped default)'}")
    ft = face_tokens(args.input, tok, args.max_frames, progress=not args.quiet and sys.stderr.isatty())
    model.check_tokenizer(ft.tokenizer_sha256, f"the tokenizer that made {args.input}")
    if len(ft.tokens) == 0:
        raise FaceLangError(f"{args.input}: no frames to caption")
    events = caption_windows(model, ft.tokens, ft.fps, window, stride, args.prompt)
    for e in events:
        print(f"[{_fmt_time(e['start'])} - {_fmt_time(e['end'])}] {e['caption']}")
    if args.jsonl:
        lines = "".join(json.dumps({**e, "prompt": args.prompt, "source": args.input}) + "\n" for e in events)
        write_atomic(Path(args.jsonl), lambda f: f.write(lines.encode()))
        print(f"wrote {len(events)} captions to {args.jsonl}")
    return 0


def cmd_bench_m2l(args, emit) -> int:
    from .m2l import load_caption_model
    from .m2l.bench import bench_m2l, format_table
    from .tokens.tokenizer import FaceTokenizer

    if args.windows < 2:
        raise FaceLangError(f"--windows must be at least 2, got {args.windows}")
    tok = FaceTokenizer.load(getattr(args, "tokenizer", None))
    model = load_caption_model(args.m2l, tok.sha256)
    threads = args.threads if args.threads > 0 else 1
    print(f"bench m2l: {args.windows} windows of 4 s (fresh synthetic clips, seed 1234), batch 1 and batched, "
          f"torch threads {threads}")
    res = bench_m2l(model, tok, windows=args.windows, threads=threads)
    print(format_table(res))
    emit(res, args.json)
    return 0


def cmd_eval_m2l(args, emit, media_dir) -> int:
    from .m2l import load_caption_model
    from .m2l.data import corpus_items, synthetic_items
    from .m2l.evaluate import eval_m2l
    from .tokens.tokenizer import FaceTokenizer

    model = load_caption_model(args.m2l)
    tok = FaceTokenizer.load(args.tokenizer)
    model.check_tokenizer(tok.sha256, f"the tokenizer {args.tokenizer or '(shipped default)'}")
    if args.corpus:
        items = corpus_items(args.corpus, "test", tok)
        source = f"test split of {args.corpus}"
    else:
        items = synthetic_items(args.seed, args.clips, tok)
        source = f"{args.clips} fresh synthetic clips (seed {args.seed})"
    print(f"eval m2l ({args.m2l or 'default'}) on {source}")
    fig = eval_m2l(model, items)
    if fig["clips_cut"]:
        print(f"  {fig['clips_cut']} of {fig['clips']} clips are longer than the captioner's context: captioned on "
              "their first frames")
    print(f"  CorE {fig['CorE']:.3f} (goal >= 0.90)  CorM {fig['CorM']:.3f} (goal >= 0.85)  CorI {fig['CorI']:.3f} "
          f"(goal >= 0.80)  BLEU-4 {fig['bleu4']:.3f}  ROUGE-L {fig['rougeL']:.3f}  "
          f"{fig['latency_ms_per_4s_window']:.1f} ms per 4 s window (1 core)")
    emit(fig, args.json)
    return 0


def add_train_options(t) -> None:
    g = t.add_argument_group("m2l")
    g.add_argument("--base", help="m2l: 'builtin' (default) or a local Hugging Face causal LM folder")
    g.add_argument("--tokenizer", help="m2l, l2m: face tokenizer folder (default: the shipped one)")
    g.add_argument("--lora-rank", type=int, help="m2l with --base: LoRA rank (0 = fine-tune all weights)")
    g.add_argument("--retracked", help="m2l, reader: retracked corpus (`corpus retrack`) made from --corpus: m2l "
                                       "takes the recipe's share of tracked clips from it, the reader learns from "
                                       "it (default: built from --corpus into OUTPUT/retracked)")
    g.add_argument("--init", help="m2l, fine-tuning presets (retracked-ft30, ...): the trained captioner to start "
                                  "from, made with the preset's init preset, e.g. the shipped one "
                                  "(default: trained first into OUTPUT/init)")


def add_eval_options(e) -> None:
    g = e.add_argument_group("m2l")
    g.add_argument("--m2l", help="caption model folder (default: shipped)")


def add_parsers(sub) -> None:
    c = sub.add_parser("caption", help="video, params .npz or tokens .npz -> timestamped captions")
    c.add_argument("input", help="a video/image source, a parameter file (track) or a tokens file (tokenize)")
    c.add_argument("--window", default="4s", help="caption window (default 4s; a shorter clip is one window)")
    c.add_argument("--stride", default="2s", help="step between windows (default 2s)")
    c.add_argument("--prompt", default="Describe the facial motion.",
                   help="instruction, e.g. 'How intense is the emotion?' or 'What does the head do?'")
    c.add_argument("--jsonl", help="also write the captions as JSON lines to this file")
    c.add_argument("--model", help="caption model folder (default: the one shipped in the package)")
    c.add_argument("--tokenizer", help="face tokenizer folder (default: the one shipped in the package)")
    c.add_argument("--max-frames", type=int, help="video input: stop after N frames")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_caption)
