"""The corpus vocabulary (`vocab.json`, a data file): emotion words mapped to
FACS-based recipe groups (the groups double as the synonym groups behind
CorE), micro-actions and head motions with their recipes and timing,
intensity words (levels 1-5) and tempo/sequence words."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import FaceLangError
from ..face.arkit import ARKIT_52

ARKIT_INDEX = {n: i for i, n in enumerate(ARKIT_52)}
# Head rotation axes, in the order of the motion's last three columns.
HEAD_AXES = ("pitch", "yaw", "roll")


@dataclass(frozen=True)
class Vocabulary:
    data: dict
    sha256: str

    @property
    def emotions(self) -> list[str]:
        return list(self.data["emotions"])

    @property
    def actions(self) -> list[str]:
        return list(self.data["actions"])

    @property
    def head_motions(self) -> list[str]:
        return list(self.data["head_motions"])

    @property
    def intensities(self) -> dict[str, int]:
        return dict(self.data["intensities"])

    @property
    def tempo(self) -> dict[str, dict]:
        return dict(self.data["tempo"])

    def all_words(self) -> list[str]:
        d = self.data
        return [*d["emotions"], *d["actions"], *d["head_motions"], *d["intensities"], *d["tempo"]]

    def emotion_group(self, word: str) -> str:
        return self.data["emotions"][word][0]

    def synonym_groups(self) -> dict[str, list[str]]:
        """CorE synonym groups: group name -> emotion words (fixed in the data file)."""
        out: dict[str, list[str]] = {}
        for w, (g, _) in self.data["emotions"].items():
            out.setdefault(g, []).append(w)
        return out

    def arkit_vector(self, weights: dict) -> np.ndarray:
        """{ARKit name: weight} -> (52,) float32."""
        v = np.zeros(len(ARKIT_52), np.float32)
        for k, x in weights.items():
            v[ARKIT_INDEX[k]] = x
        return v


def _validate(d: dict) -> None:
    for key in ("emotion_groups", "emotions", "actions", "head_motions", "intensities", "tempo"):
        if key not in d:
            raise FaceLangError(f"vocabulary: missing section '{key}'")
    for g, rec in d["emotion_groups"].items():
        bad = [k for k in rec["arkit"] if k not in ARKIT_INDEX]
        if bad:
            raise FaceLangError(f"vocabulary: group '{g}' uses unknown ARKit names {bad}")
    for w, (g, gain) in d["emotions"].items():
        if g not in d["emotion_groups"] or not 0 < gain <= 1:
            raise FaceLangError(f"vocabulary: emotion '{w}' has bad group/gain {g}/{gain}")
    for w, rec in d["actions"].items():
        bad = [k for k in rec["arkit"] if k not in ARKIT_INDEX]
        if bad or len(rec["phrases"]) < 2:
            raise FaceLangError(f"vocabulary: action '{w}' has unknown ARKit names {bad} or < 2 phrases")
    for w, rec in d["head_motions"].items():
        if rec["axis"] not in HEAD_AXES or len(rec["phrases"]) < 2:
            raise FaceLangError(f"vocabulary: head motion '{w}' is malformed")
        bad = [k for k in rec.get("arkit", {}) if k not in ARKIT_INDEX]
        bad += [k for k in rec.get("secondary", {}) if k not in HEAD_AXES or k == rec["axis"]]
        if bad:
            raise FaceLangError(f"vocabulary: head motion '{w}' has unknown ARKit names or axes {bad}")
    if sorted(set(d["intensities"].values())) != [1, 2, 3, 4, 5]:
        raise FaceLangError("vocabulary: intensity levels must cover 1-5")


@lru_cache(maxsize=None)
def load_vocabulary() -> Vocabulary:
    raw = resources.files("pyfacelang.corpus").joinpath("vocab.json").read_bytes()
    d = json.loads(raw)
    _validate(d)
    return Vocabulary(d, hashlib.sha256(raw).hexdigest())
