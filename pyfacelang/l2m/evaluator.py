"""The judge `eval l2m` scores generated motion with, trained apart from any
generator (`pyfacelang train l2m-eval`, shipped in `data/evaluator`):

- a motion encoder and a word-level text encoder (GRU over words) trained
  contrastively (InfoNCE), whose motion features give the Frechet distance
  (FD) and whose joint space gives R-precision (R@1, R@3 among 32 prompts);
- a separate motion classifier (its own encoder) for the clip's emotion
  group, which gives CorE without any captioner in the loop.

It is trained on corpus motion both as stored and as the face tokenizer
reconstructs it (tokenize -> decode), so generated motion (always decoded)
is not out of its domain.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError, ShapeError
from ..tokens.geometry import MOTION_DIM, N_EXPR
from ..training import TrainProgress, config_from_dict

FORMAT = "pyfacelang-l2m-eval/1"
HEAD_SCALE = 3.0   # head rotation (rad, ~0.3) to the scale of ARKit weights (0..1)


@dataclass(frozen=True)
class EvalConfig:
    d_model: int = 128
    # Words seen at least this often in the training captions get their
    # own embedding; the rest share <unk>.
    min_count: int = 2
    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    # InfoNCE temperature (the usual 0.07 is too sharp for 83 emotion words
    # whose captions share most of their wording).
    temperature: float = 0.1
    # Share of training examples shown as the tokenizer reconstructs them.
    decoded: float = 0.5
    corpus_clips: int = 20000
    corpus_seed: int = 0
    corpus_seconds: tuple = (2.0, 10.0)
    seed: int = 0
    threads: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["corpus_seconds"] = list(self.corpus_seconds)
        return d


EVAL_PRESETS = {"default": EvalConfig(), "tiny": EvalConfig(d_model=32, steps=20, batch=8, corpus_clips=60)}


def evaluator_path() -> Path:
    return Path(str(resources.files("pyfacelang.l2m").joinpath("data", "evaluator")))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", str(text).lower())


class MotionEncoder(nn.Module):
    """(B, T, 55) motion + lengths -> (B, D): temporal convolutions, masked mean and max pooling."""

    def __init__(self, d: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(MOTION_DIM, d, 5, padding=2), nn.GELU(),
            nn.Conv1d(d, d, 5, padding=4, dilation=2), nn.GELU(),
            nn.Conv1d(d, d, 5, padding=8, dilation=4), nn.GELU())
        self.out = nn.Linear(2 * d, d)

    def forward(self, x, lengths):
        x = x.clone()
        x[..., N_EXPR:] *= HEAD_SCALE
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)                              # (B, T, D)
        valid = torch.arange(h.shape[1], device=h.device)[None] < lengths[:, None]   # (B, T)
        w = valid[..., None].to(h.dtype)
        mean = (h * w).sum(1) / w.sum(1).clamp_min(1.0)
        mx = h.masked_fill(~valid[..., None], float("-inf")).max(1).values
        return self.out(torch.cat([mean, mx], -1))


class WordEncoder(nn.Module):
    """Prompts -> (B, D): word embeddings and a bidirectional GRU."""

    def __init__(self, vocab: list[str], d: int):
        super().__init__()
        self.vocab = list(vocab)                     # index 0 = <pad>, 1 = <unk>
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.emb = nn.Embedding(len(self.vocab), d)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * d, d)

    def forward(self, texts):
        rows = [[self.index.get(w, 1) for w in words(t)] or [1] for t in texts]
        L = max(map(len, rows))
        ids = torch.zeros(len(rows), L, dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, : len(r)] = torch.tensor(r)
        lengths = torch.tensor([len(r) for r in rows])
        packed = nn.utils.rnn.pack_padded_sequence(self.emb(ids.to(self.emb.weight.device)), lengths,
                                                   batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)                                                       # (2, B, D)
        return self.out(torch.cat([h[0], h[1]], -1))


def _pad(motions) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(m) for m in motions)
    x = torch.zeros(len(motions), T, MOTION_DIM)
    for b, m in enumerate(motions):
        m = np.asarray(m, np.float32)
        if m.ndim != 2 or m.shape[1] != MOTION_DIM:
            raise ShapeError(f"motion: expected (T, {MOTION_DIM}) rows, got {m.shape}")
        x[b, : len(m)] = torch.from_numpy(m)
    return x, torch.tensor([len(m) for m in motions])


class MotionEvaluator(nn.Module):
    def __init__(self, cfg: EvalConfig, vocab: list[str], groups: list[str]):
        super().__init__()
        self.cfg, self.groups = cfg, list(groups)
        self.motion = MotionEncoder(cfg.d_model)
        self.text = WordEncoder(vocab, cfg.d_model)
        self.cls_motion = MotionEncoder(cfg.d_model)      # the classifier shares nothing with the retrieval model
        self.cls_head = nn.Linear(cfg.d_model, len(groups))

    @torch.no_grad()
    def motion_features(self, motions, batch: int = 128) -> np.ndarray:
        """Motion rows (list of (T, 55)) -> (N, D) features (for FD)."""
        out = []
        for i in range(0, len(motions), batch):
            out.append(self.motion(*_pad(motions[i: i + batch])))
        return torch.cat(out).numpy()

    @torch.no_grad()
    def text_features(self, texts, batch: int = 256) -> np.ndarray:
        return torch.cat([self.text(texts[i: i + batch]) for i in range(0, len(texts), batch)]).numpy()

    @torch.no_grad()
    def classify(self, motions, batch: int = 128) -> list[str]:
        out = []
        for i in range(0, len(motions), batch):
            out.extend(self.cls_head(self.cls_motion(*_pad(motions[i: i + batch]))).argmax(-1).tolist())
        return [self.groups[k] for k in out]

    def save(self, folder, extra: dict) -> Path:
        from safetensors.torch import save

        from ..atomic import write_atomic
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        blob = save({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()})
        write_atomic(folder / "model.safetensors", lambda f: f.write(blob))
        meta = {"format": FORMAT, "config": self.cfg.to_dict(), "vocab": self.text.vocab, "groups": self.groups,
                **extra}
        text = json.dumps(meta, indent=1)
        write_atomic(folder / "config.json", lambda f: f.write(text.encode()))
        return folder

    @classmethod
    def load(cls, path=None) -> "MotionEvaluator":
        from safetensors.torch import load_file
        folder = evaluator_path() if path is None else Path(path)
        try:
            meta = json.loads((folder / "config.json").read_text())
            state = load_file(str(folder / "model.safetensors"))
        except (OSError, ValueError) as e:
            raise ModelFileError(f"motion evaluator '{folder}': {e} (train one with `pyfacelang train l2m-eval`)") \
                from None
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{folder}/config.json: not a pyfacelang motion evaluator")
        model = cls(config_from_dict(EvalConfig, meta["config"], "evaluator"), meta["vocab"], meta["groups"])
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ModelFileError(f"{folder}/model.safetensors: weights do not match config.json "
                                 f"({str(e).splitlines()[0]})") from None
        model.meta = meta
        return model.eval()


def build_vocab(texts, min_count: int) -> list[str]:
    counts: dict[str, int] = {}
    for t in texts:
        for w in words(t):
            counts[w] = counts.get(w, 0) + 1
    return ["<pad>", "<unk>"] + sorted(w for w, c in counts.items() if c >= min_count)


def decoded_motion(tok, items) -> list[np.ndarray]:
    """Each item's motion as the tokenizer reconstructs it (its tokens decoded)."""
    return [tok.decode(it.tokens) for it in items]


def train_evaluator(corpus, out, cfg: EvalConfig, *, tokenizer=None, progress: bool = False, log=print,
                    preset: str | None = None) -> dict:
    from ..corpus.vocab import load_vocabulary
    from ..m2l.data import corpus_items
    from ..training import begin
    out, tok = begin(out, cfg, tokenizer)
    rng = np.random.default_rng(cfg.seed)
    items = corpus_items(corpus, "train", tok, keep_motion=True)
    vocab = load_vocabulary()
    groups = sorted(vocab.data["emotion_groups"])
    labels = torch.tensor([groups.index(vocab.emotion_group(it.labels["emotion"])) for it in items])
    log(f"train l2m-eval: {len(items)} clips; decoding their tokens")
    dec = decoded_motion(tok, items)
    texts = [[it.caption, *it.paraphrases] for it in items]
    model = MotionEvaluator(cfg, build_vocab((t for ts in texts for t in ts), cfg.min_count), groups)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    prog = TrainProgress(out, cfg.steps, 0, progress, log)
    model.train()
    for step in range(1, cfg.steps + 1):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))
        pick = rng.choice(len(items), cfg.batch, replace=False)
        motions = [dec[i] if rng.random() < cfg.decoded else items[i].motion for i in pick]
        x, n = _pad(motions)
        prompts = [texts[i][int(rng.integers(len(texts[i])))] for i in pick]
        m = F.normalize(model.motion(x, n), dim=-1)
        t = F.normalize(model.text(prompts), dim=-1)
        sim = m @ t.T / cfg.temperature                                                # (B, B)
        # clips with the same caption are not negatives of each other
        same = torch.tensor([[prompts[a] == prompts[b] for b in range(len(pick))] for a in range(len(pick))])
        sim = sim.masked_fill(same & ~torch.eye(len(pick), dtype=torch.bool), float("-inf"))
        target = torch.arange(len(pick))
        nce = 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))
        ce = F.cross_entropy(model.cls_head(model.cls_motion(x, n)), labels[pick])
        loss = nce + ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        prog.update(step, loss.item(), lambda: {"nce": round(nce.item(), 4), "ce": round(ce.item(), 4)})
    prog.close()
    model.eval()
    model.save(out, {"tokenizer_sha256": tok.sha256,
                     "trained_with": {"preset": preset, "train": cfg.to_dict(), "corpus": str(corpus),
                                      "train_clips": len(items)}})
    return {"out": str(out), "steps": cfg.steps, "train_clips": len(items), "seconds": round(time.time() - prog.t0, 1)}
