"""`eval tokenizer`: reconstruction and codebook figures on held-out clips.

Per tokenizer: `vertex_l2_mm` (mean distance between the rig's identity-free,
posed vertices of the input and of the decoded motion), `param_l2` (mean L2
norm of the 55-value motion error per frame), `codebook_usage` (fraction of
codes used at least once) and `perplexity` (exp of the token entropy).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .geometry import MotionGeometry, fill_invalid, motion_from_params
from .tokenizer import FaceTokenizer


def synthetic_test_clips(seed: int, clips: int, labels: bool = False):
    """A fresh synthetic test set (not on disk): `clips` clips from `seed`;
    with `labels`, -> (clips, their label dicts)."""
    from ..corpus.synth import SynthConfig, generate_clip, plan_corpus
    from ..corpus.vocab import load_vocabulary
    cfg = SynthConfig(clips=clips, seed=seed)
    vocab = load_vocabulary()
    made = [generate_clip(p, cfg, vocab) for p in plan_corpus(cfg, vocab)]
    motions = [m.astype(np.float32) for m, _, _ in made]
    return (motions, [meta["labels"] for _, _, meta in made]) if labels else motions


@torch.no_grad()
def tokenizer_metrics(tok: FaceTokenizer, clips: list[np.ndarray], geometry: MotionGeometry) -> dict:
    counts = np.zeros(tok.codebook_size, np.int64)
    v_err, p_err, frames = 0.0, 0.0, 0
    for m in clips:
        tokens = tok.encode(m)
        rec = tok.decode(tokens)
        counts += np.bincount(tokens, minlength=tok.codebook_size)
        a, b = torch.from_numpy(m), torch.from_numpy(rec)
        v_err += float((geometry.posed(a) - geometry.posed(b)).norm(dim=-1).mean(-1).sum())
        p_err += float((a - b).norm(dim=-1).sum())
        frames += len(m)
    p = counts[counts > 0] / counts.sum()
    return {"vertex_l2_mm": v_err / frames, "param_l2": p_err / frames,
            "codebook_usage": float((counts > 0).mean()), "perplexity": float(np.exp(-(p * np.log(p)).sum())),
            "codebook_size": tok.codebook_size, "frames": frames, "clips": len(clips)}


def real_clip_motion(media: Path, log=print) -> dict[str, np.ndarray]:
    """Track each video in `media` with the built-in rig; motion rows per clip
    (frames without a face hold the last valid row)."""
    from ..track.pipeline import track
    out = {}
    for clip in sorted(Path(media).glob("*.mp4")):
        tr = track(str(clip))
        m, _ = fill_invalid(motion_from_params(tr.params, tr.param_names), tr.valid)
        out[clip.stem] = m
        log(f"  tracked {clip.name}: {len(m)} frames")
    return out


def eval_tokenizer(tok: FaceTokenizer, baseline: FaceTokenizer | None, clips: list[np.ndarray],
                   real: dict[str, np.ndarray] | None = None, log=print) -> dict:
    geometry = tok.model.geometry
    fig = tokenizer_metrics(tok, clips, geometry)
    log(f"  geometric   vertex_l2_mm {fig['vertex_l2_mm']:.3f}  param_l2 {fig['param_l2']:.4f}  "
        f"usage {fig['codebook_usage']:.1%}  perplexity {fig['perplexity']:.0f}")
    if baseline is not None:
        fig["coefficient_baseline"] = tokenizer_metrics(baseline, clips, geometry)
        b = fig["coefficient_baseline"]
        log(f"  coefficient vertex_l2_mm {b['vertex_l2_mm']:.3f}  param_l2 {b['param_l2']:.4f}  "
            f"usage {b['codebook_usage']:.1%}  perplexity {b['perplexity']:.0f}")
    if real:
        seqs = list(real.values())
        r = tokenizer_metrics(tok, seqs, geometry)
        r["per_clip"] = {name: tokenizer_metrics(tok, [m], geometry)["vertex_l2_mm"] for name, m in real.items()}
        if baseline is not None:
            r["coefficient_baseline"] = tokenizer_metrics(baseline, seqs, geometry)
        fig["real_clips"] = r
        log(f"  real clips  vertex_l2_mm {r['vertex_l2_mm']:.3f}  param_l2 {r['param_l2']:.4f}  "
            f"usage {r['codebook_usage']:.1%}")
    return fig
