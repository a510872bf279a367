"""Pieces every trainer shares: the learning-rate schedule and resumable,
atomic checkpoints (read back with `torch.load(weights_only=True)`)."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .atomic import publish, remove_quietly, temp_path
from .errors import FaceLangError


def lr_at(step: int, cfg) -> float:
    """Linear warm-up over cfg.warmup steps, then cosine decay to cfg.lr * cfg.lr_floor at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    u = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, u))))


def save_checkpoint(path: Path, state: dict, recipe: dict) -> None:
    """Write `state` plus the recipe (JSON) atomically: an interrupted write
    leaves the previous checkpoint intact."""
    tmp = temp_path(str(path))
    try:
        torch.save({**state, "config": json.dumps(recipe, sort_keys=True), "torch_rng": torch.get_rng_state()}, tmp)
        publish(tmp, str(path))
    except BaseException:
        remove_quietly(tmp)
        raise


# Settings that change the speed of a run, not what it learns: a checkpoint
# resumes on more or fewer cores, and shipped weights match their preset
# whatever thread count made them (tests/test_recipes.py).
NOT_RECIPE = frozenset({"threads"})


def _settings(recipe: dict) -> dict:
    """The recipe as a checkpoint compares it: JSON-normalised, without the
    NOT_RECIPE keys (top level or under "train")."""
    out = json.loads(json.dumps(recipe, sort_keys=True))
    for d in (out, out.get("train")):
        if isinstance(d, dict):
            for k in NOT_RECIPE:
                d.pop(k, None)
    return out


def load_checkpoint(path: Path, recipe: dict) -> dict | None:
    """The checkpoint's state (torch RNG restored), None when there is none;
    refuses one written with another recipe (another thread count is the
    same recipe)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint
        raise FaceLangError(f"{path}: unreadable checkpoint ({e}); delete it to start over") from None
    if _settings(json.loads(state["config"])) != _settings(recipe):
        raise FaceLangError(f"{path} was written with different training settings; use another -o folder "
                            "or delete the checkpoint")
    torch.set_rng_state(state["torch_rng"])
    return state


class TrainProgress:
    """A progress bar (when asked) and `train_log.jsonl` records: one every
    `every` steps and at the last, with the loss, `extra()` and seconds."""

    def __init__(self, out: Path, steps: int, start: int, progress: bool, log=print, every: int = 50):
        self.path, self.steps, self.log, self.every = Path(out) / "train_log.jsonl", steps, log, every
        self.t0 = time.time()
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=steps, initial=start, unit="step", leave=False)

    def update(self, step: int, loss: float, extra=None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3g}")
        if step % self.every == 0 or step == self.steps:
            rec = {"step": step, "loss": round(loss, 5), **(extra() if extra else {}),
                   "seconds": round(time.time() - self.t0, 1)}
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            if self.bar is None and step % 500 == 0:
                self.log(json.dumps(rec))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def config_from_dict(cls, d: dict, what: str):
    """A config dataclass from its saved dict; unknown keys are an error (a
    file from a newer or different model)."""
    from dataclasses import fields
    if not isinstance(d, dict):
        raise FaceLangError(f"{what} config must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise FaceLangError(f"unknown {what} config keys: {', '.join(unknown)}")
    return cls(**d)


def begin(out, cfg, tokenizer):
    """The common start of the trainers that read face tokens: the output
    folder, torch threads and seed, and the FaceTokenizer (an instance, a
    folder, or None for the shipped one). -> (out Path, tokenizer)."""
    from .tokens.tokenizer import FaceTokenizer
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return out, (tokenizer if isinstance(tokenizer, FaceTokenizer) else FaceTokenizer.load(tokenizer))


def adamw(params, cfg) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, norms, gains)."""
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))


def run_steps(out: Path, cfg, recipe: dict, net: torch.nn.Module, opt, params, sampler, step_loss, *,
              progress: bool = False, log=print, on_step=None) -> TrainProgress:
    """The resumable loop the language-model trainers share: resume from
    `out/checkpoint.pt` when it holds this recipe, then `cfg.steps` of
    lr schedule -> `step_loss()` -> clipped AdamW step, a checkpoint (net,
    optimiser, sampler state) every `cfg.checkpoint_every` steps. `sampler`
    has `state()` / `set_state()` (JSON-able). Leaves `net` in train mode and
    returns the closed progress (its `t0` times the run); the caller saves the
    model, then removes the checkpoint."""
    ckpt = Path(out) / "checkpoint.pt"
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
        loss = step_loss()
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
    return prog
