"""Training a caption model (built-in or Hugging Face) on a corpus.

`train_m2l(corpus, out, cfg, base=...)` is resumable: every
`checkpoint_every` steps it writes `out/checkpoint.pt` atomically (weights,
optimiser, sampler state, step); rerunning the same command continues. The
result is a caption-model folder plus `train_log.jsonl`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..atomic import remove_quietly
from ..corpus.vocab import load_vocabulary
from ..training import TrainProgress, adamw, begin, load_checkpoint, lr_at, save_checkpoint
from .config import M2LTrainConfig
from .data import ExampleSampler, corpus_items, training_texts


def _make_model(base: str, cfg: M2LTrainConfig, items, meta: dict, out: Path, tok):
    if base == "builtin":
        from .builtin import BuiltinCaptioner
        from .text import TextVocab
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


def train_m2l(corpus, out, cfg: M2LTrainConfig, *, base: str = "builtin", tokenizer=None, progress: bool = False,
              log=print, preset: str | None = None, on_step=None) -> dict:
    """Train (or resume) a caption model into folder `out` on the corpus's
    train split, reading face tokens from `tokenizer` (a FaceTokenizer; None:
    the shipped one). Returns a summary."""
    out, tok = begin(out, cfg, tokenizer)
    items = corpus_items(corpus, "train", tok)
    fps = items[0].fps
    log(f"train m2l ({base}): {len(items)} clips, {sum(len(i.tokens) for i in items)} face tokens, "
        f"tokenizer {tok.sha256[:12]} (K={tok.codebook_size})")
    meta = {"tokenizer_sha256": tok.sha256, "codebook_size": tok.codebook_size, "fps": fps}
    recipe = {"train": cfg.to_dict(), "base": str(base), **meta}
    model = _make_model(base, cfg, items, meta, out, tok)
    net = model.module()
    params = model.trainable_parameters()
    opt = adamw(params, cfg)
    sampler = ExampleSampler(items, cfg, load_vocabulary(), cfg.seed)
    ckpt = out / "checkpoint.pt"
    step = 0
    state = load_checkpoint(ckpt, recipe)
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sampler.set_state(json.loads(state["sampler"]))
        step = int(state["step"])
        log(f"resuming from step {step} ({ckpt})")
    prog = TrainProgress(out, cfg.steps, step, progress, log)
    net.train()
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        loss = model.loss(sampler.batch(cfg.batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        prog.update(step, loss.item(), lambda: {"lr": lr_at(step - 1, cfg)})
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save_checkpoint(ckpt, {"model": net.state_dict(), "opt": opt.state_dict(),
                                   "sampler": json.dumps(sampler.state()), "step": step}, recipe)
        if on_step is not None:
            on_step(step)
    prog.close()
    net.eval()
    model.save(out, {"trained_with": {"preset": preset, "train": cfg.to_dict(), "base": str(base),
                                      "corpus": str(corpus), "train_clips": len(items)}})
    remove_quietly(str(ckpt))
    return {"out": str(out), "steps": cfg.steps, "train_clips": len(items), "seconds": round(time.time() - prog.t0, 1)}
