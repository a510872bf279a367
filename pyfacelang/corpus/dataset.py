"""`CorpusDataset`: a torch Dataset over a corpus folder (memory-mapped shards),
with train/val/test splits fixed by clip id."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import FaceLangError
from .store import Corpus

SPLITS = ("train", "val", "test")


def split_of(clip_id: str) -> str:
    """Stable split from the clip id alone: 90% train, 5% val, 5% test."""
    h = int.from_bytes(hashlib.sha1(clip_id.encode()).digest()[:2], "little") % 100
    return "test" if h < 5 else "val" if h < 10 else "train"


class CorpusDataset(torch.utils.data.Dataset):
    """Items: {'id', 'params' (T, 55) float32, 'identity' (16,), 'caption',
    'paraphrases', 'labels', 'fps'}."""

    def __init__(self, folder, split: str = "train"):
        if split not in SPLITS + ("all",):
            raise FaceLangError(f"split must be one of {SPLITS + ('all',)}, got '{split}'")
        self.corpus = Corpus(folder)
        self.ids = [i for i in self.corpus.ids if split == "all" or split_of(i) == split]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: int) -> dict:
        clip = self.corpus.read(self.ids[k])
        meta = clip["meta"]
        return {"id": self.ids[k], "params": torch.from_numpy(np.array(clip["params"], np.float32)),
                "identity": torch.from_numpy(np.array(clip.get("identity", np.zeros(16)), np.float32)),
                "caption": meta.get("caption", ""), "paraphrases": meta.get("paraphrases", []),
                "labels": meta.get("labels", {}), "fps": meta.get("fps", self.corpus.config.get("fps", 25.0))}
