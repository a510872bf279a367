"""Training a text-to-motion model on a corpus (resumable, like the other
trainers: `out/checkpoint.pt` every `checkpoint_every` steps; rerunning the
same command continues)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..atomic import remove_quietly
from ..errors import FaceLangError, ShapeError
from ..training import adamw, begin, run_steps
from .config import L2MTrainConfig


class PromptSampler:
    """Random (prompt, face tokens, unconditional?, corrupted input tokens,
    context length) examples: the caption, one of its paraphrases or one of
    its short prompts; `cond_drop` of them with the text dropped; `splice` of
    them led by the end of another clip (context, not scored: its length is
    the fifth item); inputs with up to `corrupt` of their tokens replaced by
    random codes (None when `corrupt` is 0; `corrupt_near` of those codes
    drawn from the true code's `neighbours` row instead; the <mask> id for a
    model with `mask_token`, `corrupt_mask` of them when that is under 1),
    and each target token's loss weight (None when neither `event_weight`
    nor `onset_weight` is set, see `event_weights`)."""

    def __init__(self, items, cfg: L2MTrainConfig, seed: int, n_codes: int, neighbours: np.ndarray | None = None):
        self.items, self.cfg, self.n_codes = items, cfg, n_codes
        self.mask_id = n_codes + 1 if cfg.model.mask_token else None   # MotionGPT.mask_id
        self.rng = np.random.default_rng(seed)
        if cfg.corrupt_near > 0:
            if neighbours is None or neighbours.ndim != 2 or len(neighbours) != n_codes:
                raise ShapeError(f"corrupt_near {cfg.corrupt_near} needs a ({n_codes}, k) neighbours table, got "
                                 f"{None if neighbours is None else neighbours.shape}")
        self.neighbours = neighbours

    def batch(self, n: int):
        r, W = self.rng, self.cfg.model.max_frames
        texts, seqs, context, weights = [], [], [], []
        for i in r.integers(0, len(self.items), n):
            it = self.items[i]
            text, u = it.caption, r.random()
            if it.prompts and u < self.cfg.short_prompt:
                text = it.prompts[int(r.integers(len(it.prompts)))]
            elif it.paraphrases and u < self.cfg.short_prompt + self.cfg.paraphrase:
                text = it.paraphrases[int(r.integers(len(it.paraphrases)))]
            toks, c = it.tokens, 0
            w = event_weights(it, self.cfg)
            if r.random() < self.cfg.splice:   # the end of another clip, then this one from its start
                c = int(r.integers(W // 10, W // 2 + 1))
                other = self.items[int(r.integers(len(self.items)))].tokens[-c:]
                c = len(other)
                toks = np.concatenate([np.asarray(other, np.int64), np.asarray(toks[: W - c], np.int64)])
                w = np.concatenate([np.ones(c, np.float32), w[: W - c]])
            elif len(toks) > W:   # longer than the model's window: a random crop
                s = int(r.integers(0, len(toks) - W + 1))
                toks, w = toks[s: s + W], w[s: s + W]
            texts.append(text)
            weights.append(w)
            seqs.append(toks)
            context.append(c)
        uncond = torch.as_tensor(r.random(n) < self.cfg.cond_drop)
        inputs = None
        if self.cfg.corrupt > 0:
            inputs = []
            for s in seqs:
                s = np.array(s, np.int64)
                hit = r.random(len(s)) < r.uniform(0.0, self.cfg.corrupt)
                s[hit] = self._corrupt(s[hit])
                inputs.append(s)
        return texts, seqs, uncond, inputs, context, (weights if weighted(self.cfg) else None)

    def _corrupt(self, true: np.ndarray) -> np.ndarray:
        """Replacement codes for the true codes `true` (the random draws of
        the recipes without `corrupt_near` stay exactly as they were)."""
        r = self.rng
        if self.mask_id is not None:
            if self.cfg.corrupt_mask >= 1.0:
                return np.full(len(true), self.mask_id, np.int64)
            out = r.integers(0, self.n_codes, len(true))     # a mix: corrupt_mask of them masked
            out[r.random(len(true)) < self.cfg.corrupt_mask] = self.mask_id
            return out
        out = r.integers(0, self.n_codes, len(true))
        if self.cfg.corrupt_near > 0:
            near = r.random(len(true)) < self.cfg.corrupt_near
            nb = self.neighbours[true[near]]                                          # (n, k)
            out[near] = nb[np.arange(len(nb)), r.integers(0, nb.shape[1], len(nb))]
        return out

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def event_weights(item, cfg: L2MTrainConfig) -> np.ndarray:
    """(T,) loss weights of an item's tokens: `cfg.event_weight` inside each
    labelled action and head motion (widened by `cfg.event_margin` seconds
    either side) and `cfg.onset_weight` over each one's first frames
    (whichever is larger), 1 elsewhere (all 1 without reading the labels when
    neither is set)."""
    w = np.ones(len(item.tokens), np.float32)
    if not weighted(cfg):
        return w
    lab = item.labels or {}
    def frame(t: float, up: bool) -> int:      # seconds -> frame, rounded off float noise (0.56 * 25 = 14.000...02)
        x = round(t * item.fps, 6)
        return int(np.ceil(x) if up else np.floor(x))

    for ev in [*lab.get("actions", []), *([lab["head"]] if lab.get("head") else [])]:
        a = max(0, frame(ev["start"] - cfg.event_margin, False))
        b = min(len(w), frame(ev["end"] + cfg.event_margin, True) + 1)
        w[a:b] = np.maximum(w[a:b], cfg.event_weight)    # never lowers an earlier event's onset
        o = min(len(w), frame(ev["start"] + cfg.onset_span, True) + 1)
        w[a:o] = np.maximum(w[a:o], cfg.onset_weight)
    return w


def weighted(cfg: L2MTrainConfig) -> bool:
    """Whether the recipe weighs any token's loss apart from the others."""
    return cfg.event_weight != 1.0 or cfg.onset_weight != 1.0


def corpus_texts(items, short_prompts: bool = False) -> list[str]:
    """The texts the built-in encoder's BPE learns from: captions and
    paraphrases, and the short prompts when training uses them."""
    return [t for it in items for t in [it.caption, *it.paraphrases, *(it.prompts if short_prompts else [])]]


def _make_model(encoder: str, cfg: L2MTrainConfig, items, meta: dict, out: Path, tok):
    from .encoders import BuiltinTextEncoder, make_text_encoder
    from .generator import TextToMotion
    if encoder == "builtin" and (out / "text_tokenizer.json").exists():   # resume: the BPE learnt at the start
        enc = BuiltinTextEncoder.load(out, {"config": cfg.encoder.to_dict()})
    else:
        enc = make_text_encoder(encoder, cfg.encoder, corpus_texts(items, cfg.short_prompt > 0))
        enc.save_files(out)
    return TextToMotion.create(cfg.model, enc, meta, tok.code_motion() if cfg.model.code_features else None)


def _require_short_prompts(corpus, cfg: L2MTrainConfig) -> None:
    """A corpus built before short prompts existed would train quietly on
    captions alone ("a faint smile" / "an extremely broad smile" then come
    out alike): refuse it before any folder is made or clip tokenized, when
    the recipe draws from short prompts. Reads clip metadata only, up to the
    first clip that has them."""
    from ..corpus.store import Corpus, CorpusError
    if cfg.short_prompt <= 0:
        return
    c = Corpus(corpus)
    if any(meta.get("prompts") for _, meta in c.metas()):
        return
    vocab = c.config.get("vocab_sha256") or "unknown"
    raise CorpusError(f"corpus '{corpus}' has no short prompts (it was built with vocabulary {vocab[:12]}), "
                      f"but this recipe draws {cfg.short_prompt:.0%} of its examples from them: rebuild the "
                      "corpus with `pyfacelang corpus synth`, or train with --preset captions")


def train_l2m(corpus, out, cfg: L2MTrainConfig, *, encoder: str = "builtin", tokenizer=None, progress: bool = False,
              log=print, preset: str | None = None) -> dict:
    """Train (or resume) a text-to-motion model into folder `out` on the
    corpus's train split, with face tokens from `tokenizer` (a FaceTokenizer
    or folder; None: the shipped one). Returns a summary."""
    from ..m2l.data import corpus_items
    _require_short_prompts(corpus, cfg)
    out, tok = begin(out, cfg, tokenizer)
    if cfg.corrupt_near > 0 and not cfg.corrupt_near_k < tok.codebook_size:
        raise FaceLangError(f"corrupt_near_k {cfg.corrupt_near_k}: the tokenizer has {tok.codebook_size} codes, "
                            f"so a code has at most {tok.codebook_size - 1} neighbours")
    items = corpus_items(corpus, "train", tok, switch_cost=cfg.switch_cost)
    meta = {"tokenizer_sha256": tok.sha256, "codebook_size": tok.codebook_size, "fps": items[0].fps,
            "switch_cost": cfg.switch_cost}
    log(f"train l2m ({cfg.model.conditioning}, encoder {encoder}): {len(items)} clips, "
        f"{sum(len(i.tokens) for i in items)} face tokens, tokenizer {tok.sha256[:12]} (K={tok.codebook_size})")
    recipe = {"train": cfg.to_dict(), "encoder": str(encoder), **meta}
    model = _make_model(encoder, cfg, items, meta, out, tok)
    params = model.trainable_parameters()
    opt = adamw(params, cfg)
    near = tok.code_neighbours(cfg.corrupt_near_k) if cfg.corrupt_near > 0 else None
    sampler = PromptSampler(items, cfg, cfg.seed, tok.codebook_size, near)
    prog = run_steps(out, cfg, recipe, model.modules, opt, params, sampler,
                     lambda: model.loss(*sampler.batch(cfg.batch)), progress=progress, log=log)
    model.modules.eval()
    model.save(out, {"trained_with": {"preset": preset, "train": cfg.to_dict(), "encoder": str(encoder),
                                      "corpus": str(corpus), "train_clips": len(items)}})
    remove_quietly(str(out / "checkpoint.pt"))
    return {"out": str(out), "steps": cfg.steps, "train_clips": len(items), "seconds": round(time.time() - prog.t0, 1)}
