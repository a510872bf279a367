"""The built-in captioner's vocabulary: a byte-level BPE (the `tokenizers`
library) learnt from the corpus captions and prompts, plus control tokens and
the face tokens `<face_0>` .. `<face_{K-1}>` as added tokens with contiguous
ids, so the whole vocabulary lives in one `tokenizer.json`."""
from __future__ import annotations

from pathlib import Path

from ..errors import FaceLangError, ModelFileError

CONTROL = ("<pad>", "<bos>", "<eos>", "<sep>", "<face>", "</face>")


def face_token(i: int) -> str:
    return f"<face_{i}>"


class TextVocab:
    """A `tokenizers.Tokenizer` plus the ids the captioner needs."""

    def __init__(self, tok, codebook_size: int):
        self.tok = tok
        self.codebook_size = codebook_size
        ids = {name: tok.token_to_id(name) for name in CONTROL}
        missing = [n for n, i in ids.items() if i is None]
        if missing:
            raise ModelFileError(f"caption vocabulary lacks control tokens {missing}")
        self.pad, self.bos, self.eos, self.sep, self.face_open, self.face_close = (ids[n] for n in CONTROL)
        first = tok.token_to_id(face_token(0))
        last = tok.token_to_id(face_token(codebook_size - 1))
        if first is None or last is None or last - first != codebook_size - 1 or \
                tok.token_to_id(face_token(codebook_size)) is not None:
            raise ModelFileError(f"caption vocabulary does not hold exactly {codebook_size} contiguous face tokens "
                                 f"<face_0>..<face_{codebook_size - 1}>")
        self.face0 = first

    @property
    def size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids if int(i) < self.face0], skip_special_tokens=True).strip()

    def save(self, path: Path) -> None:
        self.tok.save(str(path))

    @classmethod
    def load(cls, path: Path, codebook_size: int) -> "TextVocab":
        from tokenizers import Tokenizer
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise ModelFileError(f"{path}: unreadable caption vocabulary ({e})") from None
        return cls(tok, codebook_size)

    @classmethod
    def train(cls, texts, vocab_size: int, codebook_size: int) -> "TextVocab":
        tok = train_bpe(texts, vocab_size, CONTROL)
        tok.add_special_tokens([face_token(i) for i in range(codebook_size)])
        return cls(tok, codebook_size)


def train_bpe(texts, vocab_size: int, special) -> "tokenizers.Tokenizer":  # noqa: F821
    """A byte-level BPE (`tokenizers`) learnt from `texts`, with the `special`
    tokens first: any string encodes (unseen words fall back to pieces, at
    worst bytes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    if vocab_size <= len(special) + 256:
        raise FaceLangError(f"a text vocabulary must exceed {len(special) + 256} entries (special tokens + bytes)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok
