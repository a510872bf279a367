"""Training the tokenizer: windows of corpus clips, EMA codebook, checkpoints.

`train_tokenizer(corpus, out, cfg)` is resumable: every `checkpoint_every`
steps it writes `out/checkpoint.pt` atomically (model, optimiser, sampler RNG,
step); rerunning the same command continues from there. The result is a
tokenizer folder (see `tokenizer.py`) plus `train_log.jsonl`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import remove_quietly
from ..errors import FaceLangError
from ..training import TrainProgress, load_checkpoint, lr_at, save_checkpoint
from .config import TrainConfig
from .geometry import fill_invalid, motion_from_params
from .model import GeoVQVAE
from .tokenizer import FaceTokenizer


def load_clips(corpus, split: str = "train", limit: int | None = None, with_actions: bool = False,
               with_words: bool = False):
    """Motion rows (T, 55) float32 of each clip of `split` in a corpus folder.
    with_actions: also return, per clip, its labelled micro-actions as
    (first frame, last frame) pairs -> (clips, spans); with_words as well:
    the action word of each span -> (clips, spans, words)."""
    from ..corpus.dataset import split_of
    from ..corpus.store import Corpus
    c = Corpus(corpus)
    names = c.config.get("param_names")
    if names is None:
        raise FaceLangError(f"corpus '{corpus}' does not name its parameters (corpus.json lacks param_names)")
    ids = [i for i in c.ids if split == "all" or split_of(i) == split]
    if limit is not None:
        ids = ids[:limit]
    clips, spans, words = [], [], []
    for cid in ids:
        rec = c.read(cid)
        m, _ = fill_invalid(motion_from_params(rec["params"], names))
        if len(m) >= 2:
            clips.append(m)
            if with_actions or with_words:
                meta = rec.get("meta") or {}
                fps = float(meta.get("fps") or c.config.get("fps") or 25.0)
                acts = (meta.get("labels") or {}).get("actions") or []
                spans.append([(min(int(a["start"] * fps), len(m) - 1), min(int(np.ceil(a["end"] * fps)), len(m) - 1))
                              for a in acts])
                words.append([a.get("word") for a in acts])
    if not clips:
        raise FaceLangError(f"corpus '{corpus}' has no '{split}' clips to train on")
    if with_words:
        return clips, spans, words
    return (clips, spans) if with_actions else clips


def action_frames(clips: list[np.ndarray], spans: list, words: list, names: list[str]) -> list[np.ndarray]:
    """Per clip, (T, A) uint8 frame labels: 1 where the labelled action
    `names[a]` is under way (its first to last frame), else 0. Words not in
    `names` are skipped. uint8: for the whole corpus (2.3M frames x 50
    actions) that is 113 MB, where float32 would be 450."""
    index = {w: i for i, w in enumerate(names)}
    out = []
    for c, sp, ws in zip(clips, spans, words):
        y = np.zeros((len(c), len(names)), np.uint8)
        for (a, b), w in zip(sp, ws):
            if w in index:
                y[a:b + 1, index[w]] = 1
        out.append(y)
    return out


def random_motion(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """Widen a corpus window (T, 55) toward the whole motion space: 1-12
    random blendshapes with smooth random curves (any combination, up to
    weight 1) and a random head-pose offset and drift (up to ~35 degrees).
    Tracked real faces do things the synthetic recipes never combine;
    without this the tokenizer only covers the recipes."""
    T = len(base)
    out = base.copy()
    t = np.linspace(0.0, 1.0, T)

    def curve(amp: float) -> np.ndarray:
        knots = rng.integers(2, 6)
        xs = np.linspace(0.0, 1.0, knots)
        ys = rng.uniform(0.0, amp, knots)
        return np.interp(t, xs, ys)

    for k in rng.choice(52, size=rng.integers(1, 13), replace=False):
        out[:, k] = np.clip(out[:, k] + curve(rng.uniform(0.2, 1.0)), 0.0, 1.0)
    for a, lim in zip(range(52, 55), (0.6, 0.6, 0.35)):
        out[:, a] += rng.uniform(-lim, lim) + curve(0.2) - 0.1
    return out


def _lateral_pairs() -> np.ndarray:
    """(P, 2) indices of the ARKit shapes that come as a left/right pair of
    one muscle (eyeBlinkLeft/Right, mouthSmileLeft/Right, ...). Left out:
    jawLeft and mouthLeft (directions of one motion, not sides) and the gaze
    shapes (eyes look the same way; weakening one side would cross them)."""
    from ..face.arkit import ARKIT_52
    pos = {n: i for i, n in enumerate(ARKIT_52)}
    sides = [n[:-4] for n in ARKIT_52 if n.endswith("Left") and n[:-4] + "Right" in pos]
    return np.array([(pos[m + "Left"], pos[m + "Right"]) for m in sides
                     if m not in ("jaw", "mouth") and not m.startswith("eyeLook")])


def lateralize(rng: np.random.Generator, window: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """One side of a random half of the left/right pairs weakened to 0-50%
    over the whole window (T, 55): a both-eye blink becomes a wink, a smile
    a smirk. One-sided shapes are rare in the corpus (|L - R| > 0.3 on 0.2%
    of frames for the eyelids), so without this the codebook has no code
    for them and a wink decodes as two half-closed eyes."""
    out = window.copy()
    for a, b in pairs[rng.random(len(pairs)) < 0.5]:
        side = a if rng.random() < 0.5 else b
        out[:, side] *= rng.uniform(0.0, 0.5)
    return out


class WindowSampler:
    """Random windows of `window` frames (shorter clips are edge-padded); a
    fraction `widen` of them goes through `random_motion`, a fraction
    `lateral` through `lateralize`, and a fraction `action_focus` is drawn
    around one labelled micro-action (`spans`: per clip, (first, last) frame
    pairs) instead of anywhere in a clip."""

    def __init__(self, clips: list[np.ndarray], window: int, seed: int, widen: float = 0.0,
                 spans: list | None = None, action_focus: float = 0.0, lateral: float = 0.0,
                 targets: list[np.ndarray] | None = None):
        self.clips, self.window, self.widen, self.lateral = clips, window, widen, lateral
        # per clip (T, A) frame labels cut with the same windows (batch_with_targets)
        self.targets = targets
        self.pairs = _lateral_pairs()
        self.gen = torch.Generator().manual_seed(seed)
        # (clip, middle frame) of every labelled action; focus is off without any
        self.actions = [(k, (a + b) // 2) for k, sp in enumerate(spans or []) for a, b in sp]
        self.action_focus = action_focus if self.actions else 0.0

    def batch(self, n: int) -> torch.Tensor:
        return self.batch_with_targets(n)[0]

    def batch_with_targets(self, n: int):
        """(motion (B, T, 55), frame labels (B, T, A) or None without targets)."""
        out = np.empty((n, self.window, self.clips[0].shape[1]), np.float32)    # (B, T, 55)
        tgt = None if self.targets is None else np.empty((n, self.window, self.targets[0].shape[1]), np.float32)
        pick = torch.randint(0, len(self.clips), (n,), generator=self.gen).tolist()
        mids = [None] * n      # per window: the action frame it must hold, or None
        if self.action_focus > 0:
            draw = (torch.rand(n, generator=self.gen) < self.action_focus).tolist()
            acts = torch.randint(0, len(self.actions), (n,), generator=self.gen).tolist()
            for b in np.flatnonzero(draw):
                pick[b], mids[b] = self.actions[acts[b]]
        for b, k in enumerate(pick):
            c = self.clips[k]
            if len(c) >= self.window:
                lo, hi = 0, len(c) - self.window
                if mids[b] is not None:     # anywhere along the action's middle frame
                    lo, hi = max(0, mids[b] - self.window + 1), min(hi, mids[b])
                s = int(torch.randint(lo, hi + 1, (1,), generator=self.gen))
                out[b] = c[s:s + self.window]
                if tgt is not None:
                    tgt[b] = self.targets[k][s:s + self.window]
            else:
                out[b, :len(c)] = c
                out[b, len(c):] = c[-1]
                if tgt is not None:
                    tgt[b, :len(c)] = self.targets[k]
                    tgt[b, len(c):] = self.targets[k][-1]
        # each augmentation draws its own seed, only when on: at 0 the windows are unchanged
        for share, augment in ((self.widen, random_motion),
                               (self.lateral, lambda rng, w: lateralize(rng, w, self.pairs))):
            if share > 0:
                rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=self.gen)))
                for b in np.nonzero(rng.random(n) < share)[0]:
                    out[b] = augment(rng, out[b])
        return torch.from_numpy(out), (None if tgt is None else torch.from_numpy(tgt))


def losses(model: GeoVQVAE, motion: torch.Tensor, param_weight: float, quantize: bool = True,
           probe: torch.nn.Module | None = None, targets: torch.Tensor | None = None, probe_weight: float = 0.0,
           asymmetry_weight: float = 0.0):
    """(total, parts dict, z, idx) for a (B, T, 55) batch. With a probe and
    frame labels `targets` (B, T, A): plus probe_weight * the BCE (summed over labels) of a linear
    probe reading the labels off each frame's code vector (straight-through,
    so the encoder, not the codebook, is pushed to keep them apart). With
    asymmetry_weight > 0: plus that weight * the squared error of each
    left/right pair's difference (`_lateral_pairs`), mean over frames and pairs."""
    rec, z, idx, commit = model(motion, quantize)
    p_mse = ((rec - motion) ** 2).mean()
    parts = {"param_mse": p_mse, "commit": commit}
    asym = motion.new_zeros(())
    if asymmetry_weight > 0:
        pairs = torch.from_numpy(_lateral_pairs()).to(motion.device)               # (P, 2)
        d_rec = rec[..., pairs[:, 0]] - rec[..., pairs[:, 1]]                       # (B, T, P)
        d_true = motion[..., pairs[:, 0]] - motion[..., pairs[:, 1]]
        asym = ((d_rec - d_true) ** 2).mean()
        parts["asym_mse"] = asym
    probe_loss = motion.new_zeros(())
    if probe is not None and targets is not None and probe_weight > 0:
        zq = z if idx is None else z + (model.codebook.embed[idx] - z).detach()     # (B*T, D)
        # summed over the labels, averaged over frames: per frame, one multi-label loss
        probe_loss = F.binary_cross_entropy_with_logits(probe(zq), targets.reshape(len(zq), -1),
                                                        reduction="sum") / len(zq)
        parts["probe_bce"] = probe_loss
    if model.cfg.space == "geometry":
        g = model.geometry
        v_mse = ((g.posed(rec) - g.posed(motion)) ** 2).mean()             # mm^2 per coordinate
        parts["vertex_mse"] = v_mse
        total = v_mse + param_weight * p_mse + model.cfg.commitment * commit
    else:
        total = p_mse + model.cfg.commitment * commit
    return total + probe_weight * probe_loss + asymmetry_weight * asym, parts, z, idx


def train_tokenizer(corpus, out, cfg: TrainConfig, *, progress: bool = False, log=print,
                    preset: str | None = None, on_step=None) -> dict:
    """Train (or resume training) a tokenizer into folder `out`; returns a summary.
    on_step(step): called after every optimiser step (progress hooks, tests)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    clips, spans, words = load_clips(corpus, "train", with_words=True)
    frames = sum(len(c) for c in clips)
    log(f"train tokenizer ({cfg.model.space}, K={cfg.model.codebook_size}): {len(clips)} clips, {frames} frames")
    model = GeoVQVAE(cfg.model)
    probe, targets = None, None
    if cfg.action_probe > 0:
        from ..corpus.vocab import load_vocabulary
        names = sorted(load_vocabulary().data["actions"])
        targets = action_frames(clips, spans, words, names)
        probe = torch.nn.Linear(cfg.model.code_dim, len(names))
        with torch.no_grad():   # start at each label's base rate: the loss then only falls by reading the codes
            rate = (sum(t.sum(0, dtype=np.int64) for t in targets) / frames).clip(1e-4, 1 - 1e-4)
            probe.weight.zero_()
            probe.bias.copy_(torch.from_numpy(np.log(rate / (1 - rate))))
    params = [p for p in model.parameters() if p.requires_grad] + ([] if probe is None else list(probe.parameters()))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sampler = WindowSampler(clips, cfg.window, cfg.seed, cfg.widen, spans, cfg.action_focus, cfg.lateral, targets)
    ckpt = out / "checkpoint.pt"
    step = 0
    state = load_checkpoint(ckpt, cfg.to_dict())
    if state is not None:
        model.load_state_dict(state["model"])
        if probe is not None:
            probe.load_state_dict(state["probe"])
        opt.load_state_dict(state["opt"])
        sampler.gen.set_state(state["rng"])
        step = int(state["step"])
        log(f"resuming from step {step} ({ckpt})")
    prog = TrainProgress(out, cfg.steps, step, progress, log)
    model.train()
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        motion, frame_labels = sampler.batch_with_targets(cfg.batch)
        quantize = step >= cfg.ae_warmup
        total, parts, z, idx = losses(model, motion, cfg.param_weight, quantize, probe, frame_labels,
                                      cfg.action_probe, cfg.asymmetry_weight)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if quantize:
            model.codebook.update(z.detach(), idx)
        restarted = 0
        if quantize and (step + 1) % cfg.restart_every == 0 and step < 0.9 * cfg.steps:
            restarted = model.codebook.restart_dead(z.detach(), cfg.restart_from)
        step += 1
        prog.update(step, total.item(), lambda: {
            **{k: round(v.item(), 6) for k, v in parts.items()}, "restarted": restarted, "lr": lr_at(step - 1, cfg),
            "codes_alive": int((model.codebook.cluster_size > cfg.model.dead_threshold).sum())})
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save_checkpoint(ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "rng": sampler.gen.get_state(),
                                   "step": step, **({} if probe is None else {"probe": probe.state_dict()})},
                            cfg.to_dict())
        if on_step is not None:
            on_step(step)
    prog.close()
    model.eval()
    tok = FaceTokenizer(model)
    tok.save(out, {"trained_with": {"preset": preset, "train": cfg.to_dict(), "corpus": str(corpus),
                                    "train_clips": len(clips), "train_frames": frames}})
    remove_quietly(str(ckpt))
    return {"out": str(out), "steps": cfg.steps, "train_clips": len(clips), "seconds": round(time.time() - prog.t0, 1)}
