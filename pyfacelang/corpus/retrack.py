"""Synthetic clips as the tracker reads them ("retracked" corpus).

A model trained only on the synthetic corpus reads the parameters the
recipes wrote. On a video it reads what the tracker made of a face instead,
and the tracker reads some shapes back poorly (MediaPipe's landmarks barely
move for the rig's nose-sneer or cheek shapes, so the fitter puts weight on
them when nothing moved, and misses some that did). `retrack_corpus`
closes that gap with labelled data: each clip of a synthetic corpus is
rendered on the built-in rig (its own identity, a camera turned a little at
random), run through the same landmarks -> fit path as `pyfacelang track`,
and stored with the clip's captions and labels. Models trained on a share of
these clips learn the tracker's reading of each emotion and action.

One shard per `shard_size` source clips, so a rerun skips shards already
written; clips where the tracker loses the face are left out and counted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceLangError
from .store import Corpus, CorpusError, Shard, write_shard


@dataclass(frozen=True)
class RetrackConfig:
    # Source clips to retrack (the first N clips of the source's train split):
    # about 22 ms a frame on one core (render 12, landmarks 9, fit 2), so
    # 800 clips of ~5 s take ~20 min on 2 cores.
    clips: int = 800
    # Rendered frame size: MediaPipe's face mesh runs at 192-256 px inside,
    # so larger frames cost render time and give nothing.
    size: int = 256
    # Camera yaw / pitch drawn uniformly in +-these degrees per clip: webcams
    # are rarely exactly frontal, and the fit's error depends on the view.
    yaw: float = 15.0
    pitch: float = 8.0
    # A clip is kept when the tracker found the face in at least this share of
    # its frames (frames without one hold the last fitted face).
    min_valid: float = 0.9
    seed: int = 0
    shard_size: int = 100
    # Which split of the source to retrack: "train" for training data, "test"
    # for a held-out set scored with `eval m2l --corpus` (clip ids, and so
    # their split, are kept).
    split: str = "train"
    # Head rotation as stored: "rest" is relative to the track's resting pose
    # (FaceFitter.rest_rotation), as `track` files are read for tokens, so
    # the random camera angle is not stored as a head turn.
    head: str = "rest"


def retrack_clip(rig, motion: np.ndarray, identity: np.ndarray, fps: float, rng: np.random.Generator,
                 cfg: RetrackConfig, detector) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """One clip: motion (T, 55) -> (fitted motion (T, 55) or None when the
    face was lost too often, valid (T,) bool, fitted identity (16,))."""
    from ..render.faces import model_mesh, render_params
    from ..render.raster import Camera
    from ..tokens.geometry import fill_invalid, head_relative, rig_params
    from ..track.fitter import FaceFitter, fit_sequence
    from .ingest import _rig_rows

    P = rig_params(rig, motion, identity)                                   # (T, 75)
    cam = Camera(yaw=float(rng.uniform(-cfg.yaw, cfg.yaw)), pitch=float(rng.uniform(-cfg.pitch, cfg.pitch)),
                 width=cfg.size, height=cfg.size).fit(model_mesh(rig, P[0])[0], margin=0.18)
    lmks = [detector.detect(render_params(rig, p, camera=cam, supersample=1)) for p in P]
    fitter = FaceFitter(rig)
    results = fit_sequence(lmks, fps, fitter=fitter)
    valid = np.array([r.valid for r in results], bool)
    if valid.mean() < cfg.min_valid:
        return None, valid, np.zeros(16, np.float32)
    fitted = np.stack([r.params for r in results])
    rows, _ = fill_invalid(head_relative(_rig_rows(fitted), fitter.rest_rotation), valid)
    return rows, valid, fitted[valid][:, :16].mean(0).astype(np.float32)


def _retrack_shard(args) -> tuple[int, int]:
    import torch

    from ..face import load_model
    from ..tokens.geometry import motion_from_params
    from ..track.landmarks import LandmarkDetector

    src, out, ids, k, cfg = args
    torch.set_num_threads(1)
    corpus = Corpus(src)
    names = corpus.config["param_names"]
    rig = load_model("builtin")
    clips, lost = [], 0
    with LandmarkDetector() as det:
        for i, cid in enumerate(ids):
            rec = corpus.read(cid)
            rng = np.random.default_rng([cfg.seed, k, i])
            fps = float(rec["meta"].get("fps", 25.0))
            rows, valid, ident = retrack_clip(rig, motion_from_params(rec["params"], names), rec["identity"], fps,
                                              rng, cfg, det)
            if rows is None:
                lost += 1
                continue
            meta = {**rec["meta"], "source": "retracked", "retracked_from": cid,
                    "valid_fraction": round(float(valid.mean()), 3)}
            clips.append((cid, {"params": rows.astype(np.float16), "identity": ident.astype(np.float16),
                                "valid": valid}, meta))
    if clips:
        write_shard(Path(out) / f"shard_{k:05d}.flc", clips)
    return len(clips), lost


def retrack_corpus(src, out, cfg: RetrackConfig = RetrackConfig(), *, workers: int = 0, progress: bool = False,
                   log=print) -> dict:
    """Retrack the first `cfg.clips` clips of split `cfg.split` of synthetic corpus `src` into `out`."""
    from .build import PARAM_NAMES, claim_folder, run_shard_jobs
    from .dataset import split_of

    src, out = Path(src), Path(out)
    corpus = Corpus(src)
    if corpus.config.get("kind") != "synthetic":
        raise FaceLangError(f"'{src}' is a '{corpus.config.get('kind')}' corpus; retracking needs a synthetic one "
                            "(its clips carry the motion to render)")
    if cfg.split not in ("train", "test"):
        raise FaceLangError(f"retrack split must be 'train' or 'test', got '{cfg.split}'")
    ids = [i for i in corpus.ids if split_of(i) == cfg.split][: cfg.clips]
    if len(ids) < cfg.clips:
        log(f"'{src}' has {len(ids)} {cfg.split} clips; retracking all of them")
    settings = {"format": 1, "kind": "retracked", "source": str(src.resolve()),
                "source_settings": {k: corpus.config.get(k) for k in ("clips", "seed", "seconds", "vocab_sha256")},
                "retrack": asdict(cfg), "param_names": PARAM_NAMES, "model": "builtin",
                "fps": corpus.config.get("fps", 25.0)}
    claim_folder(out, settings)
    chunks = [ids[a: a + cfg.shard_size] for a in range(0, len(ids), cfg.shard_size)]
    jobs = []
    for k, chunk in enumerate(chunks):
        path = out / f"shard_{k:05d}.flc"
        try:
            if path.exists() and len(Shard(path).index) > 0:
                continue
        except CorpusError:
            path.unlink()
        jobs.append((str(src), str(out), chunk, k, cfg))
    if len(jobs) < len(chunks):
        log(f"resuming: {len(chunks) - len(jobs)} of {len(chunks)} shards already written")
    # spawn, not fork: MediaPipe's threads do not survive a fork
    done = run_shard_jobs(_retrack_shard, jobs, workers, progress, "spawn")
    kept, lost = sum(n for n, _ in done), sum(m for _, m in done)
    total = len(Corpus(out).ids)
    return {"out": str(out), "clips": total, "retracked_now": kept, "face_lost": lost}
