"""Any local Hugging Face causal LM as a captioner: the face tokens
`<face_0>` .. `<face_{K-1}>` (and `<face>`, `</face>`) are added to its
tokenizer, the embeddings resized, and the model fine-tuned with LoRA (peft;
the new token rows are trained in full) or entirely. Nothing is downloaded:
every load is `local_files_only`.

    <bos> <face> <face_17> ... </face> Describe the facial motion.\\n The person ... <eos>
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import FaceLangError, ModelFileError
from .base import CaptionModel
from .text import face_token

FACE_OPEN, FACE_CLOSE = "<face>", "</face>"


def _hf():
    try:
        import transformers
    except ImportError:
        raise FaceLangError("Hugging Face models need the transformers package: pip install transformers peft") \
            from None
    return transformers


def _check_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ModelFileError(f"{what} '{path}' is not a folder (give a local Hugging Face model directory)")
    if not (path / "config.json").is_file():
        raise ModelFileError(f"{what} '{path}' has no config.json (not a Hugging Face model directory)")


class HFCaptioner(CaptionModel):
    kind = "hf"

    def __init__(self, model, tokenizer, meta: dict):
        super().__init__(meta)
        self.model, self.tok = model, tokenizer
        ids = tokenizer.convert_tokens_to_ids([FACE_OPEN, FACE_CLOSE, face_token(0), face_token(self.codebook_size - 1)])
        unk = tokenizer.unk_token_id
        if any(i is None or i == unk for i in ids) or ids[3] - ids[2] != self.codebook_size - 1:
            raise ModelFileError(f"the Hugging Face tokenizer does not hold {self.codebook_size} contiguous face "
                                 "tokens (was this model made by `pyfacelang train m2l --base`?)")
        self.face_open, self.face_close, self.face0 = ids[0], ids[1], ids[2]
        self.eos = tokenizer.eos_token_id
        if self.eos is None:
            raise ModelFileError("the Hugging Face tokenizer has no end-of-sequence token")
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []

    # ----------------------------------------------------------- building
    @classmethod
    def from_base(cls, base, meta: dict, lora_rank: int = 8) -> "HFCaptioner":
        """A base causal LM folder -> captioner with face tokens added (LoRA when lora_rank > 0)."""
        tr = _hf()
        base = Path(base)
        _check_dir(base, "--base")
        try:
            tok = tr.AutoTokenizer.from_pretrained(str(base), local_files_only=True)
            model = tr.AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as e:
            raise ModelFileError(f"--base {base}: cannot load a causal LM and its tokenizer ({e})") from None
        old = len(tok)
        K = int(meta["codebook_size"])
        tok.add_tokens([FACE_OPEN, FACE_CLOSE] + [face_token(i) for i in range(K)], special_tokens=True)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        emb_old = model.get_input_embeddings().weight.shape[0]
        model.resize_token_embeddings(len(tok), mean_resizing=False)
        with torch.no_grad():   # new rows start at the mean embedding (stable first steps)
            w = model.get_input_embeddings().weight
            w[emb_old:] = w[:emb_old].mean(0, keepdim=True) + 0.01 * torch.randn_like(w[emb_old:])
        if lora_rank > 0:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError:
                raise FaceLangError("LoRA fine-tuning needs the peft package: pip install peft "
                                    "(or --lora-rank 0 for full fine-tuning)") from None
            new_ids = list(range(old, len(tok)))
            cfg = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0, target_modules="all-linear",
                             trainable_token_indices=new_ids, task_type="CAUSAL_LM")
            model = get_peft_model(model, cfg)
        return cls(model, tok, {**meta, "base": str(base), "lora_rank": lora_rank})

    def module(self):
        return self.model

    @property
    def device(self):
        return next(self.model.parameters()).device

    # ------------------------------------------------------------- layout
    def _prompt_ids(self, prompt: str) -> list[int]:
        return [self.face_close] + self.tok.encode(prompt + "\n", add_special_tokens=False)

    def _context(self, face: np.ndarray, prompt: str) -> list[int]:
        return self.bos + [self.face_open] + (face + self.face0).tolist() + self._prompt_ids(prompt)

    def max_face_tokens(self, prompt: str, max_new_tokens: int) -> int:
        cfg = getattr(self.model, "config", None)
        n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
        return int(n) - 2 - len(self.bos) - len(self._prompt_ids(prompt)) - max_new_tokens

    def loss(self, examples) -> torch.Tensor:
        rows, starts = [], []
        for face, prompt, answer in examples:
            ans = self.tok.encode(answer, add_special_tokens=False) + [self.eos]
            ctx = self._context(self.fitting_face(face, prompt, len(ans)), prompt)
            rows.append(ctx + ans)
            starts.append(len(ctx))
        T = max(map(len, rows))
        ids = torch.full((len(rows), T), self.tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), T), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for b, (seq, s) in enumerate(zip(rows, starts)):
            ids[b, : len(seq)] = torch.tensor(seq)
            labels[b, s: len(seq)] = torch.tensor(seq[s:])    # HF shifts labels itself
            mask[b, : len(seq)] = 1
        dev = self.device
        return self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss

    def _answers(self, gen) -> list[str]:
        """Generated ids (N, n) -> answer texts, each cut at its first <eos>."""
        out = []
        for row in gen.tolist():
            if self.eos in row:
                row = row[: row.index(self.eos)]
            out.append(self.tok.decode(row, skip_special_tokens=True).strip())
        return out

    def _run(self, ctx, max_new_tokens, **kw) -> list[str]:
        """HF generate on contexts (B, T), face tokens suppressed -> answer texts."""
        suppress = list(range(self.face0, self.face0 + self.codebook_size)) + [self.face_open, self.face_close]
        gen = self.model.generate(input_ids=ctx, attention_mask=torch.ones_like(ctx), do_sample=False,
                                  max_new_tokens=max_new_tokens, eos_token_id=self.eos,
                                  pad_token_id=self.tok.pad_token_id, suppress_tokens=suppress, **kw)
        return self._answers(gen[:, ctx.shape[1]:])

    def _generate(self, seqs, prompt, max_new_tokens):
        ctx = torch.tensor([self._context(f, prompt) for f in seqs], device=self.device)   # (B, T)
        return self._run(ctx, max_new_tokens)

    def _beams(self, seq, prompt, max_new_tokens, beams, reject=None):
        """HF beam search; `reject` is not applied while beams grow (the
        caller filters the finished answers)."""
        ctx = torch.tensor([self._context(seq, prompt)], device=self.device)              # (1, T)
        return self._run(ctx, max_new_tokens, num_beams=beams, num_return_sequences=beams)

    # ---------------------------------------------------------------- I/O
    def save(self, folder, extra: dict | None = None) -> Path:
        """Write `folder/hf` (the model with any LoRA merged in, and its
        tokenizer, as safetensors) and `folder/config.json`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
            self.model = model
        model.save_pretrained(str(folder / "hf"), safe_serialization=True)
        self.tok.save_pretrained(str(folder / "hf"))
        self._write_config(folder, extra or {})
        return folder

    @classmethod
    def load(cls, folder: Path, meta: dict, device="cpu") -> "HFCaptioner":
        tr = _hf()
        _check_dir(folder / "hf", "caption model")
        try:
            tok = tr.AutoTokenizer.from_pretrained(str(folder / "hf"), local_files_only=True)
            model = tr.AutoModelForCausalLM.from_pretrained(str(folder / "hf"), local_files_only=True,
                                                            dtype=torch.float32)
        except (OSError, ValueError, KeyError) as e:
            raise ModelFileError(f"{folder}/hf: cannot load the fine-tuned model ({e})") from None
        model.eval()
        return cls(model.to(device), tok, meta)
