"""`corpus info`, `corpus stats` (balance, vocabulary use, plot)."""
from __future__ import annotations

import collections
import os

import numpy as np

from .store import Corpus
from .vocab import load_vocabulary


def corpus_info(c: Corpus) -> dict:
    frames = sum(e["arrays"]["params"][2][0] for s in c.shards for e in s.index)
    size = sum(os.path.getsize(s.path) for s in c.shards)
    fps = c.config.get("fps", 25.0)
    return {"clips": len(c), "shards": len(c.shards), "frames": int(frames), "hours": frames / fps / 3600.0,
            "bytes": int(size), "bytes_per_frame": size / max(1, frames), "kind": c.config.get("kind"),
            "model": c.config.get("model")}


def corpus_stats(c: Corpus) -> tuple[dict, dict]:
    """(figures, counts): `categories` = number of emotion + micro-action words
    in the vocabulary, `balance_ratio` = largest / smallest clip count among
    them, `words_used` = vocabulary words appearing in the clips' labels and captions."""
    vocab = load_vocabulary()
    counts = collections.Counter({w: 0 for w in vocab.emotions + vocab.actions})
    used = set()
    for _, meta in c.metas():
        lab = meta.get("labels") or {}
        if lab.get("emotion") in counts:
            counts[lab["emotion"]] += 1
        for a in lab.get("actions", []):
            if a["word"] in counts:
                counts[a["word"]] += 1
        used.update(lab.get("words", []))
    vals = np.array(list(counts.values()))
    figures = {"clips": len(c), "categories": len(counts), "words_used": len(used & set(vocab.all_words())),
               "vocabulary": len(vocab.all_words()),
               "balance_ratio": float(vals.max() / vals.min()) if vals.min() > 0 else float("inf"),
               "min_count": int(vals.min()), "max_count": int(vals.max())}
    return figures, dict(counts)


def plot_stats(c: Corpus, counts: dict, path: str, max_clips: int = 3000) -> None:
    """Bar chart of word counts and a 2-D PCA embedding of clips (mean ARKit
    weights per clip), coloured by emotion group; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..render.video import write_image

    vocab = load_vocabulary()
    feats, groups = [], []
    for cid in c.ids[:max_clips]:
        clip = c.read(cid)
        p = clip["params"]
        feats.append(np.concatenate([p[:, :52].mean(0), p[:, :52].max(0), p[:, 52:].std(0)]))
        groups.append((clip["meta"].get("labels") or {}).get("emotion_group", "?"))
    X = np.array(feats)
    X = X - X.mean(0)
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    Y = X @ Vt[:2].T
    fig, ax = plt.subplots(1, 2, figsize=(16, 6), dpi=90)
    words = sorted(counts, key=lambda w: (w not in vocab.emotions, w))
    ax[0].bar(range(len(words)), [counts[w] for w in words],
              color=["tab:blue" if w in vocab.emotions else "tab:orange" for w in words])
    ax[0].set_title(f"clips per emotion (blue) and micro-action (orange) word, {len(words)} words")
    ax[0].set_xticks([])
    ax[0].set_ylabel("clips")
    names = sorted(set(groups))
    cmap = plt.get_cmap("tab20", len(names))
    for k, g in enumerate(names):
        m = np.array(groups) == g
        ax[1].scatter(Y[m, 0], Y[m, 1], s=5, color=cmap(k), label=g)
    ax[1].set_title(f"PCA of clip features ({len(Y)} clips), by emotion group")
    ax[1].legend(fontsize=6, markerscale=2, ncol=2)
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3][..., ::-1].copy()
    plt.close(fig)
    write_image(path, img)
