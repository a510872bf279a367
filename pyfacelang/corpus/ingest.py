"""Real data in the corpus format.

- `ingest_videos`: track each video (the tracker's offline path), cut it into
  clips (captioned spans from captions.jsonl, or fixed-length pieces), store
  the rig parameters with the captions. One shard per video, so a rerun skips
  videos already ingested; unreadable videos are skipped and reported.
- `import_flame`: (text, per-frame FLAME parameters) pairs, the form of public
  FLAME-fitted datasets, retargeted to the built-in rig (ARKit-52 + head
  rotation) and kept as FLAME parameters too.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import FaceLangError
from .build import PARAM_NAMES
from .store import Shard, write_shard

VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def _prepare(folder: Path, kind: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "corpus.json"
    settings = {"format": 1, "kind": kind, "param_names": PARAM_NAMES, "model": "builtin"}
    if cfg.exists():
        old = json.loads(cfg.read_text())
        if old.get("kind") != kind:
            raise FaceLangError(f"'{folder}' holds a '{old.get('kind')}' corpus, not '{kind}'")
    else:
        cfg.write_text(json.dumps(settings, indent=1))
    for stale in folder.glob(".shard_*.tmp"):
        stale.unlink()


def _shard_name(source: str) -> str:
    return "shard_" + hashlib.sha1(source.encode()).hexdigest()[:12] + ".flc"


def _rig_rows(params: np.ndarray) -> np.ndarray:
    """(T, 75) rig params -> (T, 55): ARKit weights + head rotation."""
    return np.concatenate([params[:, 16:68], params[:, 68:71]], 1)


def read_captions(path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise FaceLangError(f"cannot read captions file {path}: {e.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key = Path(rec["video"]).name
            str(rec["caption"])
        except (ValueError, KeyError, TypeError):
            raise FaceLangError(f"{path}:{n}: expected a JSON object with 'video' and 'caption'") from None
        out.setdefault(key, []).append(rec)
    return out


def ingest_videos(videos, captions_path, folder, *, clip_seconds: float = 5.0, log=print) -> dict:
    from ..tokens.geometry import head_relative
    from ..track.pipeline import track

    folder = Path(folder)
    caps = read_captions(captions_path)
    files = []
    for v in videos:
        p = Path(v)
        files += sorted(x for x in p.iterdir() if x.suffix.lower() in VIDEO_EXTS) if p.is_dir() else [p]
    _prepare(folder, "ingested")
    skipped, n_clips, n_videos = [], 0, 0
    for f in files:
        shard = folder / _shard_name(str(f.resolve()))
        if shard.exists():
            try:
                n_clips += len(Shard(shard).index)
                n_videos += 1
                continue
            except FaceLangError:
                shard.unlink()
        try:
            tr = track(str(f))
        except FaceLangError as e:
            skipped.append((str(f), str(e)))
            continue
        rows = head_relative(_rig_rows(tr.params), tr.rest_rotation)
        T = len(rows)
        recs = caps.get(f.name) or [{"caption": "", "start": s, "end": s + clip_seconds}
                                    for s in np.arange(0, T / tr.fps, clip_seconds)]
        clips = []
        for k, rec in enumerate(recs):
            a = int(round(float(rec.get("start", 0.0)) * tr.fps))
            b = int(round(float(rec.get("end", T / tr.fps)) * tr.fps))
            a, b = max(0, a), min(T, b)
            if b - a < 2:
                continue
            seg = rows[a:b]
            valid = tr.valid[a:b]
            meta = {"caption": rec.get("caption", ""), "paraphrases": rec.get("paraphrases", []),
                    "labels": rec.get("labels", {}), "fps": tr.fps, "source": str(f), "start_frame": a,
                    "valid_fraction": float(valid.mean())}
            ident = tr.params[valid][:, :16].mean(0) if valid.any() else np.zeros(16)
            clips.append((f"v{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]}-{k:04d}",
                          {"params": np.nan_to_num(seg).astype(np.float16), "valid": valid,
                           "identity": ident.astype(np.float16)}, meta))
        if clips:
            write_shard(shard, clips)
            n_clips += len(clips)
            n_videos += 1
            log(f"  {f.name}: {len(clips)} clips")
    return {"clips": n_clips, "videos": n_videos, "skipped": skipped}


def import_flame(files, flame, folder, *, log=print) -> dict:
    from ..track.retarget import retarget_flame_to_rig

    folder = Path(folder)
    _prepare(folder, "flame-import")
    skipped, n = [], 0
    for f in map(Path, files):
        shard = folder / _shard_name(str(f.resolve()))
        if shard.exists():
            n += len(Shard(shard).index)
            continue
        try:
            with np.load(f, allow_pickle=False) as d:
                text, P = str(d["text"]), np.asarray(d["params"], np.float32)
                fps = float(d["fps"]) if "fps" in d.files else 25.0
            rig, err = retarget_flame_to_rig(flame, P, fps)
        except (OSError, KeyError, ValueError, FaceLangError) as e:
            skipped.append((str(f), str(e).splitlines()[0] if str(e) else type(e).__name__))
            continue
        meta = {"caption": text, "paraphrases": [], "labels": {}, "fps": fps, "source": str(f),
                "retarget_error_mm": float(np.mean(err))}
        write_shard(shard, [(f"f{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:10]}",
                             {"params": _rig_rows(rig).astype(np.float16), "identity": rig[0, :16].astype(np.float16),
                              "flame": P}, meta)])
        n += 1
        log(f"  {f.name}: {len(P)} frames, retarget error {np.mean(err):.2f} mm")
    return {"clips": n, "skipped": skipped}


__all__ = ["ingest_videos", "import_flame", "read_captions"]
