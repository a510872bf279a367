"""`eval l2m`: text-to-motion models scored side by side on test clips with
ground-truth motion, by a judge trained apart from them (`evaluator.py`).

Per model: `L2` (mean per-frame L2 distance between generated and true
motion rows: 52 ARKit weights + head rotation in rad), `FD` (Frechet distance
between evaluator features of generated and true motion), `R@1`/`R@3`
(retrieval of the clip's own prompt among 32 with the evaluator's joint
space), `CorE` (the evaluator's emotion classifier on the generated motion
vs the clip's label), `Tok` (teacher-forced next-token accuracy, on the
tokens the model was trained to predict), `Tok_copy` (the accuracy of
always predicting the previous token on those same tokens: the floor a
model that only copies reaches) and `ms_10s` (median time to generate 10 s
of tokens on this CPU).

Two-part prompts ("<caption A>, then <caption B>" of two test clips with
different emotion groups that `animate` cuts into those two captions, 8 s):
`Seq2` is the share where the evaluator's
classifier names A's emotion on the first half and B's on the second, as
`animate` generates them (part by part, `compose`); `Seq2_whole` conditions
every frame on the whole prompt.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from .bench import generation_ms
from .config import SampleConfig

R_POOL = 32
SEQ_FRAMES = 200   # two-part prompts: 8 s at 25 fps, 4 s a part


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets (N, D), (M, D)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(s1 s2) = tr sqrt(r s2 r) with r = sqrt(s1): a symmetric PSD
    # matrix, so its eigenvalues are real (no complex sqrtm)
    w, V = np.linalg.eigh(s1)
    r = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def r_precision(motion_feat: np.ndarray, text_feat: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Share of motions whose own prompt ranks first / in the top 3 among
    itself and 31 other test prompts (cosine similarity)."""
    rng = np.random.default_rng(seed)
    m = motion_feat / np.linalg.norm(motion_feat, axis=1, keepdims=True)
    t = text_feat / np.linalg.norm(text_feat, axis=1, keepdims=True)
    N = len(m)
    top1 = top3 = 0
    for i in range(N):
        others = rng.choice(np.delete(np.arange(N), i), min(R_POOL - 1, N - 1), replace=False)
        sims = t[np.concatenate([[i], others])] @ m[i]
        rank = int((sims > sims[0]).sum())
        top1 += rank < 1
        top3 += rank < 3
    return top1 / N, top3 / N


def judge(evaluator, motions, texts, groups_true) -> dict:
    feats = evaluator.motion_features(motions)
    r1, r3 = r_precision(feats, evaluator.text_features(texts))
    pred = evaluator.classify(motions)
    return {"feat": feats, "R@1": r1, "R@3": r3, "CorE": float(np.mean([p == g for p, g in zip(pred, groups_true)]))}


def sequence_pairs(items, vocab, n: int, seed: int = 0) -> list[tuple[str, list[str], str, str]]:
    """Up to `n` (prompt "<caption A>, then <caption B>", its parts, group A,
    group B) of test clips with different emotion groups, kept only where
    `split_segments` cuts the prompt into exactly those two captions (so the
    score is of what `animate` does with it)."""
    from .animate import split_segments
    pool = [(it.caption.strip().rstrip("."), vocab.emotion_group(it.labels["emotion"])) for it in items]
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(20 * n):
        if len(pairs) == n or len(pool) < 2:
            break
        a, b = rng.choice(len(pool), 2, replace=False)
        (ca, ga), (cb, gb) = pool[a], pool[b]
        prompt = f"{ca}, then {cb[:1].lower()}{cb[1:]}"
        parts = split_segments(prompt)
        if ga != gb and [p.rstrip(".").lower() for p in parts] == [ca.lower(), cb.lower()]:
            pairs.append((prompt, parts, ga, gb))
    return pairs


def sequence_scores(model, evaluator, tokenizer, pairs, sample: SampleConfig) -> dict:
    """`Seq2` (in parts, as animate does) and `Seq2_whole` over two-part prompts."""
    from .animate import compose
    if not pairs:
        return {}
    hits = {"Seq2": [], "Seq2_whole": []}
    for i, (prompt, parts, ga, gb) in enumerate(pairs):
        s = dataclasses.replace(sample, seed=sample.seed + 2 * i)     # compose uses seed and seed + 1
        whole = model.generate([prompt], frames=SEQ_FRAMES, sample=s)[0]
        composed, _ = compose(model, parts, SEQ_FRAMES, s)
        for name, toks in (("Seq2_whole", whole), ("Seq2", composed)):
            m = tokenizer.decode(toks)
            first, second = evaluator.classify([m[: SEQ_FRAMES // 2], m[SEQ_FRAMES // 2:]])
            hits[name].append(first == ga and second == gb)
    return {k: float(np.mean(v)) for k, v in hits.items()}


def eval_l2m(models: dict, evaluator, tokenizer, items, sample: SampleConfig = SampleConfig(), log=print,
             sequences: int = 0) -> dict:
    """models: name -> TextToMotion; items: test items with `motion`. -> figures per model (and 'real').
    sequences: how many two-part prompts to score (`Seq2`; 0: none)."""
    from ..corpus.vocab import load_vocabulary
    from .evaluator import decoded_motion
    vocab = load_vocabulary()
    texts = [it.caption for it in items]
    truth = [it.motion for it in items]
    groups = [vocab.emotion_group(it.labels["emotion"]) for it in items]
    real = judge(evaluator, truth, texts, groups)
    pairs = sequence_pairs(items, vocab, sequences)
    recon = decoded_motion(tokenizer, items)
    rec = judge(evaluator, recon, texts, groups)
    figures = {"real": {"R@1": real["R@1"], "R@3": real["R@3"], "CorE": real["CorE"]},
               "reconstructed": {"R@1": rec["R@1"], "R@3": rec["R@3"], "CorE": rec["CorE"],
                                 "FD": frechet(rec["feat"], real["feat"]),
                                 "L2": float(np.mean([np.linalg.norm(a - b, axis=1).mean()
                                                      for a, b in zip(recon, truth)]))}}
    for name, model in models.items():
        model.check_tokenizer(tokenizer.sha256)
        t0 = time.perf_counter()
        gen = []
        for i, it in enumerate(items):
            s = dataclasses.replace(sample, seed=sample.seed + i)
            toks = model.generate([it.caption], frames=len(it.tokens), sample=s)[0]
            gen.append(tokenizer.decode(toks))
        gen_s = time.perf_counter() - t0
        j = judge(evaluator, gen, texts, groups)
        # Tok on the tokens the model was trained to predict (run-length
        # smoothed ones for a model trained on them)
        seqs = [it.tokens if not model.switch_cost else tokenizer.encode(it.motion, switch_cost=model.switch_cost)
                for it in items]
        tok_acc = []
        for i in range(0, len(items), 32):
            tok_acc.extend(model.token_accuracy([it.caption for it in items[i: i + 32]], seqs[i: i + 32]))
        figures[name] = {
            "L2": float(np.mean([np.linalg.norm(g - t, axis=1).mean() for g, t in zip(gen, truth)])),
            "FD": frechet(j["feat"], real["feat"]), "R@1": j["R@1"], "R@3": j["R@3"], "CorE": j["CorE"],
            "Tok": float(np.mean(tok_acc)), "Tok_copy": copy_accuracy(seqs, model.net.cfg.max_frames),
            "ms_10s": generation_ms(model, sample=sample),
            "ms_10s_unguided": generation_ms(model, sample=dataclasses.replace(sample, cfg_scale=1.0)),
            **sequence_scores(model, evaluator, tokenizer, pairs, sample),
        }
        log(f"  {name}: generated {len(items)} clips in {gen_s:.1f} s")
    return figures


def copy_accuracy(seqs, window: int) -> float:
    """Mean per clip of the share of its first `window` tokens that repeat the
    token before them (the first token counts as missed, as in Tok)."""
    acc = [np.count_nonzero(np.diff(np.asarray(s)[:window]) == 0) / min(len(s), window) for s in seqs if len(s)]
    return float(np.mean(acc))


def format_table(figures: dict) -> str:
    cols = ["L2", "FD", "R@1", "R@3", "CorE", "Tok", "Tok_copy", "Seq2", "Seq2_whole", "ms_10s", "ms_10s_unguided"]
    lines = [f"{'':14s}" + "".join(f"{c:>16s}" for c in cols)]
    for name, f in figures.items():
        lines.append(f"{name:14s}" + "".join(f"{f[c]:16.3f}" if c in f else f"{'-':>16s}" for c in cols))
    return "\n".join(lines)


