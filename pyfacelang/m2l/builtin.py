"""The built-in captioner: a small decoder-only transformer over one
vocabulary of BPE text tokens and face tokens.

    <bos> <face> <face_17> <face_903> ... </face> Describe the facial motion. <sep> The person ... <eos>

The loss is on the answer only; generation is greedy with a KV cache.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FaceLangError, ModelFileError
from .base import CaptionModel
from .config import CaptionerConfig
from .gpt import GPT
from .text import TextVocab


class BuiltinCaptioner(CaptionModel):
    kind = "builtin"

    def __init__(self, cfg: CaptionerConfig, vocab: TextVocab, meta: dict, net: GPT | None = None):
        super().__init__(meta)
        if vocab.codebook_size != self.codebook_size:
            raise ModelFileError(f"caption vocabulary has {vocab.codebook_size} face tokens, the model reads "
                                 f"{self.codebook_size}")
        self.cfg, self.vocab = cfg, vocab
        self.net = net if net is not None else GPT(cfg, vocab.size, vocab.face0, vocab.codebook_size)
        self._prompt_cache: dict[str, list[int]] = {}
        #: how greedy answers are decoded: "auto" (the C++ loop on the CPU,
        #: torch elsewhere), "kernel" (the C++ loop, or an error) or "torch"
        self.backend = "auto"

    @classmethod
    def create(cls, cfg: CaptionerConfig, texts, meta: dict, code_motion=None) -> "BuiltinCaptioner":
        """A fresh model; `code_motion` (K, 55) from `FaceTokenizer.code_motion()`
        (needed when cfg.code_features)."""
        vocab = TextVocab.train(texts, cfg.text_vocab, int(meta["codebook_size"]))
        model = cls(cfg, vocab, meta)
        model.set_code_motion(code_motion)
        return model

    def set_code_motion(self, code_motion) -> None:
        if not self.cfg.code_features:
            return
        if code_motion is None or tuple(np.shape(code_motion)) != tuple(self.net.face_feat.shape):
            got = None if code_motion is None else np.shape(code_motion)
            raise ModelFileError(f"code_features needs the tokenizer's code motion of shape "
                                 f"{tuple(self.net.face_feat.shape)}, got {got}")
        self.net.face_feat.copy_(torch.as_tensor(np.asarray(code_motion), dtype=torch.float32))

    def module(self):
        return self.net

    def to(self, device) -> "BuiltinCaptioner":
        self.net.to(device)
        return self

    @property
    def device(self):
        return self.net.tok.weight.device

    # ------------------------------------------------------------ layout
    def _prompt_ids(self, prompt: str) -> list[int]:
        if prompt not in self._prompt_cache:
            self._prompt_cache[prompt] = [self.vocab.face_close] + self.vocab.encode(prompt) + [self.vocab.sep]
        return self._prompt_cache[prompt]

    def _context(self, face: np.ndarray, prompt: str) -> list[int]:
        return [self.vocab.bos, self.vocab.face_open] + (face + self.vocab.face0).tolist() + self._prompt_ids(prompt)

    def max_face_tokens(self, prompt: str, max_new_tokens: int) -> int:
        return self.cfg.max_len - 2 - len(self._prompt_ids(prompt)) - max_new_tokens

    def loss(self, examples) -> torch.Tensor:
        rows, starts = [], []
        for face, prompt, answer in examples:
            ans = self.vocab.encode(answer) + [self.vocab.eos]
            ctx = self._context(self.fitting_face(face, prompt, len(ans)), prompt)
            seq = (ctx + ans)[: self.cfg.max_len]
            rows.append(seq)
            starts.append(len(ctx))
        T = max(map(len, rows))
        ids = torch.full((len(rows), T), self.vocab.pad, dtype=torch.long)
        tgt = torch.full((len(rows), T), -100, dtype=torch.long)
        for b, (seq, s) in enumerate(zip(rows, starts)):
            ids[b, : len(seq)] = torch.tensor(seq)
            tgt[b, s - 1: len(seq) - 1] = torch.tensor(seq[s:])      # predict answer tokens (and <eos>)
        ids, tgt = ids.to(self.device), tgt.to(self.device)
        rows = tgt >= 0
        logits = self.net(ids, rows=rows)                               # (N, V) at answer positions only
        return F.cross_entropy(logits, tgt[rows])

    # -------------------------------------------------------- generation
    def _generate(self, seqs, prompt, max_new_tokens):
        ctx = torch.tensor([self._context(f, prompt) for f in seqs], device=self.device)   # (B, T)
        return self._greedy(ctx, max_new_tokens)

    def kernel_ok(self) -> bool:
        """The C++ decoding loop serves float32 models on the CPU."""
        return self.device.type == "cpu" and self.net.tok.weight.dtype == torch.float32

    def _use_kernel(self) -> bool:
        """Whether to decode with the C++ loop, per `self.backend` (checked)."""
        if self.backend not in ("auto", "kernel", "torch"):
            raise FaceLangError(f"backend must be 'auto', 'kernel' or 'torch', got {self.backend!r}")
        if self.backend == "kernel" and not self.kernel_ok():
            raise FaceLangError("the decoding kernel runs float32 models on the CPU; set backend='torch'")
        return self.backend != "torch" and self.kernel_ok()

    def _greedy(self, ctx: torch.Tensor, max_new_tokens: int) -> list[str]:
        """Greedy answers after the contexts ctx (B, T). The context goes
        through torch in one forward (face reader, code features); the answer
        is decoded token by token by the C++ loop (csrc/decode) when
        `self.backend` allows it (CPU, float32), else by the torch loop below,
        its twin (tests check that both give the same ids)."""
        B, T = ctx.shape
        face0, eos = self.vocab.face0, self.vocab.eos
        if self._use_kernel():
            from .. import _kernels
            from .gpt import KVCache

            caches = [KVCache(T + max_new_tokens) for _ in self.net.blocks]
            logits = self.net(ctx, 0, caches, last_only=True)[:, :face0].contiguous()    # (B, text tokens)
            rng = torch.zeros(1, dtype=torch.int64)                                       # unused when greedy
            ids = _kernels.decode(self.net.decode_weights(face0), [(c.k, c.v) for c in caches], logits, B=B,
                                  n_tokens=max_new_tokens, n_past=T, pos=T, temperature=0.0, rng_state=rng,
                                  stop_id=eos).tolist()                                   # (B, n)
        else:
            ids = self._greedy_torch(ctx, max_new_tokens)
        return self._texts(ids)

    def _greedy_torch(self, ctx: torch.Tensor, max_new_tokens: int) -> list[list[int]]:
        B, T = ctx.shape
        caches = [[None, None] for _ in self.net.blocks]
        logits = self.net(ctx, 0, caches, last_only=True)              # (B, V)
        done = torch.zeros(B, dtype=torch.bool, device=ctx.device)
        gen = []
        for step in range(max_new_tokens):
            logits[:, self.vocab.face0:] = float("-inf")                # answers are text only
            nxt = logits.argmax(-1)                                     # (B,)
            nxt = torch.where(done, torch.full_like(nxt, self.vocab.eos), nxt)
            gen.append(nxt)
            done |= nxt == self.vocab.eos
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            logits = self.net(nxt[:, None], T + step, caches, last_only=True)
        return torch.stack(gen, 1).tolist()                             # (B, n)

    def _texts(self, ids: list[list[int]]) -> list[str]:
        texts = []
        for row in ids:
            if self.vocab.eos in row:
                row = row[: row.index(self.vocab.eos)]
            texts.append(self.vocab.decode(row))
        return texts

    def _beam_stepper(self, ctx: torch.Tensor, max_new_tokens: int, beams: int):
        """Prefill one context ctx (1, T) -> (logits (1, text tokens) of the
        first answer token, step) where step(rows, ids, n) keeps the cached
        rows `rows` (in that order), feeds ids (one per kept row) as the
        answer's token n and returns their logits (A, text tokens). The C++
        loop's single step (csrc/decode) when the backend allows it, else torch."""
        face0, T = self.vocab.face0, ctx.shape[1]
        dev = self.device
        if self._use_kernel():
            from .. import _kernels
            from .gpt import KVCache

            one = [KVCache(T + max_new_tokens) for _ in self.net.blocks]
            logits = self.net(ctx, 0, one, last_only=True)[:, :face0]                   # (1, K)
            # per layer: keys and values of every beam, (beams, H, cap, Dh), and a spare
            # of each that the kept rows are gathered into (then the two swap: one copy)
            kv = [[c.k.expand(beams, -1, -1, -1).contiguous(), c.v.expand(beams, -1, -1, -1).contiguous()]
                  for c in one]
            spare = [[torch.empty_like(k), torch.empty_like(v)] for k, v in kv]
            weights = self.net.decode_weights(face0)

            def step(rows, ids, n):
                A, S = len(rows), T + n
                if rows != list(range(A)):
                    idx = torch.tensor(rows)
                    for cur, nxt in zip(kv, spare):
                        for j in (0, 1):
                            torch.index_select(cur[j], 0, idx, out=nxt[j][:A])
                            cur[j], nxt[j] = nxt[j], cur[j]
                return _kernels.decode_step(weights, [(k[:A], v[:A]) for k, v in kv], torch.tensor(ids),
                                            n_past=S, pos=S)
            return logits, step

        caches = [[None, None] for _ in self.net.blocks]
        logits = self.net(ctx, 0, caches, last_only=True)[:, :face0]                    # (1, K)

        def step(rows, ids, n):
            idx = torch.tensor(rows, device=dev)
            for c in caches:
                c[0], c[1] = c[0][idx], c[1][idx]
            ids = torch.tensor(ids, device=dev)[:, None]                                 # (A, 1)
            return self.net(ids, T + n, caches, last_only=True)[:, :face0]
        return logits, step

    @torch.no_grad()
    def _beams(self, seq, prompt, max_new_tokens, beams, reject=None):
        """Beam search for one sequence -> up to `beams` finished answers,
        best first (score: summed log-probability over the answer's length,
        <eos> included, so short answers are not favoured). `reject(text)`:
        True drops a partial answer from the beam."""
        vocab = self.vocab
        ctx = torch.tensor([self._context(seq, prompt)], device=self.device)             # (1, T)
        logits, step_fn = self._beam_stepper(ctx, max_new_tokens, beams)                # answers are text only
        alive = [([], 0.0)]                                                             # (ids, summed logp)
        done: list[tuple[float, list]] = []
        # with `reject`, each beam offers more continuations than it keeps, so
        # that a beam whose likeliest next words are all rejected goes on with
        # the best allowed one (after "breaks into a subtly" a model stuck in a
        # loop ranks "breaks" first and the emotions below the top 8); without,
        # the top `beams` of each beam hold the global top `beams`
        width = min(logits.shape[-1], beams if reject is None else 8 * beams)
        for step in range(max_new_tokens):
            logp = torch.log_softmax(logits.float(), -1)                                # (A, K)
            top_lp, top_id = (t.tolist() for t in logp.topk(width, -1))                 # (A, width) each
            cand = sorted(((alive[a][1] + top_lp[a][j], a, top_id[a][j], j)
                           for a in range(len(alive)) for j in range(width)), reverse=True)
            nxt_alive, rows, ids = [], [], []
            for score, a, t, j in cand:
                if t == vocab.eos:
                    if j >= beams:       # an ending is only taken from a beam's top `beams`, as without reject
                        continue
                    n = len(alive[a][0]) + 1
                    done.append((score / n, alive[a][0]))
                elif len(nxt_alive) < beams and not (reject and reject(vocab.decode(alive[a][0] + [t]))):
                    nxt_alive.append((alive[a][0] + [t], score))
                    rows.append(a)
                    ids.append(t)
                if len(nxt_alive) == beams and len(done) >= beams:
                    break
            # stop once the best live beam, scored as it stands, is below the
            # beams-th finished answer (the usual heuristic: log-probs only fall)
            if not nxt_alive or step == max_new_tokens - 1 or (
                    len(done) >= beams and
                    max(sc / (len(i) + 1) for i, sc in nxt_alive) < sorted(d[0] for d in done)[-beams]):
                alive = nxt_alive or alive
                break
            alive = nxt_alive
            logits = step_fn(rows, ids, step)
        if not done:        # ran out of length (or every first token was rejected: no answer)
            done = [(sc / len(i), i) for i, sc in alive if i]
        done.sort(key=lambda d: -d[0])
        return [vocab.decode(ids) for _, ids in done[:beams]]

    # --------------------------------------------------------------- I/O
    def save(self, folder, extra: dict | None = None) -> Path:
        from safetensors.torch import save

        from ..atomic import write_atomic
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items() if k != "head.weight"}
        blob = save(state)
        write_atomic(folder / "model.safetensors", lambda f: f.write(blob))
        text = self.vocab.tok.to_str()
        write_atomic(folder / "tokenizer.json", lambda f: f.write(text.encode()))
        self._write_config(folder, {**(extra or {}), "model": self.cfg.to_dict()})
        return folder

    @classmethod
    def load(cls, folder: Path, meta: dict, device="cpu") -> "BuiltinCaptioner":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            cfg = CaptionerConfig.from_dict(meta["model"])
        except (KeyError, TypeError) as e:
            raise ModelFileError(f"{folder}/config.json: unreadable captioner config ({e})") from None
        for name in ("model.safetensors", "tokenizer.json"):
            if not (folder / name).is_file():
                raise ModelFileError(f"caption model '{folder}' has no {name}")
        vocab = TextVocab.load(folder / "tokenizer.json", int(meta["codebook_size"]))
        try:
            state = load_file(str(folder / "model.safetensors"))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(f"{folder}/model.safetensors: unreadable weights ({e})") from None
        model = cls(cfg, vocab, meta)
        try:
            missing, unexpected = model.net.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise ModelFileError(f"{folder}/model.safetensors: weights do not match config.json "
                                 f"({str(e).splitlines()[0]} ...)") from None
        missing = [k for k in missing if k != "head.weight"]
        if missing or unexpected:
            raise ModelFileError(f"{folder}/model.safetensors: weights do not match config.json "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.net.eval()
        return model.to(device)
