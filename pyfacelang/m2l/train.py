"""Training a caption model (built-in or Hugging Face) on a corpus.

`train_m2l(corpus, out, cfg, base=...)` is resumable: every
`checkpoint_every` steps it writes `out/checkpoint.pt` atomically (weights,
optimiser, sampler state, step); rerunning the same command continues. The
result is a caption-model folder plus `train_log.jsonl`.
"""
from __future__ import annotations

import time
from pathlib import Path


from ..atomic import remove_quietly
from ..corpus.vocab import load_vocabulary
from ..training import adamw, begin, run_steps
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
              log=print, preset: str | None = None, on_step=None, retracked=None) -> dict:
    """Train (or resume) a caption model into folder `out` on the corpus's
    train split, reading face tokens from `tokenizer` (a FaceTokenizer; None:
    the shipped one). A `cfg.retracked_share` of examples come from the
    retracked corpus `retracked` (None: built from `corpus`, see
    `retracked_items`). Returns a summary."""
    out, tok = begin(out, cfg, tokenizer)
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
    recipe = {"train": cfg.to_dict(), "base": str(base), **meta}
    model = _make_model(base, cfg, items, meta, out, tok)
    net = model.module()
    params = model.trainable_parameters()
    opt = adamw(params, cfg)
    sampler = ExampleSampler(items, cfg, load_vocabulary(), cfg.seed, extra)
    prog = run_steps(out, cfg, recipe, net, opt, params, sampler, lambda: model.loss(sampler.batch(cfg.batch)),
                     progress=progress, log=log, on_step=on_step)
    net.eval()
    model.save(out, {"trained_with": {"preset": preset, "train": cfg.to_dict(), "base": str(base),
                                      "corpus": str(corpus), "train_clips": len(items),
                                      "retracked_clips": len(extra)}})
    remove_quietly(str(out / "checkpoint.pt"))
    return {"out": str(out), "steps": cfg.steps, "train_clips": len(items), "seconds": round(time.time() - prog.t0, 1)}
