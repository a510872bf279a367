"""Python entry points for the C++/CUDA kernels in `pyfacelang._C`.

Each wrapper validates its tensors (dtype, shape, contiguity, one device) and
passes raw addresses to the extension; the device of the inputs picks the CPU
or CUDA path. Twins for testing live in `pyfacelang._reference`.
"""
from __future__ import annotations

import torch

from .errors import ShapeError

_C = None


def ext():
    """The compiled extension, imported on first use with a clear error."""
    global _C
    if _C is None:
        try:
            from . import _C as mod
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "pyfacelang._C is not built. Install the package with `pip install -e .` "
                f"(it builds the C++ extension with CMake): {e}") from e
        _C = mod
    return _C


def _f32(t: torch.Tensor, name: str, shape: tuple, device: torch.device) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ShapeError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    if t.device != device:
        raise ShapeError(f"{name}: on {t.device}, expected {device} like the other inputs")
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    return t.contiguous()


def _addr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _device_of(*tensors) -> torch.device:
    """The one device of the given tensors (CPU or CUDA), checked."""
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise ShapeError(f"argument {i}: expected a torch.Tensor, got {type(t).__name__}")
    device = tensors[0].device
    if device.type not in ("cpu", "cuda"):
        raise ShapeError(f"pyfacelang kernels run on CPU or CUDA tensors, not {device.type}")
    return device


def _launch(device: torch.device, fn) -> None:
    """Call fn(on_cuda, stream) with the stream of `device` (CUDA) and that
    device current, so pointers, stream and device always agree."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            fn(True, torch.cuda.current_stream(device).cuda_stream)
    else:
        fn(False, 0)


def blend(tmpl: torch.Tensor, basis: torch.Tensor, coeffs: torch.Tensor,
          rot: torch.Tensor | None = None, trans: torch.Tensor | None = None,
          scale: torch.Tensor | None = None, *, num_threads: int = 0) -> torch.Tensor:
    """Batched blendshapes + similarity transform (csrc/blend). No autograd.

    tmpl (V, 3), basis (K, V, 3), coeffs (B, K), rot (B, 3, 3) or None,
    trans (B, 3) or None, scale (B,) or None -> (B, V, 3) float32, on the
    inputs' device. num_threads: CPU worker threads (0 = all cores)."""
    device = _device_of(tmpl, basis, coeffs, *(x for x in (rot, trans, scale) if x is not None))
    V = tmpl.shape[0] if tmpl.dim() == 2 else -1
    tmpl = _f32(tmpl, "tmpl", (None, 3), device)
    K = basis.shape[0] if basis.dim() == 3 else -1
    basis = _f32(basis, "basis", (None, V, 3), device)
    B = coeffs.shape[0] if coeffs.dim() == 2 else -1
    coeffs = _f32(coeffs, "coeffs", (None, K), device)
    rot = None if rot is None else _f32(rot, "rot", (B, 3, 3), device)
    trans = None if trans is None else _f32(trans, "trans", (B, 3), device)
    scale = None if scale is None else _f32(scale, "scale", (B,), device)
    out = torch.empty((B, V, 3), dtype=torch.float32, device=device)
    if B == 0:
        return out
    with torch.no_grad():
        _launch(device, lambda on_cuda, stream: ext().blend(
            out.data_ptr(), tmpl.data_ptr(), _addr(basis) if K > 0 else 0, _addr(coeffs) if K > 0 else 0,
            _addr(rot), _addr(trans), _addr(scale), B, V, K, on_cuda, num_threads, stream))
    return out


def fit(model, obs: torch.Tensor, w: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor,
        trans: torch.Tensor, *, max_iters: int = 10, max_trials: int = 6, mu0: float = 1e-3,
        tol: float = 1e-6, chain: bool = False, num_threads: int = 0):
    """Bounded Levenberg-Marquardt fit of N frames (csrc/fit).

    model: a `pyfacelang.track.fit_model.FitModel` on the same device as the
    inputs. obs (N, V, 3) landmarks in pixels; starting values w (N, K),
    rot (N, 3, 3), scale (N,), trans (N, 3). Returns (w, rot, scale, trans,
    cost (N,), iters (N,) int32) as new tensors."""
    device = _device_of(obs, w, rot, scale, trans, model.tmpl)
    V, K = model.V, model.K
    obs = _f32(obs, "obs", (None, V, 3), device)
    N = obs.shape[0]
    w = _f32(w, "w", (N, K), device).clone()
    rot = _f32(rot, "rot", (N, 3, 3), device).clone()
    scale = _f32(scale, "scale", (N,), device).clone()
    trans = _f32(trans, "trans", (N, 3), device).clone()
    specs = {"tmpl": ((V, 3), torch.float32), "basis": ((K, V, 3), torch.float32), "weights": ((V,), torch.float32),
             "lo": ((K,), torch.float32), "hi": ((K,), torch.float32), "prior": ((K,), torch.float32),
             "l1": ((K,), torch.float32), "gram": ((K, K), torch.float64), "cross": ((K, K, 3), torch.float64),
             "bsum": ((K, 3), torch.float64), "gram_t": ((K,), torch.float64), "cross_t": ((K, 3), torch.float64)}
    for name, (shape, dtype) in specs.items():
        t = getattr(model, name)
        if t.device != device or not t.is_contiguous() or t.dtype != dtype or tuple(t.shape) != shape:
            raise ShapeError(f"fit model tensor '{name}' must be a contiguous {dtype} of shape {shape} on {device}, "
                             f"got {t.dtype} {tuple(t.shape)} on {t.device}")
    if chain and device.type == "cuda":
        raise ShapeError("fit: chain=True (sequential warm starts) runs on CPU tensors only")
    _check_finite(obs, "fit: landmarks")
    if max_iters < 0 or max_trials < 1:
        raise ShapeError("fit: max_iters must be >= 0 and max_trials >= 1")
    cost = torch.empty(N, dtype=torch.float32, device=device)
    iters = torch.zeros(N, dtype=torch.int32, device=device)
    if N == 0:
        return w, rot, scale, trans, cost, iters
    scratch = None
    if device.type == "cuda":
        scratch = torch.empty(ext().fit_cuda_scratch_doubles(N, V, K), dtype=torch.float64, device=device)
    with torch.no_grad():
        _launch(device, lambda on_cuda, stream: ext().fit(
            model.addresses(), obs.data_ptr(), w.data_ptr(), rot.data_ptr(), scale.data_ptr(), trans.data_ptr(),
            cost.data_ptr(), iters.data_ptr(), N, V, K, max_iters, max_trials, mu0, tol, int(chain), num_threads,
            on_cuda, stream, _addr(scratch)))
    return w, rot, scale, trans, cost, iters


def _check_finite(t: torch.Tensor, what: str) -> None:
    # CPU: one vectorized pass in C++ (~1 us for a 1024 x 64 codebook against
    # ~100 us for torch.isfinite, and no intra-op threads left spinning while
    # the kernel runs); CUDA: torch.isfinite.
    if t.device.type == "cpu":
        ok = ext().all_finite(t.data_ptr(), t.numel())
    else:
        ok = bool(torch.isfinite(t).all())
    if not ok:
        raise ShapeError(f"{what} contain NaN or infinite values")


def nearest_code(x: torch.Tensor, codebook: torch.Tensor, *, exact: bool = False, num_threads: int = 0):
    """Nearest code in squared L2 (csrc/vq): vector quantization. No autograd.

    x (N, D) queries, codebook (K, D) with K >= 1, floating point, finite, on
    one device -> (idx (N,) int32, dist (N,) float32): idx[n] = argmin_k
    ||x[n] - codebook[k]||^2 (ties -> lowest k) and dist[n] that squared
    distance, evaluated in fp32. On CPU the search runs a bf16 pass with a
    rigorous error bound and re-ranks the shortlist exactly, so the answer is
    the exact fp32 nearest code; exact=True runs that pass in fp32 instead
    (same answers up to exact fp32 ties, slower). The CUDA path computes every
    distance exactly and ignores `exact`. num_threads: CPU worker threads
    (0 = all cores)."""
    device = _device_of(x, codebook)
    for name, t in (("x", x), ("codebook", codebook)):
        if not t.is_floating_point():
            raise ShapeError(f"nearest_code: {name} must be a floating-point tensor, got {t.dtype}")
    codebook = _f32(codebook, "codebook", (None, None), device)
    K, D = codebook.shape
    if K == 0 or D == 0:
        raise ShapeError(f"nearest_code: the codebook must have K >= 1 codes of D >= 1 dims, got {(K, D)}")
    x = _f32(x, "x", (None, D), device)
    N = x.shape[0]
    _check_finite(x, "nearest_code: the queries (x)")
    _check_finite(codebook, "nearest_code: the codebook entries")
    idx = torch.empty(N, dtype=torch.int32, device=device)
    dist = torch.empty(N, dtype=torch.float32, device=device)
    if N == 0:
        return idx, dist
    if device.type == "cpu":  # the live single-frame path: no closure
        ext().vq(x.data_ptr(), codebook.data_ptr(), idx.data_ptr(), dist.data_ptr(), N, K, D, bool(exact), False,
                 num_threads, 0)
        return idx, dist
    _launch(device, lambda on_cuda, stream: ext().vq(
        x.data_ptr(), codebook.data_ptr(), idx.data_ptr(), dist.data_ptr(), N, K, D, bool(exact), on_cuda,
        num_threads, stream))
    return idx, dist


_LAYER_KEYS = ("ln1_w", "ln1_b", "qkv_w", "qkv_b", "proj_w", "proj_b", "ln2_w", "ln2_b",
               "fc_w", "fc_b", "out_w", "out_b")


def _decode_model(weights: dict, caches, row_emb, key_mask, logits, n_past: int, pos: int, B: int) -> tuple:
    """Check the decoder's tensors (csrc/decode/decode.h) -> (address dict, tensors to keep alive)."""
    cpu = torch.device("cpu")
    tok = weights["tok_emb"]
    if not isinstance(tok, torch.Tensor) or tok.dim() != 2:
        raise ShapeError("decode: tok_emb must be a (K + 1, D) tensor")
    K, D = tok.shape[0] - 1, tok.shape[1]
    layers = weights["layers"]
    if not layers or len(caches) != len(layers):
        raise ShapeError(f"decode: {len(layers)} layers but {len(caches)} key/value caches")
    F = layers[0]["fc_w"].shape[0]
    k0 = caches[0][0]
    if not isinstance(k0, torch.Tensor) or k0.dim() != 4:
        raise ShapeError("decode: caches must hold (R, H, cap, D / H) key and value tensors")
    R, H, cap, Dh = k0.shape
    if H * Dh != D or R not in (B, 2 * B):
        raise ShapeError(f"decode: caches of shape {tuple(k0.shape)} do not fit width {D} and {B} prompt(s)")
    keep = []

    def t(x, name, shape, dtype=torch.float32):
        if not isinstance(x, torch.Tensor) or x.device != cpu or x.dtype != dtype or tuple(x.shape) != shape \
                or not x.is_contiguous():
            got = (tuple(x.shape), x.dtype, x.device) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"decode: '{name}' must be a contiguous CPU {dtype} tensor of shape {shape}, got {got}")
        keep.append(x)
        return x.data_ptr()

    max_pos = weights["pos_emb"].shape[0]
    m = {"D": D, "H": H, "F": F, "K": K, "R": R, "B": B, "cap": cap, "n_past": int(n_past), "pos": int(pos),
         "max_pos": max_pos,
         "tok_emb": t(tok, "tok_emb", (K + 1, D)), "pos_emb": t(weights["pos_emb"], "pos_emb", (max_pos, D)),
         "lnf_w": t(weights["lnf_w"], "lnf_w", (D,)), "lnf_b": t(weights["lnf_b"], "lnf_b", (D,)),
         "head_w": t(weights["head_w"], "head_w", (K, D)),
         "row_emb": 0 if row_emb is None else t(row_emb, "row_emb", (R, D)),
         "key_mask": 0 if key_mask is None else t(key_mask, "key_mask", (R, cap), torch.uint8),
         "logits": t(logits, "logits", (R, K)), "layers": []}
    shapes = {"ln1_w": (D,), "ln1_b": (D,), "qkv_w": (3 * D, D), "qkv_b": (3 * D,), "proj_w": (D, D),
              "proj_b": (D,), "ln2_w": (D,), "ln2_b": (D,), "fc_w": (F, D), "fc_b": (F,), "out_w": (D, F),
              "out_b": (D,)}
    for i, (layer, (kc, vc)) in enumerate(zip(layers, caches)):
        d = {k: t(layer[k], f"layers[{i}].{k}", shapes[k]) for k in _LAYER_KEYS}
        d["k_cache"] = t(kc, f"caches[{i}] keys", (R, H, cap, Dh))
        d["v_cache"] = t(vc, f"caches[{i}] values", (R, H, cap, Dh))
        m["layers"].append(d)
    if not (0 <= n_past < cap and 0 <= pos < max_pos):
        raise ShapeError(f"decode: position {pos} / cached keys {n_past} outside the model ({max_pos}) or "
                         f"cache ({cap})")
    return m, keep


def decode_step(weights: dict, caches, ids: torch.Tensor, *, n_past: int, pos: int, row_emb=None, key_mask=None):
    """One step of the motion transformer on the CPU (csrc/decode): ids (R,)
    int64 at motion position `pos`; keys/values are written into `caches`
    (a list of (k, v) tensors (R, H, cap, D / H) per layer) at `n_past`.
    `weights`: `MotionGPT.decode_weights()`. -> logits (R, K)."""
    R = caches[0][0].shape[0] if caches and isinstance(caches[0][0], torch.Tensor) else 0
    K = weights["tok_emb"].shape[0] - 1
    logits = torch.empty(R, K, dtype=torch.float32, device="cpu")
    ids = torch.as_tensor(ids, dtype=torch.int64, device="cpu").contiguous()
    if ids.shape != (R,) or bool(((ids < 0) | (ids > K)).any()):
        raise ShapeError(f"decode_step: ids must be ({R},) token ids in [0, {K}]")
    m, keep = _decode_model(weights, caches, row_emb, key_mask, logits, n_past, pos, B=R)
    with torch.no_grad():
        ext().decode_step(m, ids.data_ptr())
    return logits


def block_weights(blocks) -> list:
    """The per-layer tensors the decoding kernel reads from transformer blocks
    laid out as `m2l.gpt.Block` (ln1, qkv, proj, ln2, mlp = Linear, GELU,
    Linear): detached float32 contiguous views, no copies for float32 models."""
    f = lambda t: t.detach().float().contiguous()  # noqa: E731
    return [{"ln1_w": f(b.ln1.weight), "ln1_b": f(b.ln1.bias), "qkv_w": f(b.qkv.weight), "qkv_b": f(b.qkv.bias),
             "proj_w": f(b.proj.weight), "proj_b": f(b.proj.bias), "ln2_w": f(b.ln2.weight),
             "ln2_b": f(b.ln2.bias), "fc_w": f(b.mlp[0].weight), "fc_b": f(b.mlp[0].bias),
             "out_w": f(b.mlp[2].weight), "out_b": f(b.mlp[2].bias)} for b in blocks]


def decode(weights: dict, caches, logits: torch.Tensor, *, B: int, n_tokens: int, n_past: int, pos: int,
           row_emb=None, key_mask=None, cfg_scale: float = 1.0, temperature: float = 1.0, top_k: int = 0,
           rng_state: torch.Tensor, stop_id: int = -1) -> torch.Tensor:
    """The sampling loop on the CPU (csrc/decode): from `logits` (R, K) of the
    first pick, n_tokens tokens per prompt -> (B, n_tokens) int64. R = B, or
    2B with guidance (rows B.. the unconditional twins). `rng_state`: a (1,)
    int64 tensor, advanced in place (continue a stream by passing it again).
    `stop_id` >= 0: a prompt that picks it is finished (the rest of its row
    is stop_id) and the loop ends once all are."""
    logits = logits.float().contiguous().clone()
    if not (isinstance(rng_state, torch.Tensor) and rng_state.dtype == torch.int64 and rng_state.numel() == 1
            and rng_state.is_contiguous() and rng_state.device.type == "cpu"):
        raise ShapeError("decode: rng_state must be a (1,) int64 CPU tensor")
    if n_tokens < 1 or temperature < 0 or top_k < 0 or cfg_scale < 0:
        raise ShapeError("decode: n_tokens >= 1, temperature, top_k and cfg_scale >= 0")
    K = weights["tok_emb"].shape[0] - 1
    if not -1 <= int(stop_id) < K:
        raise ShapeError(f"decode: stop_id must be -1 (none) or a token id in [0, {K}), got {stop_id}")
    out = torch.empty(B, n_tokens, dtype=torch.int64, device="cpu")
    m, keep = _decode_model(weights, caches, row_emb, key_mask, logits, n_past, pos, B=B)
    if n_past + n_tokens - 1 > m["cap"] or pos + n_tokens - 1 > m["max_pos"]:
        raise ShapeError(f"decode: {n_tokens} tokens do not fit the cache ({m['cap']}) or the model's window "
                         f"({m['max_pos']})")
    with torch.no_grad():
        ext().decode(m, int(n_tokens), float(cfg_scale), float(temperature), int(top_k), rng_state.data_ptr(),
                     out.data_ptr(), int(stop_id))
    return out
