"""Run-length smoothed encoding (`tokens.smoothing.smooth_codes`,
`FaceTokenizer.encode(..., switch_cost=)`) and the text-to-motion models
trained on it."""
import dataclasses
import itertools
import json

import numpy as np
import pytest

from pyfacelang.errors import FaceLangError, ShapeError
from pyfacelang.l2m import TextToMotion
from pyfacelang.l2m.config import PRESETS, L2MTrainConfig
from pyfacelang.l2m.train import train_l2m
from pyfacelang.tokens.smoothing import smooth_codes


def objective(d: np.ndarray, codes, switch_cost: float) -> float:
    codes = np.asarray(codes)
    return float(d[np.arange(len(codes)), codes].sum() + switch_cost * np.count_nonzero(np.diff(codes)))


@pytest.mark.parametrize("T,K", [(1, 1), (1, 4), (2, 3), (5, 3), (6, 4), (7, 2)])
@pytest.mark.parametrize("switch_cost", [0.0, 0.1, 0.5, 2.0, 50.0])
def test_smooth_codes_finds_the_best_sequence(T, K, switch_cost):
    """Against every one of the K^T code sequences (objectives compared, not
    the sequences, so ties pass)."""
    rng = np.random.default_rng(T * 10 + K)
    for _ in range(5):
        d = rng.random((T, K))
        got = smooth_codes(d, switch_cost)
        assert got.shape == (T,) and got.dtype == np.int64 and ((got >= 0) & (got < K)).all()
        best = min(objective(d, s, switch_cost) for s in itertools.product(range(K), repeat=T))
        assert objective(d, got, switch_cost) == pytest.approx(best, abs=1e-12)


def test_smooth_codes_limits():
    rng = np.random.default_rng(0)
    d = rng.random((40, 16))
    np.testing.assert_array_equal(smooth_codes(d, 0.0), d.argmin(1))
    # a switch dearer than the whole clip: one code, the best one held throughout
    held = smooth_codes(d, 1e6)
    assert (held == held[0]).all() and held[0] == d.sum(0).argmin()
    # the number of changes never grows with the switch cost
    changes = [np.count_nonzero(np.diff(smooth_codes(d, c))) for c in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)]
    assert changes == sorted(changes, reverse=True) and changes[0] > changes[-1]
    assert smooth_codes(np.zeros((0, 5)), 1.0).shape == (0,)


@pytest.mark.parametrize("bad,cost,match", [
    (np.zeros(5), 1.0, "expected \\(T, K\\)"),
    (np.zeros((3, 0)), 1.0, "expected \\(T, K\\)"),
    (np.array([[0.0, np.nan]]), 1.0, "finite"),
    (np.zeros((3, 2)), -1.0, "switch_cost"),
    (np.zeros((3, 2)), float("inf"), "switch_cost"),
])
def test_smooth_codes_bad_input(bad, cost, match):
    with pytest.raises(ShapeError, match=match):
        smooth_codes(bad, cost)


def test_tokenizer_smoothed_encoding(shipped_tokenizer):
    """On corpus-like clips: a tiny switch cost gives the per-frame tokens;
    larger ones change code less often (never more), and fewer one-frame
    runs; the smoothed tokens are what smooth_codes picks from the encoder's
    latent distances. Invalid frames hold the last valid row either way."""
    from pyfacelang.m2l.data import synthetic_items
    tok = shipped_tokenizer
    items = synthetic_items(7, 4, tok, keep_motion=True)
    for it in items:
        plain = tok.encode(it.motion)
        np.testing.assert_array_equal(tok.encode(it.motion, switch_cost=1e-6), plain)
        changes = [np.count_nonzero(np.diff(tok.encode(it.motion, switch_cost=c))) for c in (0, 100, 1100, 10000)]
        assert changes == sorted(changes, reverse=True), changes
    m = items[0].motion.copy()
    plain_changes = sum(np.count_nonzero(np.diff(tok.encode(it.motion))) for it in items)
    smooth_changes = sum(np.count_nonzero(np.diff(tok.encode(it.motion, switch_cost=1100))) for it in items)
    assert smooth_changes < 0.6 * plain_changes, (smooth_changes, plain_changes)
    valid = np.ones(len(m), bool)
    valid[5:9] = False
    m[5:9] = np.nan
    t = tok.encode(m, valid=valid, switch_cost=1100)
    assert len(t) == len(m) and (t[5:9] == t[4]).all()


def test_switch_cost_recipe_is_checked():
    with pytest.raises(FaceLangError, match="switch_cost"):
        L2MTrainConfig(switch_cost=-1.0)
    with pytest.raises(FaceLangError, match="switch_cost"):
        L2MTrainConfig(switch_cost=float("nan"))
    assert PRESETS["smooth"] == dataclasses.replace(PRESETS["default"], switch_cost=1100.0)


def test_model_trained_on_smoothed_tokens_records_it(tmp_path, tiny_corpus, shipped_tokenizer, monkeypatch):
    """The switch cost travels with the model, and `eval l2m` scores Tok on
    the tokens that model was trained to predict."""
    from pyfacelang.l2m import evaluate
    from pyfacelang.m2l.data import corpus_items
    cfg = dataclasses.replace(PRESETS["tiny"], steps=2, checkpoint_every=2, switch_cost=1100.0)
    out = tmp_path / "l2m"
    train_l2m(tiny_corpus, out, cfg, tokenizer=shipped_tokenizer, log=lambda *a: None)
    m = TextToMotion.load(out, shipped_tokenizer.sha256)
    assert m.switch_cost == 1100.0 and json.loads((out / "config.json").read_text())["switch_cost"] == 1100.0
    items = corpus_items(tiny_corpus, "test", shipped_tokenizer, keep_motion=True)[:3]
    seen = []
    monkeypatch.setattr(TextToMotion, "token_accuracy",
                        lambda self, texts, seqs: seen.extend(seqs) or np.ones(len(seqs)))
    monkeypatch.setattr(evaluate, "sequence_scores", lambda *a, **k: {})
    monkeypatch.setattr(evaluate, "generation_ms", lambda *a, **k: 0.0)
    monkeypatch.setattr(evaluate, "frechet", lambda a, b: 0.0)

    monkeypatch.setattr(evaluate, "judge", lambda ev, motions, texts, groups: {
        "R@1": 0.0, "R@3": 0.0, "CorE": 0.0, "feat": np.zeros((len(motions), 4))})
    evaluate.eval_l2m({"prefix": m}, None, shipped_tokenizer, items)
    want = [shipped_tokenizer.encode(it.motion, switch_cost=1100.0) for it in items]
    assert len(seen) == len(items) and all((np.asarray(a) == b).all() for a, b in zip(seen, want))
    assert any((np.asarray(a) != it.tokens).any() for a, it in zip(seen, items))   # not the plain tokens
