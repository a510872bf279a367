"""Building a synthetic corpus: resumable and parallel by shard.

Shard k holds clips [k * shard_size, (k + 1) * shard_size); each is a pure
function of (seed, clip index), written atomically. Running the same command
again after a crash or kill removes leftover temporaries, keeps every
complete shard and builds only the missing ones, so the corpus ends with no
duplicate, missing or corrupt clip.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..face.arkit import ARKIT_52
from .store import CorpusError, Shard, write_shard
from .synth import SynthConfig, generate_clip, plan_corpus
from .vocab import load_vocabulary

PARAM_NAMES = list(ARKIT_52) + ["head_rx", "head_ry", "head_rz"]
_PLANS = {}


def clip_id(i: int) -> str:
    return f"s{i:07d}"


def _settings(cfg: SynthConfig, shard_size: int) -> dict:
    n_shards = -(-cfg.clips // shard_size)
    return {"format": 1, "kind": "synthetic", **asdict(cfg), "seconds": list(cfg.seconds), "shard_size": shard_size,
            "shards": n_shards, "vocab_sha256": load_vocabulary().sha256, "param_names": PARAM_NAMES,
            "model": "builtin"}


def _build_shard(args) -> int:
    folder, cfg, shard_size, k = args
    key = (cfg, shard_size)
    if key not in _PLANS:  # once per worker process
        _PLANS.clear()
        _PLANS[key] = plan_corpus(cfg)
    plans = _PLANS[key]
    vocab = load_vocabulary()
    clips = []
    for p in plans[k * shard_size:(k + 1) * shard_size]:
        params, identity, meta = generate_clip(p, cfg, vocab)
        clips.append((clip_id(p.index), {"params": params.astype(np.float16), "identity": identity.astype(np.float16)},
                      meta))
    return write_shard(Path(folder) / f"shard_{k:05d}.flc", clips)


def _complete(path: Path, expected: int) -> bool:
    try:
        return len(Shard(path).index) == expected
    except CorpusError:
        return False


def claim_folder(folder: Path, settings: dict) -> None:
    """Make `folder` a corpus of these settings: write corpus.json, or check
    that the one there matches (a rerun resumes; other settings are refused),
    and remove shards left half-written by a run that died."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path = folder / "corpus.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != settings:
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            raise CorpusError(f"'{folder}' holds a {settings.get('kind', '')} corpus built with different settings "
                              f"({', '.join(diff)}); use another folder (or rerun with its other settings)")
    else:
        tmp = cfg_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(settings, indent=1))
        os.replace(tmp, cfg_path)
    for stale in folder.glob(".shard_*.tmp"):  # a shard being written when the last run died
        stale.unlink()


def run_shard_jobs(fn, jobs: list, workers: int, progress: bool, start: str = "fork") -> list:
    """fn(job) for every job, on `workers` processes (0: all cores; started
    with `start`), with a progress bar per finished shard. -> results."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="shard", leave=False)
    out = []
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context(start).Pool(workers) as pool:
            for r in pool.imap_unordered(fn, jobs):
                out.append(r)
                if bar:
                    bar.update(1)
    else:
        for j in jobs:
            out.append(fn(j))
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    return out


def build_synthetic(folder, cfg: SynthConfig, *, workers: int = 0, shard_size: int = 1000, progress: bool = False,
                    log=print) -> dict:
    """Build (or finish building) a synthetic corpus in `folder`. Returns a summary."""
    folder = Path(folder)
    settings = _settings(cfg, shard_size)
    claim_folder(folder, settings)
    todo = []
    for k in range(settings["shards"]):
        n = min(shard_size, cfg.clips - k * shard_size)
        if not _complete(folder / f"shard_{k:05d}.flc", n):
            todo.append(k)
    done = settings["shards"] - len(todo)
    if done:
        log(f"resuming: {done} of {settings['shards']} shards already complete")
    jobs = [(str(folder), cfg, shard_size, k) for k in todo]
    nbytes = sum(run_shard_jobs(_build_shard, jobs, workers, progress, "fork"))
    return {"clips": cfg.clips, "shards": settings["shards"], "built_shards": len(jobs), "bytes_written": nbytes}
