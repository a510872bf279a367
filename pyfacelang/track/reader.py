"""`MotionReader`: the fitter's motion rows -> the rig motion the face shows.

Why a learned step after the fit: MediaPipe's 478 landmarks do not pin the
rig's 52 shapes down. On renders of the rig itself (`corpus retrack`: clips
rendered from known motion and tracked back), the fitted weights correlate
with the weights that made the render at r = 0.25 on average; lip press,
sneer, dimple, stretch and eye-wide are near 0, and one motion is spread over
neighbours (a real toothy grin fits as dimple, lower-down and upper-up at 1.0,
which the tokenizer maps to a near-neutral code). The reader is a small MLP
trained on those retracked pairs: a causal window of fitted rows in, the 52
weights that made them out (held-out r 0.60). The head rotation passes
through: the fitter measures it well, relative to the resting pose.

    reader = MotionReader.load()          # the shipped default
    motion = reader.read(fitted_rows)     # (T, 55) -> (T, 55), offline
    row = reader.push(fitted_row)         # (55,) -> (55,), live: same rows as read()

`pyfacelang train reader --preset default` makes the shipped weights.
"""
from __future__ import annotations

import collections
import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import FaceLangError, ModelFileError, ShapeError
from ..tokens.geometry import MOTION_DIM, N_EXPR

FORMAT = "pyfacelang-motion-reader-1"


@dataclass
class ReaderConfig:
    # Frames before the current one the reader sees. Causal, so live tracking
    # adds no latency. Measured (held-out r over the 52 weights): no context
    # 0.586, 8 frames before 0.597, 4 before + 4 after 0.632.
    context: int = 8
    hidden: int = 512
    # Dropout and Gaussian noise on the standardised inputs: 800 clips are
    # ~100k frames but only 800 faces and camera angles, and without them the
    # MLP memorises them (train MSE 0.0002 vs held-out 0.005).
    dropout: float = 0.1
    input_noise: float = 0.1
    steps: int = 4000
    batch: int = 512
    lr: float = 2e-3           # one-cycle peak
    weight_decay: float = 1e-2
    # Share of retracked clips held out to report per-channel correlation.
    holdout: float = 0.05
    seed: int = 0
    threads: int = 0           # torch threads (0: all cores)
    # Without --corpus: the tokenizer's default synthetic corpus (20k clips,
    # seed 0), so the reader is trained on clips the other models know.
    corpus_clips: int = 20000
    corpus_seed: int = 0
    # Without --retracked: this many of the corpus's train clips are
    # retracked into OUTPUT/retracked (`corpus retrack` defaults; ~45 min on
    # 2 cores for 2000). The reader is short of faces, not of capacity: on
    # 800 clips a wider net (1024, 8000 steps) or a longer context (16)
    # reads held-out retracked clips worse (r 0.629 / 0.632 vs 0.641).
    retracked_clips: int = 2000


PRESETS = {"default": ReaderConfig(),
           "tiny": ReaderConfig(steps=100, hidden=64, corpus_clips=60, retracked_clips=4)}


def shipped_path() -> Path:
    return Path(__file__).parent / "data" / "reader"


def windows(rows: np.ndarray, context: int) -> np.ndarray:
    """(T, 55) -> (T, (context + 1) * 55): each row with the `context` rows
    before it (the first row repeated before the start), oldest first."""
    p = np.concatenate([np.repeat(rows[:1], context, 0), rows], 0)
    return np.concatenate([p[i:i + len(rows)] for i in range(context + 1)], 1)


class ReaderNet(torch.nn.Module):
    def __init__(self, cfg: ReaderConfig):
        super().__init__()
        D = (cfg.context + 1) * MOTION_DIM
        self.register_buffer("mu", torch.zeros(D))    # input standardisation, from the training rows
        self.register_buffer("sd", torch.ones(D))
        # tanh-GELU: MotionReader runs it in the CPU MLP kernel (csrc/mlp),
        # which takes either GELU; kept so the shipped weights stay valid
        self.net = torch.nn.Sequential(
            torch.nn.Linear(D, cfg.hidden), torch.nn.GELU("tanh"), torch.nn.Dropout(cfg.dropout),
            torch.nn.Linear(cfg.hidden, cfg.hidden), torch.nn.GELU("tanh"), torch.nn.Dropout(cfg.dropout),
            torch.nn.Linear(cfg.hidden, N_EXPR))

    def forward(self, x: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        """(N, D) windows -> (N, 52) weights (unclipped)."""
        z = (x - self.mu) / self.sd
        if noise > 0:
            z = z + noise * torch.randn_like(z)
        return self.net(z)


class MotionReader:
    """Stateful like FaceFitter: `read` a whole sequence, or `push` one row
    at a time (live), `reset` between faces."""

    def __init__(self, net: ReaderNet, cfg: ReaderConfig, meta: dict | None = None):
        from .. import _kernels

        self.net, self.cfg, self.meta = net.eval(), cfg, meta or {}
        # the net for the CPU MLP kernel, the input standardisation folded
        # into the first layer: W ((x - mu) / sd) + b = (W / sd) x + (b - (W / sd) mu)
        sd = {k: v.detach().cpu().double() for k, v in net.state_dict().items()}
        lin = [k[:-len(".weight")] for k in sd if k.endswith(".weight")]
        weights, biases = [sd[k + ".weight"] for k in lin], [sd[k + ".bias"] for k in lin]
        weights[0] = weights[0] / sd["sd"]
        biases[0] = biases[0] - weights[0] @ sd["mu"]
        self._mlp = _kernels.MLP(weights, biases, "tanh")
        self.reset()

    # ------------------------------------------------------------- files
    @classmethod
    def load(cls, path=None) -> "MotionReader":
        from safetensors.torch import load_file

        from ..training import config_from_dict

        folder = shipped_path() if path is None else Path(path)
        try:
            meta = json.loads((folder / "config.json").read_text())
            state = load_file(str(folder / "model.safetensors"))
        except (OSError, ValueError) as e:
            raise ModelFileError(f"motion reader '{folder}': {e} (train one with `pyfacelang train reader`)") from None
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{folder}/config.json: not a pyfacelang motion reader")
        cfg = config_from_dict(ReaderConfig, meta["config"], "motion reader")
        net = ReaderNet(cfg)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ModelFileError(f"{folder}/model.safetensors: weights do not match config.json "
                                 f"({str(e).splitlines()[0]})") from None
        return cls(net, cfg, meta)

    def save(self, folder, extra: dict | None = None) -> Path:
        from safetensors.torch import save

        from ..atomic import write_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        blob = save({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()})
        write_atomic(folder / "model.safetensors", lambda f: f.write(blob))
        self.meta = {"format": FORMAT, "config": asdict(self.cfg), **(extra or {})}
        text = json.dumps(self.meta, indent=1)
        write_atomic(folder / "config.json", lambda f: f.write(text.encode()))
        return folder

    # ----------------------------------------------------------- reading
    def _check(self, motion) -> np.ndarray:
        m = np.asarray(motion, np.float32)
        if m.ndim != 2 or m.shape[1] != MOTION_DIM:
            raise ShapeError(f"motion reader: expected rows of shape (T, {MOTION_DIM}), got {m.shape}")
        return m

    def _weights(self, win: np.ndarray) -> np.ndarray:
        """(N, D) windows -> (N, 52) weights in [0, 1]: the net's forward in
        the CPU MLP kernel (one live frame ~40 us, ~0.5 ms through torch)."""
        return np.clip(self._mlp(np.ascontiguousarray(win, np.float32)).numpy(), 0.0, 1.0)

    def read(self, motion) -> np.ndarray:
        """(T, 55) fitted rows -> (T, 55) read rows. Non-finite rows (no face)
        stay as they are and are left out of their neighbours' windows (the
        last finite row stands in, as the tokenizer does)."""
        from ..tokens.geometry import fill_invalid

        m = self._check(motion)
        out = m.copy()
        filled, ok = fill_invalid(m)
        if len(m) == 0 or not ok.any():
            return out
        w = self._weights(windows(filled, self.cfg.context))       # (T, 52)
        out[ok, :N_EXPR] = w[ok]
        return out

    def push(self, row) -> np.ndarray:
        """One fitted row (55,) -> its read row; the same rows as `read` on the
        whole sequence. A non-finite row (no face) is returned as it is and
        the last row stands in for it in later windows."""
        r = np.asarray(row, np.float32)
        if r.shape != (MOTION_DIM,):
            raise ShapeError(f"motion reader: expected one row of {MOTION_DIM} values, got shape {r.shape}")
        ok = bool(np.isfinite(r).all())
        fill = r if ok else (self._hist[-1] if self._hist else np.zeros(MOTION_DIM, np.float32))
        if not self._hist:
            self._hist.extend([fill] * self.cfg.context)
        self._hist.append(fill)
        if not ok:
            return r.copy()
        out = r.copy()
        out[:N_EXPR] = self._weights(np.concatenate(self._hist)[None])[0]
        return out

    def reset(self) -> None:
        """Forget the streaming history (a new face or sequence)."""
        self._hist = collections.deque(maxlen=self.cfg.context + 1)


@functools.lru_cache(maxsize=1)
def default_reader() -> MotionReader:
    """The shipped reader, loaded once per process (offline `read` only:
    live sessions make their own, since `push` keeps state)."""
    return MotionReader.load()


def resolve_reader(reader) -> MotionReader | None:
    """A `reader=` argument: "default" (the shipped one), None (no reader) or a MotionReader."""
    return default_reader() if isinstance(reader, str) and reader == "default" else reader


# --------------------------------------------------------------- training
def reader_pairs(corpus, retracked) -> tuple[list, list, list]:
    """(fitted rows, true rows, clip ids) of every retracked clip, its truth
    read from the source corpus by `retracked_from`."""
    from ..corpus.store import Corpus
    from ..tokens.geometry import motion_from_params

    src, rt = Corpus(corpus), Corpus(retracked)
    if rt.config.get("kind") != "retracked":
        raise FaceLangError(f"'{retracked}' is not a retracked corpus (make one with `pyfacelang corpus retrack`)")
    names, rnames = src.config.get("param_names"), rt.config.get("param_names")
    X, Y, ids = [], [], []
    for cid in rt.ids:
        clip = rt.read(cid)
        sid = clip["meta"].get("retracked_from")
        try:
            truth = src.read(sid)
        except (KeyError, FaceLangError):
            raise FaceLangError(f"retracked clip {cid} comes from clip {sid}, which '{corpus}' lacks "
                                "(give the corpus it was retracked from)") from None
        X.append(motion_from_params(clip["params"], rnames))
        Y.append(motion_from_params(truth["params"], names))
        if len(X[-1]) != len(Y[-1]):
            raise FaceLangError(f"retracked clip {cid} has {len(X[-1])} frames, its source {len(Y[-1])}")
        ids.append(cid)
    if len(ids) < 2:
        raise FaceLangError(f"'{retracked}' holds {len(ids)} clips; the reader needs at least 2")
    return X, Y, ids


def train_reader(corpus, retracked, out, cfg: ReaderConfig | None = None, preset: str | None = None,
                 log=print, progress: bool = False) -> dict:
    """Train a MotionReader on the retracked clips of `retracked` against
    their source clips in `corpus`; writes `out` and returns a summary with the
    held-out per-channel correlation (fit vs reader)."""
    cfg = cfg or ReaderConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    X, Y, ids = reader_pairs(corpus, retracked)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(ids))
    n_hold = max(1, int(round(cfg.holdout * len(ids))))
    hold, train = order[:n_hold], order[n_hold:]
    xa = torch.from_numpy(np.concatenate([windows(X[i], cfg.context) for i in train]))   # (N, D)
    ya = torch.from_numpy(np.concatenate([Y[i][:, :N_EXPR] for i in train]))              # (N, 52)
    torch.manual_seed(cfg.seed)
    net = ReaderNet(cfg)
    net.mu.copy_(xa.mean(0))
    net.sd.copy_(xa.std(0) + 1e-2)      # floor: channels the fit never moves stay finite
    opt = torch.optim.AdamW(net.net.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, unit="step", desc="reader", leave=False)
    t0 = time.perf_counter()
    net.train()
    for _ in range(cfg.steps):
        i = torch.randint(0, len(xa), (cfg.batch,), generator=gen)
        loss = ((net(xa[i], cfg.input_noise) - ya[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
    if bar is not None:
        bar.close()
    reader = MotionReader(net, cfg)
    fit_r, read_r = channel_correlation([X[i] for i in hold], [Y[i] for i in hold], reader)
    summary = {"preset": preset, "steps": cfg.steps, "train_clips": len(train), "heldout_clips": int(n_hold),
               "train_frames": len(xa), "seconds": round(time.perf_counter() - t0, 1),
               "heldout_r_fit": round(fit_r, 3), "heldout_r_reader": round(read_r, 3),
               "corpus": str(corpus), "retracked": str(retracked)}
    reader.save(out, {"train": summary})
    log(f"held-out clips ({n_hold}): mean correlation with the true weights, fit {fit_r:.3f} -> reader {read_r:.3f}")
    return summary


def channel_correlation(fitted: list, true: list, reader: MotionReader) -> tuple[float, float]:
    """Mean over the 52 weights (those that move in `true`) of the
    correlation with `true`: (fitted rows as they are, after the reader)."""
    f = np.concatenate(fitted)[:, :N_EXPR]
    r = np.concatenate([reader.read(x) for x in fitted])[:, :N_EXPR]
    t = np.concatenate(true)[:, :N_EXPR]

    def mean_r(a):
        cs = [np.corrcoef(a[:, k], t[:, k])[0, 1] for k in range(N_EXPR) if t[:, k].std() > 1e-6]
        return float(np.mean([0.0 if not np.isfinite(c) else c for c in cs]))
    return mean_r(f), mean_r(r)
