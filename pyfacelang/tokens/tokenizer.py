"""`FaceTokenizer`: motion rows in, one token per frame out, and back.

    tok = FaceTokenizer.load()                 # the tokenizer shipped in the package
    tokens = tok.encode(motion)                # (T, 55) -> (T,) int32
    motion = tok.decode(tokens)                # (T,) -> (T, 55)
    for row in live_rows: token = tok.push(row)   # streaming, same tokens as encode

A tokenizer is a folder: `config.json` (the `TokenizerConfig` and training
metadata) and `model.safetensors` (weights; no pickles).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .. import _kernels
from ..atomic import write_atomic
from ..errors import FaceLangError, ModelFileError, ShapeError
from .config import TokenizerConfig
from .geometry import MOTION_DIM, MOTION_NAMES, MotionGeometry, fill_invalid
from .model import GeoVQVAE

FORMAT = "pyfacelang-tokenizer/1"
SHIPPED = {"default": "geometric", "geometric": "geometric", "baseline": "coefficient", "coefficient": "coefficient"}


def shipped_path(name: str = "default") -> Path:
    """Folder of a tokenizer shipped in the package ('default' or 'baseline')."""
    if name not in SHIPPED:
        raise FaceLangError(f"no shipped tokenizer '{name}' (choose from {', '.join(sorted(SHIPPED))})")
    return Path(str(resources.files("pyfacelang.tokens").joinpath("data", SHIPPED[name])))


class FaceTokenizer:
    def __init__(self, model: GeoVQVAE, meta: dict | None = None):
        self.model = model.eval()
        self.meta = dict(meta or {})
        self._last = np.zeros(MOTION_DIM, np.float32)   # streaming state: last valid motion row

    # ------------------------------------------------------------------ I/O
    @classmethod
    def load(cls, path=None, *, geometry: MotionGeometry | None = None) -> "FaceTokenizer":
        """Load a tokenizer folder; None (or 'default' / 'baseline') loads one shipped in the package."""
        if path is None or str(path) in SHIPPED:
            folder = shipped_path("default" if path is None else str(path))
        else:
            folder = Path(path)
        cfg_file, weights = folder / "config.json", folder / "model.safetensors"
        if not folder.is_dir():
            raise ModelFileError(f"tokenizer '{folder}' not found (expected a folder with config.json and "
                                 "model.safetensors, as written by `pyfacelang train tokenizer`)")
        for f in (cfg_file, weights):
            if not f.is_file():
                raise ModelFileError(f"tokenizer '{folder}' has no {f.name}")
        try:
            meta = json.loads(cfg_file.read_text())
            if meta.get("format") != FORMAT:
                raise ModelFileError(f"{cfg_file}: not a pyfacelang tokenizer config (format {meta.get('format')!r})")
            cfg = TokenizerConfig.from_dict(meta["model"])
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFileError(f"{cfg_file}: unreadable tokenizer config ({e})") from None
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(f"{weights}: unreadable weights ({e})") from None
        model = GeoVQVAE(cfg, geometry)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise ModelFileError(f"{weights}: weights do not match config.json ({str(e).splitlines()[0]} ...)") from None
        missing = [k for k in missing if not k.startswith("geometry.")]
        if missing or unexpected:
            raise ModelFileError(f"{weights}: weights do not match config.json "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if not bool(model.codebook.initted):
            raise ModelFileError(f"{weights}: codebook was never trained")
        return cls(model, meta)

    def save(self, folder, extra: dict | None = None) -> Path:
        """Write config.json and model.safetensors into `folder` (each atomically)."""
        from safetensors.torch import save
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()
                 if not k.startswith("geometry.")}
        blob = save(state)
        write_atomic(folder / "model.safetensors", lambda f: f.write(blob))
        meta = {**self.meta, **(extra or {}), "format": FORMAT, "model": self.model.cfg.to_dict(),
                "motion_names": list(MOTION_NAMES)}
        self.meta = meta
        text = json.dumps(meta, indent=1)
        write_atomic(folder / "config.json", lambda f: f.write(text.encode()))
        return folder

    # ------------------------------------------------------------ properties
    @property
    def sha256(self) -> str:
        """Hash of the weights (the bytes `save` writes to model.safetensors).
        Models trained on this tokenizer's tokens record it and refuse others."""
        if getattr(self, "_sha256", None) is None:
            import hashlib

            from safetensors.torch import save
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()
                     if not k.startswith("geometry.")}
            self._sha256 = hashlib.sha256(save(state)).hexdigest()
        return self._sha256

    @property
    def config(self) -> TokenizerConfig:
        return self.model.cfg

    @property
    def codebook_size(self) -> int:
        return self.model.cfg.codebook_size

    @property
    def device(self) -> torch.device:
        return self.model.codebook.embed.device

    def to(self, device) -> "FaceTokenizer":
        self.model.to(device)
        return self

    # -------------------------------------------------------------- encoding
    def _check_motion(self, motion) -> np.ndarray:
        m = np.asarray(motion.detach().cpu() if isinstance(motion, torch.Tensor) else motion, dtype=np.float32)
        if m.ndim != 2 or m.shape[1] != MOTION_DIM:
            raise ShapeError(f"motion: expected shape (T, {MOTION_DIM}) (52 ARKit weights + head rotation), "
                             f"got {m.shape}")
        return m

    @torch.no_grad()
    def _tokens(self, rows: np.ndarray) -> np.ndarray:
        embed = self.model.codebook.embed
        if embed.device.type == "cpu":     # the MLP kernel: one frame in ~35 us, alone or in a batch
            z = self._cpu_encoder()(rows)                                    # (T, D)
            idx, _ = _kernels.nearest_code(z, embed, codebook_checked=True)
        else:
            z = self.model.encode(torch.from_numpy(rows).to(embed.device))  # (T, D)
            idx, _ = _kernels.nearest_code(z.contiguous(), embed)
        return idx.cpu().numpy().astype(np.int32)

    def _cpu_encoder(self) -> "_kernels.MLP":
        """The encoder for the CPU kernel, rebuilt (and the codebook checked
        finite) when any encoder weight or the codebook changes: in-place
        updates and loads move their version counters."""
        lin = [m for m in self.model.encoder.net if isinstance(m, torch.nn.Linear)]
        watch = [*(m.weight for m in lin), *(m.bias for m in lin), self.model.codebook.embed]
        key = tuple((id(p), p._version, p.data_ptr()) for p in watch)
        if getattr(self, "_mlp_key", None) != key:
            _kernels._check_finite(self.model.codebook.embed, "tokenizer: the codebook entries")
            self._mlp = _kernels.MLP(*self.model.encoder_layers(), "none")
            self._mlp_key = key
        return self._mlp

    def encode(self, motion, valid=None, switch_cost: float = 0.0) -> np.ndarray:
        """(T, 55) motion rows -> (T,) int32 tokens, exactly one per row. Rows
        that are invalid (`valid` False) or non-finite hold the last valid row.
        switch_cost > 0: the whole sequence is encoded at once, each change of
        code costing that much squared latent distance (see `smoothing`), so
        the tokens flicker less; 0 (the default): each frame's nearest code,
        the tokens `push` gives."""
        m = self._check_motion(motion)
        if valid is not None and len(np.asarray(valid)) != len(m):
            raise ShapeError(f"valid: expected {len(m)} flags, got {len(np.asarray(valid))}")
        filled, _ = fill_invalid(m, valid)
        if len(filled) == 0:
            return np.zeros(0, np.int32)
        if switch_cost:
            return self._smoothed_tokens(filled, switch_cost)
        return self._tokens(filled)

    @torch.no_grad()
    def _smoothed_tokens(self, rows: np.ndarray, switch_cost: float) -> np.ndarray:
        from .model import sq_dists
        from .smoothing import smooth_codes
        embed = self.model.codebook.embed
        if embed.device.type == "cpu":
            z = torch.from_numpy(np.asarray(self._cpu_encoder()(rows), np.float32))     # (T, D)
        else:
            z = self.model.encode(torch.from_numpy(rows).to(embed.device))
        return smooth_codes(sq_dists(z, embed).clamp_min(0).cpu().numpy(), switch_cost).astype(np.int32)

    def push(self, row, valid: bool = True) -> int:
        """Streaming: one motion row (55,) -> its token, as soon as the frame is
        fitted. Same tokens as `encode` on the whole sequence."""
        r = np.asarray(row.detach().cpu() if isinstance(row, torch.Tensor) else row, dtype=np.float32)
        if r.shape != (MOTION_DIM,):
            raise ShapeError(f"push: expected one motion row of {MOTION_DIM} values, got shape {r.shape}")
        if valid and np.isfinite(r).all():
            self._last = r.copy()
        return int(self._tokens(self._last[None])[0])

    def reset(self) -> None:
        """Forget the streaming state (start of a new sequence)."""
        self._last = np.zeros(MOTION_DIM, np.float32)

    # -------------------------------------------------------------- decoding
    @torch.no_grad()
    def decode(self, tokens) -> np.ndarray:
        """(T,) token ids -> (T, 55) float32 motion (ARKit weights in [0, 1])."""
        t = np.asarray(tokens.detach().cpu() if isinstance(tokens, torch.Tensor) else tokens)
        if t.ndim != 1:
            raise ShapeError(f"tokens: expected a 1-D sequence, got shape {t.shape}")
        if t.dtype.kind not in "iu":
            raise ShapeError(f"tokens: expected integer ids, got {t.dtype}")
        bad = (t < 0) | (t >= self.codebook_size)
        if bad.any():
            k = int(np.argmax(bad))
            raise ShapeError(f"tokens: unknown token id {int(t[k])} at frame {k} "
                             f"(this tokenizer has ids 0..{self.codebook_size - 1})")
        if len(t) == 0:
            return np.zeros((0, MOTION_DIM), np.float32)
        out = self.model.decode_tokens(torch.from_numpy(t.astype(np.int64))[None].to(self.device))
        return out[0].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def code_motion(self) -> np.ndarray:
        """(K, 55) float32: the motion row each code decodes to when it is
        held (the middle frame of 19 equal tokens: the decoder's whole view).
        Models that read tokens use it as what each token looks like."""
        K = self.codebook_size
        ids = torch.arange(K, device=self.device)[:, None].expand(K, 19)      # (K, 19)
        return self.model.decode_tokens(ids)[:, 9].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def code_neighbours(self, k: int) -> np.ndarray:
        """(K, k) int64: for each code, the k other codes whose held motion
        (`code_motion`) looks most like it, nearest first, by the RMS distance
        of the posed, identity-free vertices (mm)."""
        K = self.codebook_size
        if not 1 <= k < K:
            raise ShapeError(f"code_neighbours: k must be in [1, {K - 1}], got {k}")
        geo = self.model.geometry
        x = geo.posed(torch.from_numpy(self.code_motion()).to(self.device)).reshape(K, -1).double()   # (K, 3V)
        # float64 without the matrix-product shortcut, so the order does not
        # depend on rounding (float32 cdist reorders ~4% of rows)
        d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") / geo.V ** 0.5        # (K, K) mm
        d.fill_diagonal_(float("inf"))
        return d.topk(k, dim=1, largest=False).indices.cpu().numpy().astype(np.int64)

    def close(self) -> None:
        self.reset()

    def __enter__(self) -> "FaceTokenizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
