"""A small decoder-only transformer with a KV cache (stateless maths; the
captioner in `builtin.py` owns the vocabulary and decoding loop)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import CaptionerConfig


class KVCache:
    """Keys and values of one block, preallocated for `capacity` positions
    (appending is a copy into place, not a growing concatenation)."""

    def __init__(self, capacity: int):
        self.capacity, self.n = capacity, 0
        self.k = self.v = None

    def append(self, k, v):
        """k, v (B, H, T, Dh) -> all keys/values so far (B, H, n, Dh)."""
        B, H, T, Dh = k.shape
        if self.k is None:
            self.k = k.new_empty(B, H, self.capacity, Dh)
            self.v = v.new_empty(B, H, self.capacity, Dh)
        if self.n + T > self.capacity:
            raise IndexError(f"KV cache full ({self.capacity} positions)")
        self.k[:, :, self.n: self.n + T] = k
        self.v[:, :, self.n: self.n + T] = v
        self.n += T
        return self.k[:, :, : self.n], self.v[:, :, : self.n]


class Block(nn.Module):
    def __init__(self, cfg: CaptionerConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)
        self.p = cfg.dropout

    def forward(self, x, cache=None, mask=None):
        """`mask` (B, 1, T, S) bool, True = may attend (S: cached + new keys);
        None: causal over the new rows."""
        B, T, D = x.shape
        H = self.n_head
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))     # (B, H, T, Dh)
        if isinstance(cache, KVCache):
            k, v = cache.append(k, v)
        elif cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        # causal over the new rows; a single new row attends to every cached key
        p = self.p if self.training else 0.0
        if mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1 and k.shape[2] == T, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, T, D)                                       # (B, T, D)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.mlp(self.ln2(x)))


class FaceReader(nn.Module):
    """Residual non-causal dilated 1-D convolutions over the face tokens of
    each row (cfg.face_conv layers). Rows keep their layout: positions that
    are not face tokens are zero inside the stack (so the span's edges are
    zero-padded) and pass through unchanged."""

    def __init__(self, d_model: int, layers: int, kernel: int = 5):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(layers))
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel, padding=(kernel // 2) * 2 ** i, dilation=2 ** i)
                                   for i in range(layers))

    def forward(self, x, is_face):
        """x (B, T, D), is_face (B, T) bool -> (B, T, D)."""
        m = is_face[..., None].to(x.dtype)                                          # (B, T, 1)
        h = x * m
        for norm, conv in zip(self.norms, self.convs):
            u = (norm(h) * m).transpose(1, 2)                                      # (B, D, T)
            h = h + F.gelu(conv(u)).transpose(1, 2) * m                            # (B, T, D)
        return x * (1 - m) + h


class GPT(nn.Module):
    """`face0`, `n_codes`, `feat_dim`: with cfg.code_features, ids face0 ..
    face0 + n_codes - 1 are face tokens, and each also gets a projection of
    its code's decoded motion (the buffer `face_feat`, (n_codes, feat_dim)),
    so tokens that look alike start with similar embeddings."""

    def __init__(self, cfg: CaptionerConfig, vocab_size: int, face0: int = 0, n_codes: int = 0, feat_dim: int = 55):
        super().__init__()
        self.cfg = cfg
        self.face0, self.n_codes = face0, n_codes
        if cfg.code_features:
            self.register_buffer("face_feat", torch.zeros(n_codes, feat_dim))
            self.face_proj = nn.Sequential(nn.Linear(feat_dim, cfg.d_model), nn.GELU(),
                                           nn.Linear(cfg.d_model, cfg.d_model))
        self.face_reader = FaceReader(cfg.d_model, cfg.face_conv) if cfg.face_conv > 0 else None
        self.tok = nn.Embedding(vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight   # tied input/output embeddings
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def decode_weights(self, n_out: int) -> dict:
        """The tensors the CPU decoding kernel reads (`_kernels.decode`) for
        generating ids below `n_out` (the text tokens: answers never hold face
        tokens, and generated ids are fed back as plain embeddings, which is
        what `forward` does for a non-face id): detached float32 views of
        the parameters, no copies."""
        from .._kernels import block_weights

        if not 0 < n_out <= self.tok.num_embeddings - 1:
            raise ValueError(f"n_out must be in [1, {self.tok.num_embeddings - 1}], got {n_out}")
        f = lambda t: t.detach().float().contiguous()  # noqa: E731
        tok = f(self.tok.weight)
        return {"tok_emb": tok[: n_out + 1], "pos_emb": f(self.pos.weight), "lnf_w": f(self.ln.weight),
                "lnf_b": f(self.ln.bias), "head_w": tok[:n_out], "layers": block_weights(self.blocks)}

    def forward(self, ids, pos0: int = 0, caches=None, last_only: bool = False, rows=None):
        """ids (B, T) -> logits (B, T, V) (or (B, V) with last_only). With
        `caches` (a list of [k, v] per block) keys/values are appended, so
        decoding one token at a time costs one row per layer. `pos0` is the
        position of ids[:, 0]. Batches are right-padded (causal attention
        never lets a real row see the padding after it). `rows` (B, T) bool:
        logits only at those positions, (N, V) (training on answers only)."""
        B, T = ids.shape
        pos = torch.arange(pos0, pos0 + T, device=ids.device)                     # (T,)
        x = self.tok(ids) + self.pos(pos)[None]                                     # (B, T, D)
        is_face = (ids >= self.face0) & (ids < self.face0 + self.n_codes)            # (B, T)
        if self.cfg.code_features:
            feat = self.face_feat[(ids - self.face0).clamp(0, self.n_codes - 1)]     # (B, T, F)
            x = x + self.face_proj(feat) * is_face[..., None]
        if self.face_reader is not None and bool(is_face.any()):
            x = self.face_reader(x, is_face)
        x = self.drop(x)
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i])
        x = self.ln(x)
        if last_only:
            x = x[:, -1]
        elif rows is not None:
            x = x[rows]                                                             # (N, D)
        return self.head(x)
