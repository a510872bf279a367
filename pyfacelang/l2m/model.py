"""The motion transformer (stateless maths): a text prefix, then face tokens
under causal attention, with a KV cache for generation.

    [w_1 ... w_L] <bos> t_1 ... t_{T-1}   ->   t_1 ... t_T

The prefix is the text encoder's per-word embeddings projected to the model
width (not new vocabulary); the words attend to each other, every face token
attends to all words and to the tokens before it. The global baseline has a
one-vector prefix: the masked mean of the word embeddings. A learnt null
prefix stands for "no text" (classifier-free guidance).

With `code_features`, each code's decoded motion row (the buffer
`code_feat`, standardised over the codebook) is projected into both its input
embedding and its output row, so codes that look alike start alike and share
probability. Both are a fixed function of the weights, so the decoding kernel
reads them folded into its token and head tables (`tables`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._kernels import block_weights
from ..errors import ModelFileError
from ..m2l.gpt import Block
from ..tokens.geometry import MOTION_DIM
from .config import MotionGPTConfig


def length_bin(n_frames, fps: float, bins: int) -> torch.Tensor:
    """Frame counts -> 0.5 s bins (clamped to the table)."""
    n = torch.as_tensor(n_frames, dtype=torch.float32)
    return (n / (fps * 0.5)).round().long().clamp(0, bins - 1)


class MotionGPT(nn.Module):
    def __init__(self, cfg: MotionGPTConfig, text_dim: int, n_codes: int):
        super().__init__()
        self.cfg, self.n_codes, self.text_dim = cfg, n_codes, text_dim
        d = cfg.d_model
        self.cond_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, d))
        self.null = nn.Parameter(torch.zeros(1, d))
        self.prefix_pos = nn.Embedding(cfg.max_prefix, d)
        self.tok = nn.Embedding(n_codes + 1 + int(cfg.mask_token), d)   # then <bos> (and <mask>)
        self.pos = nn.Embedding(cfg.max_frames, d)
        self.length = nn.Embedding(cfg.length_bins, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_codes, bias=False)
        if cfg.code_features:
            self.register_buffer("code_feat", torch.zeros(n_codes, MOTION_DIM))
            self.code_in = nn.Sequential(nn.Linear(MOTION_DIM, d), nn.GELU(), nn.Linear(d, d))
            self.code_out = nn.Sequential(nn.Linear(MOTION_DIM, d), nn.GELU(), nn.Linear(d, d))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.null, std=0.02)

    @property
    def bos(self) -> int:
        return self.n_codes

    @property
    def mask_id(self) -> int | None:
        """The <mask> input id of a model trained with masked inputs, else None."""
        return self.n_codes + 1 if self.cfg.mask_token else None

    def set_code_motion(self, code_motion) -> None:
        """Fill `code_feat` from the tokenizer's `code_motion()` (K, 55),
        standardised per column over the codebook (head rotations in radians
        are ~10x smaller than the weights)."""
        if not self.cfg.code_features:
            return
        m = np.asarray(code_motion, np.float64)
        if m.shape != tuple(self.code_feat.shape) or not np.isfinite(m).all():
            raise ModelFileError(f"code_features needs the tokenizer's finite code motion of shape "
                                 f"{tuple(self.code_feat.shape)}, got {m.shape}")
        z = (m - m.mean(0)) / np.maximum(m.std(0), 1e-6)                            # (K, 55)
        self.code_feat.copy_(torch.as_tensor(z, dtype=torch.float32))

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> input embeddings (K + 1, D) (row K is <bos>; a <mask> row
        follows in models with `mask_token`) and output rows (K, D), with the
        code features added when the model has them."""
        if not self.cfg.code_features:
            return self.tok.weight, self.head.weight
        extra = self.tok.weight.shape[0] - self.n_codes
        tok = self.tok.weight + F.pad(self.code_in(self.code_feat), (0, 0, 0, extra))   # <bos>, <mask> get none
        return tok, self.head.weight + self.code_out(self.code_feat)

    # -------------------------------------------------------------- prefix
    def prefix(self, emb: torch.Tensor, mask: torch.Tensor, uncond: torch.Tensor | None = None):
        """Text embeddings (B, L, E) + mask (B, L) -> prefix (B, P, D) + mask
        (B, P). Rows where `uncond` (B,) is True get the null prefix."""
        if self.cfg.conditioning == "global":
            w = mask.to(emb.dtype)[..., None]                                       # (B, L, 1)
            emb = (emb * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)   # (B, 1, E)
            mask = mask.any(1, keepdim=True)                                        # (B, 1)
        emb, mask = emb[:, : self.cfg.max_prefix], mask[:, : self.cfg.max_prefix]
        P = self.cond_proj(emb)                                                     # (B, P, D)
        if uncond is not None and bool(uncond.any()):
            P = torch.where(uncond[:, None, None], torch.zeros_like(P), P)
            P[:, 0] = torch.where(uncond[:, None], self.null.expand(len(P), -1), P[:, 0])
            first = torch.zeros_like(mask)
            first[:, 0] = True
            mask = torch.where(uncond[:, None], first, mask)
        L = P.shape[1]
        return P + self.prefix_pos(torch.arange(L, device=P.device))[None], mask

    def null_prefix(self, B: int, device):
        P = (self.null + self.prefix_pos.weight[:1]).expand(B, 1, -1)
        return P, torch.ones(B, 1, dtype=torch.bool, device=device)

    # ------------------------------------------------------------- forward
    def _motion_embed(self, ids, pos0: int, lbin, tok):
        T = ids.shape[1]
        pos = torch.arange(pos0, pos0 + T, device=ids.device)
        return F.embedding(ids, tok) + self.pos(pos)[None] + self.length(lbin)[:, None]   # (B, T, D)

    def forward(self, P, pmask, ids, lbin, caches=None, last_only: bool = False, tables=None):
        """Prefix (B, L, D) + mask, motion ids (B, T) starting with <bos>,
        length bins (B,) -> logits (B, T, K) (or (B, K) with last_only) for
        the next face token at each motion position. With `caches` (a list
        of [k, v] per block), keys/values are kept for `step`. `tables`:
        `self.tables()` when the caller already has them (generation)."""
        B, L, _ = P.shape
        T = ids.shape[1]
        tok, head = self.tables() if tables is None else tables
        x = torch.cat([P, self._motion_embed(ids, 0, lbin, tok)], 1)                 # (B, L + T, D)
        S = L + T
        q = torch.arange(S, device=P.device)
        causal = (q[None, :] <= q[:, None]) | (q[None, :] < L)                        # (S, S) motion sees words
        keys = torch.cat([pmask, torch.ones(B, T, dtype=torch.bool, device=P.device)], 1)   # (B, S)
        mask = causal[None, None] & keys[:, None, None, :]                           # (B, 1, S, S)
        x = self.drop(x)
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i], mask)
        x = self.ln(x[:, L:])
        return F.linear(x[:, -1] if last_only else x, head)

    def decode_weights(self) -> dict:
        """The tensors the CPU decoding kernel reads (`_kernels.decode`),
        detached views of the parameters (float32, contiguous)."""
        f = lambda t: t.detach().float().contiguous()  # noqa: E731
        with torch.no_grad():
            tok, head = self.tables()
        layers = block_weights(self.blocks)
        return {"tok_emb": f(tok[: self.n_codes + 1]), "pos_emb": f(self.pos.weight), "lnf_w": f(self.ln.weight),
                "lnf_b": f(self.ln.bias), "head_w": f(head), "layers": layers}

    def step(self, ids, pos: int, lbin, keys, caches, tables=None):
        """One new token per row: ids (B, 1) at motion position `pos`; `keys`
        (B, S) is the key mask including this token (None: every key). -> logits (B, K)."""
        tok, head = self.tables() if tables is None else tables
        x = self._motion_embed(ids, pos, lbin, tok)
        mask = None if keys is None else keys[:, None, None, :]                       # (B, 1, 1, S)
        for i, blk in enumerate(self.blocks):
            x = blk(x, caches[i], mask)
        return F.linear(self.ln(x[:, -1]), head)
