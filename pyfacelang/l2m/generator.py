"""`TextToMotion`: a text encoder plus the motion transformer, with the face
tokenizer's identity (hash, codebook size, frame rate) they were trained on.

    from pyfacelang.l2m import TextToMotion
    t2m = TextToMotion.load()                              # the shipped model
    tokens = t2m.generate(["a slow smile"], seconds=5.0)   # (1, 125) face tokens

A model folder holds `config.json` (format, encoder entry, network config,
tokenizer hash, recipe), `model.safetensors` and, for the built-in encoder,
`text_tokenizer.json`.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _kernels
from ..errors import FaceLangError, ModelFileError, ShapeError, TokenizerMismatchError
from ..m2l.gpt import KVCache
from .config import MotionGPTConfig, SampleConfig
from .encoders import TextEncoder, load_text_encoder
from .model import MotionGPT, length_bin

FORMAT = "pyfacelang-l2m/1"


def shipped_path() -> Path:
    return Path(str(resources.files("pyfacelang.l2m").joinpath("data", "default")))


class TextToMotion:
    def __init__(self, encoder: TextEncoder, net: MotionGPT, meta: dict):
        for key in ("tokenizer_sha256", "codebook_size", "fps"):
            if key not in meta:
                raise ModelFileError(f"motion model metadata lacks '{key}'")
        self.encoder, self.net, self.meta = encoder, net, dict(meta)
        self.modules = nn.ModuleDict({"encoder": encoder, "net": net})

    @classmethod
    def create(cls, cfg: MotionGPTConfig, encoder: TextEncoder, meta: dict, code_motion=None) -> "TextToMotion":
        """A fresh model; `code_motion` (K, 55) from `FaceTokenizer.code_motion()`
        (needed when cfg.code_features; a saved model carries it in its weights)."""
        net = MotionGPT(cfg, encoder.dim, int(meta["codebook_size"]))
        if code_motion is not None:
            net.set_code_motion(code_motion)
        return cls(encoder, net, meta)

    # ---------------------------------------------------------- properties
    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def codebook_size(self) -> int:
        return int(self.meta["codebook_size"])

    @property
    def switch_cost(self) -> float:
        """The run-length smoothing of the tokens it was trained on
        (L2MTrainConfig.switch_cost; 0: per-frame tokens)."""
        return float(self.meta.get("switch_cost", 0.0))

    @property
    def conditioning(self) -> str:
        return self.net.cfg.conditioning

    @property
    def device(self):
        return self.net.head.weight.device

    def to(self, device) -> "TextToMotion":
        self.modules.to(device)
        return self

    def trainable_parameters(self) -> list:
        return [p for p in self.modules.parameters() if p.requires_grad]

    def check_tokenizer(self, sha256: str | None, where: str = "the tokenizer") -> None:
        if sha256 is not None and sha256 != self.meta["tokenizer_sha256"]:
            raise TokenizerMismatchError(
                f"this motion model writes tokens of tokenizer {self.meta['tokenizer_sha256'][:12]}, but {where} "
                f"is {sha256[:12]}: its decoder would turn them into other faces. Use the matching tokenizer "
                "(--tokenizer) or retrain the model on this one (`pyfacelang train l2m --tokenizer ...`)")

    # ------------------------------------------------------------ training
    def _batch(self, texts, seqs, uncond=None, inputs=None, context=None):
        """-> prefix, mask, ids (B, T) = <bos> + tokens[:-1], targets (B, T) (-100 = not scored), length bins.
        `inputs` (same lengths as `seqs`): the tokens fed in, when they differ from the targets.
        `context` (B ints): leading tokens of each sequence that are read but not scored (the end of
        another clip, which the text does not describe)."""
        emb, m = self.encoder(texts)
        P, pm = self.net.prefix(emb, m, uncond)
        T = max(len(s) for s in seqs)
        if T > self.net.cfg.max_frames:
            raise ShapeError(f"a training clip has {T} frames; the model holds at most {self.net.cfg.max_frames}")
        ids = torch.full((len(seqs), T), self.net.bos, dtype=torch.long)
        tgt = torch.full((len(seqs), T), -100, dtype=torch.long)
        for b, s in enumerate(seqs):
            s = torch.as_tensor(np.asarray(s, np.int64))
            x = s if inputs is None else torch.as_tensor(np.asarray(inputs[b], np.int64))
            if len(x) != len(s):
                raise ShapeError(f"input {b} has {len(x)} tokens, its target {len(s)}")
            ids[b, 1: len(s)] = x[:-1]
            tgt[b, : len(s)] = s
            if context is not None:
                if not 0 <= context[b] < len(s):
                    raise ShapeError(f"sequence {b} has {len(s)} tokens, so its context cannot be {context[b]}")
                tgt[b, : context[b]] = -100
        lbin = length_bin([len(s) for s in seqs], self.fps, self.net.cfg.length_bins)
        dev = self.device
        return P, pm, ids.to(dev), tgt.to(dev), lbin.to(dev)

    def loss(self, texts, seqs, uncond=None, inputs=None, context=None, weights=None) -> torch.Tensor:
        """Mean next-token cross-entropy over the scored targets; with
        `weights` (one (T_b,) array per sequence, as `seqs`), their weighted mean."""
        P, pm, ids, tgt, lbin = self._batch(texts, seqs, uncond, inputs, context)
        logits = self.net(P, pm, ids, lbin)                                          # (B, T, K)
        if weights is None:
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        w = torch.zeros(tgt.shape, dtype=logits.dtype)
        for b, (s, wb) in enumerate(zip(seqs, weights)):
            wb = torch.as_tensor(np.asarray(wb, np.float32))
            if wb.shape != (len(s),) or not bool(torch.isfinite(wb).all()) or bool((wb < 0).any()):
                raise ShapeError(f"weights {b} must be {len(s)} finite values >= 0, got shape {tuple(wb.shape)}")
            w[b, : len(s)] = wb
        w = w.to(logits.device) * (tgt >= 0)                                         # (B, T)
        ce = F.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=-100, reduction="none")   # (B, T)
        return (ce * w).sum() / w.sum().clamp_min(1e-8)

    @torch.inference_mode()
    def token_accuracy(self, texts, seqs) -> np.ndarray:
        """Teacher-forced next-token accuracy per clip (the paper's Tok; clips
        longer than the model's window are scored on their first window)."""
        W = self.net.cfg.max_frames
        P, pm, ids, tgt, lbin = self._batch(texts, [np.asarray(s)[:W] for s in seqs])
        pred = self.net(P, pm, ids, lbin).argmax(-1)                                  # (B, T)
        ok = (pred == tgt) & (tgt >= 0)
        return (ok.sum(1).float() / (tgt >= 0).sum(1).float()).cpu().numpy()

    # ---------------------------------------------------------- generation
    def frames(self, seconds: float) -> int:
        if not np.isfinite(seconds) or seconds <= 0:
            raise FaceLangError(f"--seconds must be a positive number, got {seconds}")
        return max(1, int(round(seconds * self.fps)))

    @torch.inference_mode()
    def generate(self, texts, seconds: float | None = None, *, frames: int | None = None,
                 sample: SampleConfig = SampleConfig(), backend: str = "auto", prime=None) -> np.ndarray:
        """Prompts -> (B, frames) int64 face tokens at the model's fps.
        Top-k / temperature sampling (temperature 0: greedy), optional
        classifier-free guidance, a KV cache; beyond `max_frames` the window
        slides (the last half is kept as context).

        backend: "kernel" decodes token by token in C++ (csrc/decode, CPU
        only), "torch" in torch (the reference, and the path for CUDA);
        "auto" picks the kernel on the CPU. The prompt's forward pass is torch
        either way. Both draw from their own random stream seeded by
        `sample.seed`, so a seed gives the same motion on one backend, not
        across them (greedy decoding agrees).

        prime: (B, P) tokens that the motion continues from (the end of the
        previous segment of a composed prompt, see `animate.compose`). They
        are read as already-generated context, not returned; the length the
        model is told is P + frames. A prime shorter than `max_frames` - 1
        is all context, so the tokens that follow are those the model would
        have made after producing the prime itself; a longer one is cut to
        its last half window, as the window slides."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise FaceLangError("a prompt must be non-empty text")
        n = frames if frames is not None else self.frames(seconds)
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise FaceLangError(f"frames must be a positive whole number, got {n!r}")
        net, dev, B = self.net, self.device, len(texts)
        out: list[torch.Tensor] = []
        if prime is not None:
            prime = np.asarray(prime)
            if prime.ndim != 2 or prime.shape[0] != B:
                raise ShapeError(f"prime must be (B={B}, P) face tokens, got shape {prime.shape}")
            if prime.size and not np.issubdtype(prime.dtype, np.integer):
                raise FaceLangError(f"prime must hold integer token ids, got {prime.dtype}")
            if prime.size and (prime.min() < 0 or prime.max() >= self.codebook_size):
                raise FaceLangError(f"prime holds token ids outside [0, {self.codebook_size})")
            out = list(torch.as_tensor(prime.astype(np.int64), device=dev).unbind(1))
        n_prime = len(out)
        n += n_prime
        if sample.top_k < 0 or sample.temperature < 0 or sample.cfg_scale < 0:
            raise FaceLangError("top_k, temperature and cfg_scale must be >= 0")
        if backend not in ("auto", "kernel", "torch"):
            raise FaceLangError(f"backend must be 'auto', 'kernel' or 'torch', got {backend!r}")
        kernel_ok = dev.type == "cpu" and self.net.head.weight.dtype == torch.float32
        if backend == "kernel" and not kernel_ok:
            raise FaceLangError(f"the decoding kernel runs float32 models on the CPU (this one: "
                                f"{self.net.head.weight.dtype} on {dev.type}); use backend='torch'")
        use_kernel = backend == "kernel" or (backend == "auto" and kernel_ok)
        was_training = self.modules.training
        self.modules.eval()
        try:
            emb, m = self.encoder(texts)
            P, pm = net.prefix(emb, m)
            guided = sample.cfg_scale != 1.0
            if guided:   # rows B.. are the unconditional twins (the null prefix, padded to the same length)
                Pn, pmn = net.null_prefix(B, dev)
                L = P.shape[1]
                P = torch.cat([P, F.pad(Pn, (0, 0, 0, L - 1))])
                pm = torch.cat([pm, F.pad(pmn, (0, L - 1), value=False)])
            rows = len(P)
            lbin = length_bin(n, self.fps, net.cfg.length_bins).expand(rows).to(dev)
            gen = torch.Generator(device="cpu").manual_seed(int(sample.seed))
            seed64 = int(sample.seed) & (2 ** 64 - 1)                            # the kernel's stream (uint64 bits)
            rng_state = torch.tensor([seed64 - 2 ** 64 if seed64 >= 2 ** 63 else seed64], dtype=torch.int64)
            weights = net.decode_weights() if use_kernel else None
            tables = None if use_kernel else net.tables()                          # once, not per step
            row_emb = net.length(lbin).float().contiguous() if use_kernel else None   # (rows, D)
            W = net.cfg.max_frames
            while len(out) < n:
                if len(out) == n_prime and n_prime < W - 1:   # a prime that fits: all of it is context
                    keep = out
                else:
                    keep = out[-(W // 2 - 1):] if out and W // 2 > 1 else []
                ids = torch.full((rows, 1 + len(keep)), net.bos, dtype=torch.long, device=dev)
                if keep:
                    ids[:, 1:] = torch.stack(keep, 1).repeat(rows // B, 1)
                L = P.shape[1]
                caches = [KVCache(L + W) for _ in net.blocks]
                logits = net(P, pm, ids, lbin, caches, last_only=True, tables=tables)   # (rows, K)
                pos = ids.shape[1]
                keys = torch.cat([pm, torch.ones(rows, W, dtype=torch.bool, device=dev)], 1)   # (rows, L + W)
                pad_free = bool(pm.all())   # no masked prefix key: steps need no mask at all
                if use_kernel:
                    take = min(n - len(out), W - pos + 1)
                    toks = _kernels.decode(
                        weights, [(c.k, c.v) for c in caches], logits, B=B, n_tokens=take, n_past=caches[0].n,
                        pos=pos, row_emb=row_emb, key_mask=None if pad_free else keys.to(torch.uint8).contiguous(),
                        cfg_scale=sample.cfg_scale if guided else 1.0, temperature=sample.temperature,
                        top_k=sample.top_k, rng_state=rng_state)                       # (B, take)
                    out.extend(toks.unbind(1))
                    continue
                while True:
                    nxt = self._pick(logits, B, guided, sample, gen)                  # (B,)
                    out.append(nxt)
                    if len(out) == n or pos >= W:
                        break
                    k = None if pad_free else keys[:, : L + pos + 1]
                    logits = net.step(nxt.repeat(rows // B)[:, None], pos, lbin, k, caches, tables)
                    pos += 1
            return torch.stack(out[n_prime:], 1).cpu().numpy()
        finally:
            self.modules.train(was_training)

    @staticmethod
    def _pick(logits, B: int, guided: bool, sample: SampleConfig, gen) -> torch.Tensor:
        if guided:
            c, u = logits[:B], logits[B:]
            logits = u + sample.cfg_scale * (c - u)
        if sample.temperature == 0:
            return logits.argmax(-1)
        logits = logits.float() / sample.temperature
        if 0 < sample.top_k < logits.shape[-1]:
            v, i = logits.topk(sample.top_k, -1)                                     # (B, k)
        else:
            v, i = logits, torch.arange(logits.shape[-1], device=logits.device).expand_as(logits)
        probs = torch.softmax(v, -1).cpu()
        choice = torch.multinomial(probs, 1, generator=gen).to(i.device)             # (B, 1)
        return i.gather(1, choice)[:, 0]

    # ----------------------------------------------------------------- I/O
    def save(self, folder, extra: dict | None = None) -> Path:
        from safetensors.torch import save

        from ..atomic import write_atomic
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.modules.state_dict().items()
                 if not (k.startswith("encoder.") and not self.encoder.trainable)}
        blob = save(state)
        write_atomic(folder / "model.safetensors", lambda f: f.write(blob))
        self.encoder.save_files(folder)
        meta = {**self.meta, **(extra or {}), "format": FORMAT, "encoder": self.encoder.entry(),
                "model": self.net.cfg.to_dict()}
        self.meta = meta
        text = json.dumps(meta, indent=1)
        write_atomic(folder / "config.json", lambda f: f.write(text.encode()))
        return folder

    @classmethod
    def load(cls, path=None, tokenizer_sha256: str | None = None, device="cpu") -> "TextToMotion":
        """A motion-model folder (None: the shipped one). With
        `tokenizer_sha256`, refuse a model trained on another tokenizer."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        folder = shipped_path() if path is None or str(path) == "default" else Path(path)
        cfg_file = folder / "config.json"
        if not cfg_file.is_file():
            raise ModelFileError(f"motion model '{folder}' not found (expected a folder with config.json and "
                                 "model.safetensors, written by `pyfacelang train l2m`)")
        try:
            meta = json.loads(cfg_file.read_text())
        except ValueError as e:
            raise ModelFileError(f"{cfg_file}: unreadable motion model config ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(f"{cfg_file}: not a pyfacelang motion model")
        encoder = load_text_encoder(folder, meta.get("encoder", {}))
        model = cls.create(MotionGPTConfig.from_dict(meta.get("model", {})), encoder, meta)
        if not (folder / "model.safetensors").is_file():
            raise ModelFileError(f"motion model '{folder}' has no model.safetensors")
        try:
            state = load_file(str(folder / "model.safetensors"))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(f"{folder}/model.safetensors: unreadable weights ({e})") from None
        try:
            missing, unexpected = model.modules.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise ModelFileError(f"{folder}/model.safetensors: weights do not match config.json "
                                 f"({str(e).splitlines()[0]} ...)") from None
        if not encoder.trainable:
            missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise ModelFileError(f"{folder}/model.safetensors: weights do not match config.json "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.modules.eval()
        model.check_tokenizer(tokenizer_sha256)
        return model.to(device)
