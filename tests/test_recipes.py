"""The shipped weights record the recipe that made them (`trained_with` in
each model's config.json). Each must be the recipe of the preset it names,
so that `pyfacelang train ... --preset NAME` reproduces it. A preset edited
without retraining, or weights trained with an override (--steps, --codebook-size
...), fail here."""
import dataclasses
import json
from pathlib import Path

import pytest

import pyfacelang
from pyfacelang.training import NOT_RECIPE

PKG = Path(pyfacelang.__file__).parent



def _presets(kind: str) -> dict:
    if kind == "tokens":
        from pyfacelang.tokens.config import PRESETS
    elif kind == "m2l":
        from pyfacelang.m2l.config import PRESETS
    elif kind == "l2m":
        from pyfacelang.l2m.config import PRESETS
    else:
        from pyfacelang.l2m.evaluator import EVAL_PRESETS as PRESETS
    return PRESETS


def _as_dict(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)


def _differences(recorded: dict, preset: dict, where: str = "") -> list[str]:
    """Keys whose recorded value is not the preset's. A key the record lacks
    (a setting added after the weights were made) must be the preset's value
    of the default, i.e. the behaviour before the setting existed is what the
    preset asks for; that is checked by the caller against the dataclass."""
    out = []
    for k, v in recorded.items():
        if k in NOT_RECIPE:
            continue
        if k not in preset:
            out.append(f"{where}{k}: recorded, not in the preset")
        elif isinstance(v, dict) and isinstance(preset[k], dict):
            out += _differences(v, preset[k], f"{where}{k}.")
        elif (list(v) if isinstance(v, (list, tuple)) else v) != \
                (list(preset[k]) if isinstance(preset[k], (list, tuple)) else preset[k]):
            out.append(f"{where}{k}: recorded {v!r}, preset {preset[k]!r}")
    return out


SHIPPED = [
    ("tokens/data/geometric", "tokens", "default"),
    ("tokens/data/coefficient", "tokens", "baseline"),
    ("m2l/data/default", "m2l", "default"),
    ("l2m/data/default", "l2m", "default"),
    ("l2m/data/global", "l2m", "global"),
    ("l2m/data/evaluator", "l2m-eval", "default"),
]


@pytest.mark.parametrize("folder, kind, documented", SHIPPED)
def test_shipped_weights_match_their_preset(folder, kind, documented):
    cfg = json.loads((PKG / folder / "config.json").read_text())
    tw = cfg["trained_with"]
    presets = _presets(kind)
    assert tw["preset"] in presets, f"{folder} was trained with preset {tw['preset']!r}, which no longer exists"
    preset = _as_dict(presets[tw["preset"]])
    # the README documents `--preset <documented>`: it must be the same recipe
    assert _as_dict(presets[documented]) == preset, f"{folder}: preset {tw['preset']!r} is not {documented!r}"
    diffs = _differences(tw["train"], preset)
    assert not diffs, f"{folder} differs from preset {tw['preset']!r}: " + "; ".join(diffs)
    # settings added after these weights were made: the preset keeps the old behaviour (the default value)
    cls = type(presets[tw["preset"]])
    new = {f.name for f in dataclasses.fields(cls)} - set(tw["train"]) - NOT_RECIPE
    default = _as_dict(cls())
    for k in new:
        assert preset[k] == default[k], f"{folder}: preset sets {k}={preset[k]!r}, which the weights were made without"


def test_differences_finds_a_changed_setting():
    a = {"steps": 3000, "model": {"codebook_size": 2048}, "corpus_seconds": [2.0, 10.0], "threads": 1}
    b = {"steps": 3000, "model": {"codebook_size": 1024}, "corpus_seconds": (2.0, 10.0), "threads": 2}
    assert _differences(a, b) == ["model.codebook_size: recorded 2048, preset 1024"]
    assert _differences({"extra": 1}, {}) == ["extra: recorded, not in the preset"]


@pytest.mark.parametrize("folder", [folder for folder, kind, _ in SHIPPED if kind != "tokens"])
def test_shipped_readers_of_tokens_match_the_shipped_tokenizer(folder):
    """Every shipped model that reads or writes face tokens was trained on the
    shipped tokenizer's tokens (loading refuses a mismatch, so a tokenizer
    shipped without retraining them would break caption, animate and eval)."""
    from pyfacelang.tokens import FaceTokenizer
    recorded = json.loads((PKG / folder / "config.json").read_text())["tokenizer_sha256"]
    assert recorded == FaceTokenizer.load().sha256, f"{folder} was trained on another tokenizer"
