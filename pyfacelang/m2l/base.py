"""`CaptionModel`: the one interface over the built-in captioner and Hugging
Face causal LMs, plus loading by folder.

A model folder holds `config.json` (`format`, `kind`, the face tokenizer's
hash and codebook size, the frame rate its tokens were made at, and the
recipe) and the weights of its kind. A model only reads tokens from the
tokenizer it was trained on: `check_tokenizer` refuses any other.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import FaceLangError, ModelFileError, ShapeError, TokenizerMismatchError  # noqa: F401 (re-exported)
from .templates import DEFAULT_PROMPT, PROMPTS

FORMAT = "pyfacelang-m2l/1"


def shipped_path() -> Path:
    """Folder of the captioner shipped in the package."""
    return Path(str(resources.files("pyfacelang.m2l").joinpath("data", "default")))


def check_face_tokens(tokens, codebook_size: int, what: str = "tokens") -> np.ndarray:
    t = np.asarray(tokens.detach().cpu() if isinstance(tokens, torch.Tensor) else tokens)
    if t.ndim != 1:
        raise ShapeError(f"{what}: expected a 1-D sequence of face tokens, got shape {t.shape}")
    if len(t) == 0:
        raise ShapeError(f"{what}: empty sequence (no frames to caption)")
    if t.dtype.kind not in "iu":
        raise ShapeError(f"{what}: expected integer token ids, got {t.dtype}")
    bad = (t < 0) | (t >= codebook_size)
    if bad.any():
        k = int(np.argmax(bad))
        raise ShapeError(f"{what}: unknown face token id {int(t[k])} at frame {k} "
                         f"(this model reads ids 0..{codebook_size - 1})")
    return t.astype(np.int64)


class CaptionModel(ABC):
    """Face tokens (+ an instruction) in, text out.

    `meta` carries at least `tokenizer_sha256`, `codebook_size` and `fps`.
    Subclasses implement the sequence layout, the loss and generation."""

    kind = "abstract"
    # Beams for re-decoding a malformed describe answer (`_repair`; 0 or 1:
    # keep greedy answers as they are).
    repair_beams = 4

    def __init__(self, meta: dict):
        for key in ("tokenizer_sha256", "codebook_size", "fps"):
            if key not in meta:
                raise ModelFileError(f"caption model metadata lacks '{key}'")
        self.meta = dict(meta)
        self.repaired = 0   # answers replaced by `_repair` so far

    # ---------------------------------------------------------- properties
    @property
    def tokenizer_sha256(self) -> str:
        return self.meta["tokenizer_sha256"]

    @property
    def codebook_size(self) -> int:
        return int(self.meta["codebook_size"])

    @property
    def fps(self) -> float:
        """Frame rate of the face tokens the model was trained on (inputs at
        another rate are resampled by `caption_windows`)."""
        return float(self.meta["fps"])

    @property
    def template_captions(self) -> bool:
        """Trained on captions that corpus/captions.py's templates wrote (a
        synthetic corpus; recorded by `train m2l`); models without the record
        are taken as trained on free text."""
        return bool(self.meta.get("template_captions", False))

    def check_tokenizer(self, sha256: str | None, where: str = "the tokenizer") -> None:
        """Refuse tokens from another tokenizer (a different codebook means
        different token meanings)."""
        if sha256 is not None and sha256 != self.tokenizer_sha256:
            raise TokenizerMismatchError(
                f"this caption model was trained on tokenizer {self.tokenizer_sha256[:12]}, but {where} is "
                f"{sha256[:12]}: tokens from another tokenizer mean different faces. Use the matching "
                "tokenizer (--tokenizer) or retrain the model on this one (`pyfacelang train m2l --tokenizer ...`)")

    # ------------------------------------------------------------ the work
    @abstractmethod
    def max_face_tokens(self, prompt: str, max_new_tokens: int) -> int:
        """Longest face-token sequence that fits the context with this prompt."""

    def fitting_face(self, face, prompt: str, answer_len: int) -> np.ndarray:
        """A training example's face tokens, cut so the prompt and the whole answer (`answer_len` tokens) fit: a
        clip too long for the context gives up its last frames, never the answer's end."""
        return np.asarray(face, np.int64)[: max(1, self.max_face_tokens(prompt, answer_len))]

    @abstractmethod
    def loss(self, examples: list[tuple[np.ndarray, str, str]]) -> torch.Tensor:
        """Mean next-token loss on the answers of (face tokens, prompt, answer) examples."""

    @abstractmethod
    def _generate(self, seqs: list[np.ndarray], prompt: str, max_new_tokens: int) -> list[str]:
        """Greedy answers for validated face-token sequences, all of one length
        (so they batch without padding)."""

    def _beams(self, seq: np.ndarray, prompt: str, max_new_tokens: int, beams: int, reject=None) -> list[str]:
        """Up to `beams` answers for one sequence by beam search, best first
        ([] where a model has none: its greedy answer then stands).
        `reject(text) -> bool` prunes partial answers where a model supports it."""
        return []

    def _repair(self, seqs, out: list, prompt: str, max_new_tokens: int) -> None:
        """Every describe answer the model was trained on names an emotion and
        qualifies it. Greedy decoding sometimes does not: on a 2 s window
        whose emotion has barely begun, "The face starts neutral, then
        becomes subtly, and then leans in." Such an answer is replaced by
        the best beam-search answer without the fault (beams that leave an
        intensity word dangling are pruned as they grow); when no beam of
        `repair_beams` ends well formed, twice as many try once more (a rare
        window: the demo's first, 2 s into a smile); if none does either,
        the greedy answer stays."""
        if prompt not in PROMPTS["describe"] or self.repair_beams < 2:
            return
        from .evaluate import default_reader
        reader = default_reader()
        words = self.template_captions       # only then are the templates' words all the words there are
        for i, text in enumerate(out):
            if reader.problem(text, words=words) is None:
                continue
            for beams in (self.repair_beams, 2 * self.repair_beams):
                good = [c for c in self._beams(seqs[i], prompt, max_new_tokens, beams,
                                               reject=lambda t: reader.problem(t, True, words) is not None)
                        if reader.problem(c, words=words) is None]
                if good:
                    out[i] = good[0]
                    self.repaired += 1
                    break

    @abstractmethod
    def save(self, folder) -> Path:
        """Write the model folder (config.json + weights)."""

    @abstractmethod
    def module(self) -> torch.nn.Module:
        """The torch module holding every trained weight (for optimisers and checkpoints)."""

    def trainable_parameters(self) -> list:
        return [p for p in self.module().parameters() if p.requires_grad]

    def caption_batch(self, seqs, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 64) -> list[str]:
        """Answer `prompt` for each face-token sequence (1-D int arrays at `fps`)."""
        seqs = [check_face_tokens(s, self.codebook_size, f"tokens[{i}]") for i, s in enumerate(seqs)]
        limit = self.max_face_tokens(prompt, max_new_tokens)
        for i, s in enumerate(seqs):
            if len(s) > limit:
                raise ShapeError(f"tokens[{i}]: {len(s)} face tokens exceed this model's context ({limit} with "
                                 f"this prompt, {limit / self.fps:.1f} s at {self.fps:g} fps); caption shorter "
                                 "windows (--window)")
        if not seqs:
            return []
        was = self.module().training
        self.module().eval()
        try:
            out: list = [None] * len(seqs)
            by_len: dict[int, list[int]] = {}
            for i, s in enumerate(seqs):
                by_len.setdefault(len(s), []).append(i)
            with torch.no_grad():
                for idx in by_len.values():
                    for i, text in zip(idx, self._generate([seqs[i] for i in idx], prompt, max_new_tokens)):
                        out[i] = text
                self._repair(seqs, out, prompt, max_new_tokens)
            return out
        finally:
            self.module().train(was)

    def caption(self, tokens, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 64) -> str:
        return self.caption_batch([tokens], prompt, max_new_tokens)[0]

    def _write_config(self, folder: Path, extra: dict) -> None:
        from ..atomic import write_atomic
        meta = {**self.meta, **extra, "format": FORMAT, "kind": self.kind}
        self.meta = meta
        text = json.dumps(meta, indent=1)
        write_atomic(folder / "config.json", lambda f: f.write(text.encode()))


def read_config(folder: Path) -> dict:
    cfg_file = folder / "config.json"
    if not folder.is_dir():
        raise ModelFileError(f"caption model '{folder}' not found (expected a folder written by "
                             "`pyfacelang train m2l`)")
    if not cfg_file.is_file():
        raise ModelFileError(f"caption model '{folder}' has no config.json")
    try:
        meta = json.loads(cfg_file.read_text())
    except ValueError as e:
        raise ModelFileError(f"{cfg_file}: unreadable caption model config ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{cfg_file}: not a pyfacelang caption model (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    return meta


def load_caption_model(path=None, tokenizer_sha256: str | None = None, device="cpu") -> CaptionModel:
    """Load a caption model folder (None: the one shipped in the package). With
    `tokenizer_sha256`, refuse a model trained on another tokenizer."""
    folder = shipped_path() if path is None or str(path) == "default" else Path(path)
    meta = read_config(folder)
    kind = meta.get("kind")
    if kind == "builtin":
        from .builtin import BuiltinCaptioner
        model = BuiltinCaptioner.load(folder, meta, device)
    elif kind == "hf":
        from .hf import HFCaptioner
        model = HFCaptioner.load(folder, meta, device)
    else:
        raise ModelFileError(f"{folder}/config.json: unknown caption model kind {kind!r} (builtin or hf)")
    model.check_tokenizer(tokenizer_sha256)
    return model
