"""Training a caption model (built-in or Hugging Face) on a corpus.

`train_m2l(corpus, out, cfg, base=...)` is resumable: every
`checkpoint_every` steps it writes `out/checkpoint.pt` atomically (weights,
optimiser, sampler state, step); rerunning the same command continues. The
result is a caption-model folder plus `train_log.jsonl`. A fine-tuning
preset (`M2LTrainConfig.init_preset`) starts from a trained captioner's
weights and BPE vocabulary: the one given (`init=`), or one it trains first
into `out/init`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from ..atomic import remove_quietly
from ..corpus.vocab import load_vocabulary
from ..errors import FaceLangError
from ..training import adamw, begin, run_steps
from .config import M2LTrainConfig
from .data import ExampleSampler, corpus_items, training_texts


def _make_model(base: str, cfg: M2LTrainConfig, items, meta: dict, out: Path, tok, init: Path | None = None):
    if base == "builtin":
        from .builtin import BuiltinCaptioner
        from .text import TextVocab
        if init is not None:    # fine-tuning: its weights and BPE vocabulary (a resume's checkpoint overrides)
            model = _init_model(init, cfg, tok)
            model.meta.update(meta)
            return model
        vocab_file = out / "tokenizer.json"
        if vocab_file.exists():   # resume: the BPE learnt at the start (training it again could differ)
            model = BuiltinCaptioner(cfg.model, TextVocab.load(vocab_file, int(meta["codebook_size"])), meta)
            model.set_code_motion(tok.code_motion())
            return model
        model = BuiltinCaptioner.create(cfg.model, training_texts(items, load_vocabulary()), meta, tok.code_motion())
        model.vocab.save(vocab_file)
        return model
    from .hf import HFCaptioner
    return HFCaptioner.from_base(base, meta, lora_rank=cfg.lora_rank)


def _init_model(init: Path, cfg: M2LTrainConfig, tok):
    """The built-in captioner in folder `init` to fine-tune, refused when it
    read another tokenizer or has another network than `cfg.model`."""
    from .base import load_caption_model
    from .builtin import BuiltinCaptioner
    model = load_caption_model(init, tok.sha256)
    if not isinstance(model, BuiltinCaptioner):
        raise FaceLangError(f"--init {init}: not a built-in captioner (fine-tuning starts from one)")
    if model.cfg != cfg.model:
        raise FaceLangError(f"--init {init}: its network ({model.cfg.to_dict()}) is not the preset's "
                            f"({cfg.model.to_dict()})")
    return model   # its code features (the face_feat buffer) came with the weights, for this tokenizer


def _same_recipe(recorded: dict, cfg: M2LTrainConfig) -> bool:
    """A model's recorded training settings are `cfg`'s (threads aside: they
    change the speed, not the recipe)."""
    def filled(got, default):   # settings added since the model was trained take their defaults
        if not isinstance(got, dict) or not isinstance(default, dict):
            return got
        return {k: filled(got[k], v) if k in got else v for k, v in default.items()} | \
            {k: v for k, v in got.items() if k not in default}

    want = {**cfg.to_dict(), "threads": None}
    got = {**filled(recorded, M2LTrainConfig().to_dict()), "threads": None}
    return json.loads(json.dumps(got)) == json.loads(json.dumps(want))


def init_folder(corpus, out: Path, cfg: M2LTrainConfig, tok, init=None, log=print,
                progress: bool = False) -> Path | None:
    """The captioner a fine-tuning preset starts from: `init` as given, or
    (None) one trained with `cfg.init_preset` on `corpus` into `out/init`
    (resumable; reused by a rerun). None for presets trained from scratch."""
    if not cfg.init_preset:
        if init is not None:
            raise FaceLangError("--init: this preset trains from scratch (use a fine-tuning preset, "
                                "one with init_preset)")
        return None
    from .config import PRESETS
    if init is not None:
        from .base import read_config, shipped_path
        init = shipped_path() if str(init) == "default" else Path(init)
        if not init.is_dir():
            raise FaceLangError(f"--init {init}: not a folder (a caption model trained with preset "
                                f"'{cfg.init_preset}', or 'default' for the shipped one)")
        made = read_config(init).get("trained_with", {})
        if "train" in made and not _same_recipe(made["train"], PRESETS[cfg.init_preset]):
            raise FaceLangError(f"--init {init}: trained with another recipe (preset '{made.get('preset')}') "
                                f"than the one this preset fine-tunes ('{cfg.init_preset}')")
        return init
    first = dataclasses.replace(PRESETS[cfg.init_preset], threads=cfg.threads)
    init = out / "init"
    if not (init / "model.safetensors").is_file():
        log(f"no --init: training preset '{cfg.init_preset}' first into {init}")
        train_m2l(corpus, init, first, tokenizer=tok, log=log, preset=cfg.init_preset, progress=progress)
    return init


def retracked_items(corpus, out: Path, cfg: M2LTrainConfig, tok, retracked=None, log=print) -> list:
    """Items of the retracked corpus `retracked`, or, when None, of one built
    from `corpus` into `out/retracked` (resumable; reused by a rerun)."""
    if cfg.retracked_share <= 0:
        return []
    if retracked is None:
        from ..corpus.retrack import RetrackConfig, retrack_corpus
        retracked = out / "retracked"
        log(f"retracking {cfg.retracked_clips} corpus clips into {retracked} (rig render -> landmarks -> fit)")
        retrack_corpus(corpus, retracked, RetrackConfig(clips=cfg.retracked_clips), log=log)
    return corpus_items(retracked, "train", tok)


def train_m2l(corpus, out, cfg: M2LTrainConfig, *, base: str = "builtin", tokenizer=None, progress: bool = False,
              log=print, preset: str | None = None, on_step=None, retracked=None, init=None) -> dict:
    """Train (or resume) a caption model into folder `out` on the corpus's
    train split, reading face tokens from `tokenizer` (a FaceTokenizer; None:
    the shipped one). A `cfg.retracked_share` of examples come from the
    retracked corpus `retracked` (None: built from `corpus`, see
    `retracked_items`). A fine-tuning preset starts from the captioner in
    `init` (None: trained first, see `init_folder`). Returns a summary."""
    if base != "builtin" and (cfg.init_preset or init is not None):
        raise FaceLangError("--init: fine-tuning from a trained captioner needs --base builtin")
    out, tok = begin(out, cfg, tokenizer)
    init = init_folder(corpus, out, cfg, tok, init, log, progress)
    torch.manual_seed(cfg.seed)   # the same stream whether or not the first stage just ran
    items = corpus_items(corpus, "train", tok)
    fps = items[0].fps
    log(f"train m2l ({base}): {len(items)} clips, {sum(len(i.tokens) for i in items)} face tokens, "
        f"tokenizer {tok.sha256[:12]} (K={tok.codebook_size})")
    extra = retracked_items(corpus, out, cfg, tok, retracked, log)
    if extra:
        log(f"retracked clips: {len(extra)} ({cfg.retracked_share:.0%} of examples)")
    # captions written by corpus/captions.py's templates (synthetic corpora and
    # their retracked copies; ingested clips carry people's own words): the
    # caption reader may then also hold answers to the templates' words
    from ..corpus.store import Corpus
    templates = Corpus(corpus).config.get("kind") in ("synthetic", "retracked")
    meta = {"tokenizer_sha256": tok.sha256, "codebook_size": tok.codebook_size, "fps": fps,
            "template_captions": templates}
    # a fine-tuning checkpoint resumes only on the weights it started from
    init_sha = hashlib.sha256((init / "model.safetensors").read_bytes()).hexdigest() if init else None
    recipe = {"train": cfg.to_dict(), "base": str(base), **meta, **({"init_sha256": init_sha} if init else {})}
    model = _make_model(base, cfg, items, meta, out, tok, init)
    net = model.module()
    params = model.trainable_parameters()
    opt = adamw(params, cfg)
    sampler = ExampleSampler(items, cfg, load_vocabulary(), cfg.seed, extra)
    prog = run_steps(out, cfg, recipe, net, opt, params, sampler, lambda: model.loss(sampler.batch(cfg.batch)),
                     progress=progress, log=log, on_step=on_step)
    net.eval()
    model.save(out, {"trained_with": {"preset": preset, "train": cfg.to_dict(), "base": str(base),
                                      "corpus": str(corpus), "train_clips": len(items),
                                      "retracked_clips": len(extra),
                                      "init": str(init) if init else None, "init_sha256": init_sha}})
    remove_quietly(str(out / "checkpoint.pt"))
    return {"out": str(out), "steps": cfg.steps, "train_clips": len(items), "seconds": round(time.time() - prog.t0, 1)}
