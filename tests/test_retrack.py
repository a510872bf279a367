"""Retracked corpora: synthetic clips rendered on the rig and read back by
the tracker, and captioners trained on a share of them."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pyfacelang.cli import main
from pyfacelang.corpus.retrack import RetrackConfig, retrack_corpus
from pyfacelang.corpus.store import Corpus, CorpusError
from pyfacelang.errors import FaceLangError
from pyfacelang.m2l.config import PRESETS
from pyfacelang.m2l.data import ExampleSampler, Item
from pyfacelang.tokens.geometry import motion_from_params

quiet = dict(log=lambda *a: None)


@pytest.fixture(scope="module")
def retracked(tmp_path_factory, tiny_corpus):
    out = tmp_path_factory.mktemp("retracked")
    summary = retrack_corpus(tiny_corpus, out, RetrackConfig(clips=3, shard_size=2), workers=1, **quiet)
    return out, summary


def test_retracked_clips_keep_labels_and_follow_the_motion(retracked, tiny_corpus):
    out, summary = retracked
    assert summary["clips"] == 3 and summary["face_lost"] == 0
    src, rt = Corpus(tiny_corpus), Corpus(out)
    assert rt.config["kind"] == "retracked" and len(rt.shards) == 2
    names = src.config["param_names"]
    for cid in rt.ids:
        a, b = src.read(cid), rt.read(cid)
        assert b["meta"]["caption"] == a["meta"]["caption"] and b["meta"]["labels"] == a["meta"]["labels"]
        assert b["meta"]["source"] == "retracked" and b["meta"]["retracked_from"] == cid
        truth = motion_from_params(a["params"], names)
        got = motion_from_params(b["params"], rt.config["param_names"])
        assert got.shape == truth.shape and np.isfinite(got).all()
        assert b["valid"].mean() >= 0.9
        # the tracker reads the head pose back (camera turned a little: an offset, not a change of shape)
        for axis in (52, 53):
            if np.ptp(truth[:, axis]) > np.radians(4):
                assert np.corrcoef(truth[:, axis], got[:, axis])[0, 1] > 0.8, (cid, axis)
        # and the jaw, the shape MediaPipe reads best
        if np.ptp(truth[:, 17]) > 0.3:
            assert np.corrcoef(truth[:, 17], got[:, 17])[0, 1] > 0.7, cid


def test_retrack_resumes_and_refuses_other_settings(retracked, tiny_corpus):
    out, _ = retracked
    again = retrack_corpus(tiny_corpus, out, RetrackConfig(clips=3, shard_size=2), workers=1, **quiet)
    assert again["retracked_now"] == 0 and again["clips"] == 3
    with pytest.raises(CorpusError, match="other settings"):
        retrack_corpus(tiny_corpus, out, RetrackConfig(clips=4, shard_size=2), workers=1, **quiet)
    with pytest.raises(FaceLangError, match="synthetic"):
        retrack_corpus(out, out.parent / "again", RetrackConfig(clips=1), workers=1, **quiet)
    with pytest.raises(FaceLangError, match="split"):
        retrack_corpus(tiny_corpus, out.parent / "bad", RetrackConfig(clips=1, split="val"), workers=1, **quiet)


def test_sampler_draws_the_retracked_share():
    def items(tag, n):
        labels = {"emotion": "joyful", "emotion_group": "joy", "intensity": 3, "actions": [], "head": None}
        return [Item(np.full(10, k), f"{tag} {k}", [], labels, 25.0) for k in range(n)]

    syn, rt = items("syn", 50), items("rt", 20)
    for share in (0.0, 0.3, 0.7):
        cfg = dataclasses.replace(PRESETS["tiny"], retracked_share=share, task_mix=(("describe", 1.0),),
                                  paraphrase=0.0)
        s = ExampleSampler(syn, cfg, None, 0, rt)
        answers = [a for _, _, a in s.batch(4000)]
        got = np.mean([a.startswith("rt") for a in answers])
        assert abs(got - share) < 0.03, (share, got)


def test_train_m2l_with_retracked_clips(tmp_path, tiny_corpus, retracked, shipped_tokenizer, capsys):
    out, _ = retracked
    assert main(["corpus", "retrack", str(tiny_corpus), "--clips", "1", "--workers", "1", "-o",
                 str(tmp_path / "rt1")]) == 0
    assert len(Corpus(tmp_path / "rt1").ids) == 1
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "--retracked", str(out), "-o", str(tmp_path / "m"),
                 "--preset", "tiny", "--steps", "4", "-q"]) == 0     # tiny: share 0, the folder is only checked
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "--retracked", str(tmp_path / "nope"), "-o",
                 str(tmp_path / "m2"), "--preset", "tiny", "--steps", "4", "-q"]) == 1
    assert "not a folder" in capsys.readouterr().err
    from pyfacelang.m2l.train import train_m2l
    cfg = dataclasses.replace(PRESETS["tiny"], steps=4, retracked_share=0.5)
    s = train_m2l(tiny_corpus, tmp_path / "m3", cfg, tokenizer=shipped_tokenizer, retracked=out, **quiet)
    meta = json.loads((tmp_path / "m3" / "config.json").read_text())
    assert s["steps"] == 4 and meta["trained_with"]["retracked_clips"] == 3
