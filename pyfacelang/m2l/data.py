"""Training and test items for Motion2Language: each clip's face tokens
(made by one `FaceTokenizer`) with its caption, paraphrases and labels; and
the sampler that turns items into instruction examples."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import FaceLangError
from ..tokens.geometry import fill_invalid, motion_from_params
from .config import M2LTrainConfig
from .templates import PROMPTS, answer


@dataclass
class Item:
    tokens: np.ndarray        # (T,) int64 face tokens at `fps`
    caption: str
    paraphrases: list
    labels: dict
    fps: float
    motion: np.ndarray | None = None   # (T, 55) the clip's own motion rows (when asked for)
    prompts: list = field(default_factory=list)   # short user-style prompts (text-to-motion trains on them)


def _tokens_of(tokenizer, motions: list[np.ndarray], switch_cost: float = 0.0) -> list[np.ndarray]:
    """Tokenize many clips with one encoder call (the encoder is per frame);
    switch_cost > 0: clip by clip, run-length smoothed (FaceTokenizer.encode)."""
    if switch_cost:
        return [tokenizer.encode(m.astype(np.float32), switch_cost=switch_cost).astype(np.int64) for m in motions]
    lens = [len(m) for m in motions]
    allrows = np.concatenate(motions).astype(np.float32)                   # (sum T, 55)
    toks = np.concatenate([tokenizer.encode(allrows[i:i + 200_000])
                           for i in range(0, len(allrows), 200_000)]).astype(np.int64)
    return np.split(toks, np.cumsum(lens)[:-1])


def corpus_items(corpus, split: str, tokenizer, limit: int | None = None, keep_motion: bool = False,
                 reader="default", switch_cost: float = 0.0) -> list[Item]:
    """Items of one split of a corpus folder (with `keep_motion`, also the
    motion rows). A retracked corpus holds the fitter's rows; they are read
    through `reader` (see tokens.inputs.motion_of), as tracked video is.
    switch_cost: tokens run-length smoothed (FaceTokenizer.encode)."""
    from ..corpus.dataset import split_of
    from ..corpus.store import Corpus
    c = Corpus(corpus)
    names = c.config.get("param_names")
    if names is None:
        raise FaceLangError(f"corpus '{corpus}' does not name its parameters (corpus.json lacks param_names)")
    ids = [i for i in c.ids if split == "all" or split_of(i) == split][:limit]
    from ..track.reader import resolve_reader
    reader = resolve_reader(reader) if c.config.get("kind") == "retracked" else None
    motions, metas = [], []
    for cid in ids:
        clip = c.read(cid)
        meta = clip["meta"]
        if not meta.get("caption") or not meta.get("labels"):
            continue   # ingested real clips without labels teach nothing here
        m = motion_from_params(clip["params"], names)
        m, _ = fill_invalid(m if reader is None else reader.read(m))
        if len(m) >= 2:
            motions.append(m)
            metas.append(meta)
    if not motions:
        raise FaceLangError(f"corpus '{corpus}' has no captioned '{split}' clips")
    fps = float(c.config.get("fps", 25.0))
    return [Item(t, m["caption"], list(m.get("paraphrases", [])), m["labels"], float(m.get("fps", fps)),
                 mo if keep_motion else None, list(m.get("prompts", [])))
            for t, m, mo in zip(_tokens_of(tokenizer, motions, switch_cost), metas, motions)]


def synthetic_items(seed: int, clips: int, tokenizer, seconds: tuple | None = None,
                    keep_motion: bool = False) -> list[Item]:
    """A fresh synthetic test set (never on disk, never trained on); clip
    lengths `seconds` (lo, hi) (None: the generator's default)."""
    from ..corpus.synth import SynthConfig, generate_clip, plan_corpus
    from ..corpus.vocab import load_vocabulary
    cfg = SynthConfig(clips=clips, seed=seed, **({"seconds": tuple(seconds)} if seconds else {}))
    vocab = load_vocabulary()
    motions, metas = [], []
    for p in plan_corpus(cfg, vocab):
        params, _, meta = generate_clip(p, cfg, vocab)
        motions.append(params.astype(np.float16).astype(np.float32))   # stored precision, as in a corpus
        metas.append(meta)
    return [Item(t, m["caption"], m["paraphrases"], m["labels"], cfg.fps, mo if keep_motion else None,
                 list(m.get("prompts", [])))
            for t, m, mo in zip(_tokens_of(tokenizer, motions), metas, motions)]


class ExampleSampler:
    """Random (face tokens, prompt, answer) examples from items, following
    the recipe's task mix. Its state is a JSON-able dict for checkpoints."""

    def __init__(self, items: list[Item], cfg: M2LTrainConfig, vocab, seed: int, retracked: list[Item] | None = None):
        self.items, self.cfg, self.vocab = items, cfg, vocab
        # retracked items: drawn for a `cfg.retracked_share` of examples
        self.retracked = retracked if retracked and cfg.retracked_share > 0 else None
        self.rng = np.random.default_rng(seed)
        self.tasks = [t for t, _ in cfg.task_mix]
        w = np.array([p for _, p in cfg.task_mix], float)
        self.task_p = w / w.sum()

    def example(self, item: Item, task: str):
        r = self.rng
        prompt = PROMPTS[task][int(r.integers(len(PROMPTS[task])))]
        text = item.caption
        if task == "describe" and item.paraphrases and r.random() < self.cfg.paraphrase:
            text = item.paraphrases[int(r.integers(len(item.paraphrases)))]
        return item.tokens, prompt, answer(task, item.labels, text, self.vocab, int(r.integers(2)))

    def batch(self, n: int) -> list:
        pick = self.rng.integers(0, len(self.items), n)
        tasks = self.rng.choice(len(self.tasks), size=n, p=self.task_p)
        items = [self.items[i] for i in pick]
        if self.retracked is not None:
            swap = self.rng.random(n) < self.cfg.retracked_share
            other = self.rng.integers(0, len(self.retracked), n)
            items = [self.retracked[o] if s else it for it, s, o in zip(items, swap, other)]
        return [self.example(it, self.tasks[t]) for it, t in zip(items, tasks)]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def training_texts(items: list[Item], vocab) -> list[str]:
    """Every caption, paraphrase, prompt and templated answer (BPE training text)."""
    texts = [p for ps in PROMPTS.values() for p in ps]
    for it in items:
        texts.append(it.caption)
        texts.extend(it.paraphrases)
        for task in ("intensity", "head", "emotion", "actions"):
            texts.extend(answer(task, it.labels, it.caption, vocab, v) for v in (0, 1))
    return texts
