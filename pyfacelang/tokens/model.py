"""The geometric VQ-VAE: per-frame encoder, EMA codebook, windowed decoder.

    motion (B, T, 55) -> features (B, T, F) -> encoder -> z (B, T, D)
      -> nearest code -> token (B, T) -> code vectors (B, T, D)
      -> decoder (dilated temporal convs) -> motion (B, T, 55)

The encoder is per frame (causal by construction); the decoder looks at a
window of tokens. Stateless maths only; `FaceTokenizer` is the stateful API.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .config import RESTART_SOURCES, TokenizerConfig
from .geometry import DISP_SCALE, MOTION_DIM, N_EXPR, ROT_SCALE, MotionGeometry, coefficient_features


def sq_dists(z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) squared distances via one matmul (training path)."""
    return (codes * codes).sum(1)[None, :] - 2.0 * z @ codes.T + (z * z).sum(1, keepdim=True)


class EMACodebook(nn.Module):
    """Codebook updated by exponential moving averages of the vectors assigned
    to each code (no gradient), with restarts of dead codes from live encoder
    outputs, so usage stays high."""

    def __init__(self, size: int, dim: int, decay: float, dead_threshold: float):
        super().__init__()
        self.size, self.dim, self.decay, self.dead_threshold = size, dim, decay, dead_threshold
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_sum", torch.zeros(size, dim))
        self.register_buffer("initted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _init(self, z: torch.Tensor) -> None:
        pick = torch.randint(0, z.shape[0], (self.size,), device=z.device)
        self.embed.copy_(z[pick] + 1e-3 * torch.randn_like(z[pick]))
        self.embed_sum.copy_(self.embed)
        self.cluster_size.fill_(1.0)
        self.initted.fill_(True)

    @torch.no_grad()
    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) int64 nearest code (exact fp32, torch)."""
        return sq_dists(z, self.embed).argmin(1)

    @torch.no_grad()
    def update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.size).to(z.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, z)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        eps = 1e-5
        smoothed = (self.cluster_size + eps) / (n + self.size * eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, source: str = "random") -> int:
        """Move codes whose EMA count fell under the threshold onto encoder
        outputs of this batch: uniformly drawn ("random"), or drawn in
        proportion to their squared distance to the nearest live code
        ("error") or to its square ("error2"). Returns how many were restarted."""
        dead = torch.nonzero(self.cluster_size < self.dead_threshold).flatten()
        if len(dead) == 0:
            return 0
        if source not in RESTART_SOURCES:
            raise ValueError(f"restart source must be one of {RESTART_SOURCES}, got '{source}'")
        live = self.cluster_size >= self.dead_threshold
        w = None
        if source != "random" and bool(live.any()):
            d = sq_dists(z, self.embed[live]).min(1).values.clamp_min(0.0)     # (N,)
            w = d * d if source == "error2" else d
        if w is None or float(w.sum()) <= 0.0:      # "random", or nothing to weigh by: uniform
            pick = torch.randint(0, z.shape[0], (len(dead),), device=z.device)
        else:
            pick = torch.multinomial(w, len(dead), replacement=True)
        fresh = z[pick] + 1e-3 * z.std() * torch.randn(len(dead), self.dim, device=z.device)
        self.embed[dead] = fresh
        self.cluster_size[dead] = self.dead_threshold * 2
        self.embed_sum[dead] = fresh * self.cluster_size[dead, None]
        return len(dead)


class Encoder(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Block(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation, padding_mode="replicate")
        self.mix = nn.Conv1d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.gelu(self.conv(F.gelu(x))))


class Decoder(nn.Module):
    """Code vectors (B, T, D) -> motion (B, T, 55); frame t sees tokens t-R..t+R."""

    def __init__(self, code_dim: int, hidden: int, dilations: tuple):
        super().__init__()
        self.inp = nn.Conv1d(code_dim, hidden, 1)
        self.blocks = nn.Sequential(*[_Block(hidden, d) for d in dilations])
        self.out = nn.Conv1d(hidden, MOTION_DIM, 1)
        self.radius = sum(dilations)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.inp(codes.transpose(1, 2)))   # (B, H, T)
        y = self.out(F.gelu(h)).transpose(1, 2)             # (B, T, 55)
        return torch.cat([y[..., :N_EXPR], y[..., N_EXPR:] / ROT_SCALE], -1)


class GeoVQVAE(nn.Module):
    def __init__(self, cfg: TokenizerConfig, geometry: MotionGeometry | None = None):
        super().__init__()
        self.cfg = cfg
        self.geometry = geometry if geometry is not None else MotionGeometry()
        in_dim = self.geometry.feature_dim if cfg.space == "geometry" else MOTION_DIM
        self.encoder = Encoder(in_dim, cfg.enc_hidden, cfg.code_dim)
        self.codebook = EMACodebook(cfg.codebook_size, cfg.code_dim, cfg.ema_decay, cfg.dead_threshold)
        self.decoder = Decoder(cfg.code_dim, cfg.dec_hidden, cfg.dec_dilations)

    def features(self, motion: torch.Tensor) -> torch.Tensor:
        if self.cfg.space == "geometry":
            return self.geometry.features(motion)
        return coefficient_features(motion)

    def encode(self, motion: torch.Tensor) -> torch.Tensor:
        """(..., 55) -> (..., D) continuous latents.

        In geometry space the first layer acts on the features (vertex
        displacements and rotation). The rig's displacements are linear in
        the ARKit weights (d = basis^T w), so that layer is applied as
        (W1 basis^T) w: the same function of the geometry at ~1/27 the cost."""
        if self.cfg.space != "geometry":
            return self.encoder(self.features(motion))
        first = self.encoder.net[0]
        h = F.linear(motion[..., :N_EXPR], self._effective_weight(first)) \
            + F.linear(motion[..., N_EXPR:] * ROT_SCALE, first.weight[:, 3 * self.geometry.V:], first.bias)
        # the other layers as plain functions on the same parameters: the same
        # ops as calling the modules, without their per-call overhead (hooks,
        # slicing the Sequential), which was half of the ~1 ms the live loop
        # spent encoding one row per frame
        for m in itertools.islice(self.encoder.net, 1, None):
            h = F.linear(h, m.weight, m.bias) if isinstance(m, nn.Linear) else \
                F.gelu(h, approximate=m.approximate) if isinstance(m, nn.GELU) else m(h)
        return h

    @torch.no_grad()
    def encoder_layers(self) -> tuple[list, list]:
        """The encoder as plain layers on raw motion rows (..., 55):
        (weights [(out, in)], biases), GELU between them, the same function
        as `encode`. The first layer takes both input spaces to a (H, 55)
        weight: the geometry features through the rig's basis (see `encode`)
        and the rotation's ROT_SCALE folded in. For the CPU kernel
        (`pyfacelang._kernels.MLP`) that streams one frame at a time."""
        first = self.encoder.net[0]
        if self.cfg.space == "geometry":
            expr = self._effective_weight(first)                              # (H, 52)
            rot = first.weight[:, 3 * self.geometry.V:]                       # (H, 3)
        else:
            expr, rot = first.weight[:, :N_EXPR], first.weight[:, N_EXPR:]
        layers = [m for m in self.encoder.net if isinstance(m, nn.Linear)]
        weights = [torch.cat([expr, rot * ROT_SCALE], 1)] + [m.weight for m in layers[1:]]   # (H, 55) first
        return [w.detach() for w in weights], [m.bias.detach() for m in layers]

    def _effective_weight(self, first: nn.Linear) -> torch.Tensor:
        """(H, 52) first-layer weight on the ARKit weights. Computing it is a
        (H, 3V) x (3V, 52) product, far more than encoding one frame, so out
        of training it is cached until the layer's weights change (their
        version counter moves on any in-place update or load)."""
        key = (first.weight._version, first.weight.data_ptr(), first.weight.device)
        if torch.is_grad_enabled() or getattr(self, "_w_eff_key", None) != key:
            g = self.geometry
            n_disp = 3 * g.V
            w = first.weight[:, :n_disp] @ g.basis.reshape(N_EXPR, n_disp).T * DISP_SCALE   # (H, 52)
            if torch.is_grad_enabled():
                return w
            self._w_eff, self._w_eff_key = w, key
        return self._w_eff

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, 55) raw decoder output (expression not yet clamped)."""
        return self.decoder(codes)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) int -> (B, T, 55) motion, ARKit weights clamped to [0, 1]."""
        m = self.decode_codes(self.codebook.embed[tokens.long()])
        return torch.cat([m[..., :N_EXPR].clamp(0.0, 1.0), m[..., N_EXPR:]], -1)

    def forward(self, motion: torch.Tensor, quantize: bool = True):
        """Training pass on (B, T, 55): returns (decoded (B, T, 55), z (B*T, D), idx (B*T,), commit loss).
        quantize=False (autoencoder warm-up): the decoder reads the encoder's
        latents directly; idx is None and the codebook is untouched."""
        B, T, _ = motion.shape
        z = self.encode(motion).reshape(B * T, -1)          # (B*T, D)
        if not quantize:
            return self.decode_codes(z.reshape(B, T, -1)), z, None, z.new_zeros(())
        if not bool(self.codebook.initted):
            self.codebook._init(z.detach())
        idx = self.codebook.assign(z.detach())
        e = self.codebook.embed[idx]
        commit = F.mse_loss(z, e)
        zq = z + (e - z).detach()                           # straight-through
        return self.decode_codes(zq.reshape(B, T, -1)), z, idx, commit
