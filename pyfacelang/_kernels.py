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


_FIT_MODEL_TENSORS = ("tmpl", "basis", "weights", "lo", "hi", "prior", "l1", "gram", "cross", "bsum", "gram_t",
                      "cross_t")


def _check_fit_model(model, device: torch.device) -> None:
    """The FitModel's tensors have the layout csrc/fit reads. A live tracker
    fits one frame at a time with the same model, so a model remembers the
    tensors (objects and addresses) it was last checked with on `device`."""
    ts = [getattr(model, name) for name in _FIT_MODEL_TENSORS]
    key = (device, *((id(t), t.data_ptr(), t.shape, t.stride(), t.dtype) for t in ts))
    if getattr(model, "_checked", None) == key:
        return
    V, K = model.V, model.K
    f32, f64 = torch.float32, torch.float64
    specs = (((V, 3), f32), ((K, V, 3), f32), ((V,), f32), ((K,), f32), ((K,), f32), ((K,), f32), ((K,), f32),
             ((K, K), f64), ((K, K, 3), f64), ((K, 3), f64), ((K,), f64), ((K, 3), f64))
    for name, t, (shape, dtype) in zip(_FIT_MODEL_TENSORS, ts, specs):
        if t.device != device or not t.is_contiguous() or t.dtype != dtype or tuple(t.shape) != shape:
            raise ShapeError(f"fit model tensor '{name}' must be a contiguous {dtype} of shape {shape} on {device}, "
                             f"got {t.dtype} {tuple(t.shape)} on {t.device}")
    object.__setattr__(model, "_checked", key)     # FitModel is a frozen dataclass


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
    _check_fit_model(model, device)
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


def nearest_code(x: torch.Tensor, codebook: torch.Tensor, *, exact: bool = False, num_threads: int = 0,
                 codebook_checked: bool = False):
    """Nearest code in squared L2 (csrc/vq): vector quantization. No autograd.

    x (N, D) queries, codebook (K, D) with K >= 1, floating point, finite, on
    one device -> (idx (N,) int32, dist (N,) float32): idx[n] = argmin_k
    ||x[n] - codebook[k]||^2 (ties -> lowest k) and dist[n] that squared
    distance, evaluated in fp32. On CPU the search runs a bf16 pass with a
    rigorous error bound and re-ranks the shortlist exactly, so the answer is
    the exact fp32 nearest code; exact=True runs that pass in fp32 instead
    (same answers up to exact fp32 ties, slower). The CUDA path computes every
    distance exactly and ignores `exact`. num_threads: CPU worker threads
    (0 = all cores). codebook_checked: the caller has already checked that
    this codebook is finite (a tokenizer checks its own once, not on every
    streamed frame)."""
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
    if not codebook_checked:
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


class MLP:
    """A small MLP (Linear, GELU, ..., Linear) for the CPU kernel csrc/mlp,
    with its weights checked and laid out once, so that one call on a single
    row (a live frame) costs the kernel and little else. No autograd: the
    weights are copied, so build a new MLP after they change.

    weights[l] (out, in) as in nn.Linear, biases[l] (out,) or None;
    activation: GELU between the layers, "none" (exact) or "tanh" as torch's
    `approximate`. Twin: `pyfacelang._reference.mlp_ref`."""

    _ACTIVATIONS = {"none": 0, "tanh": 1}

    def __init__(self, weights, biases, activation: str = "none", *, num_threads: int = 0):
        if activation not in self._ACTIVATIONS:
            raise ShapeError(f"MLP: activation must be one of {sorted(self._ACTIVATIONS)}, got {activation!r}")
        if len(weights) == 0 or len(weights) != len(biases):
            raise ShapeError(f"MLP: expected one bias (or None) per weight matrix and at least one layer, "
                             f"got {len(weights)} weights and {len(biases)} biases")
        cpu = torch.device("cpu")
        self._keep, self._layers = [], []
        prev = None
        for k, (W, b) in enumerate(zip(weights, biases)):
            W = _f32(torch.as_tensor(W).detach(), f"MLP weight {k}", (None, prev), cpu).clone()
            out, inp = W.shape
            if out == 0 or inp == 0:
                raise ShapeError(f"MLP weight {k}: empty shape {tuple(W.shape)}")
            if b is not None:
                b = _f32(torch.as_tensor(b).detach(), f"MLP bias {k}", (out,), cpu).clone()
            for t, name in ((W, "weight"), (b, "bias")):
                if t is not None:
                    _check_finite(t, f"MLP {name} {k}")
            self._keep += [W, b]
            self._layers.append((W.data_ptr(), _addr(b), inp, out))
            prev = out
        self.in_dim, self.out_dim = self._layers[0][2], prev
        self.activation, self.num_threads = activation, num_threads
        self._act = self._ACTIVATIONS[activation]

    def __call__(self, x) -> torch.Tensor:
        """(N, in) rows (tensor or array, CPU) -> (N, out) float32 tensor."""
        x = torch.as_tensor(x)
        if x.device.type != "cpu":
            raise ShapeError(f"MLP runs on CPU rows, got a tensor on {x.device} (CUDA models run through torch)")
        x = _f32(x, "MLP input", (None, self.in_dim), x.device)
        N = x.shape[0]
        y = torch.empty((N, self.out_dim), dtype=torch.float32)
        if N:
            ext().mlp(self._layers, self._act, x.data_ptr(), y.data_ptr(), N, self.num_threads)
        return y


def _host(t, name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """A contiguous CPU tensor of this dtype and shape, checked (no copies: per-frame buffers)."""
    if not isinstance(t, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu" or t.dtype != dtype or tuple(t.shape) != shape or not t.is_contiguous():
        raise ShapeError(f"{name}: expected a contiguous CPU {dtype} tensor of shape {shape}, "
                         f"got {t.dtype} {tuple(t.shape)} on {t.device}")
    return t


def track_step(w: torch.Tensor, rot: torch.Tensor, scale: float, trans: torch.Tensor, obs: torch.Tensor,
               neutral: torch.Tensor, basis: torch.Tensor, pivot, time: float, filter_state, filter_scale, *,
               min_cutoff: float, beta: float, d_cutoff: float, filter_enabled: bool = True,
               observed: torch.Tensor | None = None):
    """One frame after a fit (csrc/track): One Euro filter, the filtered
    pose's landmarks and the unfiltered solve's residual. CPU, float32 model
    and solve, float64 filter.

    w (K,), rot (3, 3), scale, trans (3,): the solve; obs (V, 3) the frame's
    landmarks in pixels; neutral (V, 3) and basis (K, V, 3) mm; pivot (3,)
    mm; time in seconds. filter_state: (x, dx, last_time) float64 tensors of
    shapes (K + 7,), (K + 7,), (1,), updated in place (last_time NaN: no
    history yet); filter_scale (K + 7,) float64 speed units. observed:
    (V,) bool, the landmarks the residual averages (None: all).
    Returns (out (K + 7,) float64 [w in [0, 1], axis-angle, s, t], fitted
    (V, 3) float32 pixels, residual float). Twin: `_reference.track_step_ref`."""
    f32, f64 = torch.float32, torch.float64
    K = w.shape[0] if isinstance(w, torch.Tensor) and w.dim() == 1 else -1
    V = neutral.shape[0] if isinstance(neutral, torch.Tensor) and neutral.dim() == 2 else -1
    n = K + 7
    args = [_host(w, "w", (K,), f32), _host(rot, "rot", (3, 3), f32), _host(trans, "trans", (3,), f32),
            _host(obs, "obs", (V, 3), f32), _host(neutral, "neutral", (V, 3), f32),
            _host(basis, "basis", (K, V, 3), f32)]
    fx, fdx, ft = filter_state
    state = [_host(fx, "filter x", (n,), f64), _host(fdx, "filter dx", (n,), f64), _host(ft, "filter time", (1,), f64),
             _host(filter_scale, "filter scale", (n,), f64)]
    mask = 0 if observed is None else _host(observed, "observed", (V,), torch.bool).data_ptr()
    if len(pivot) != 3:
        raise ShapeError(f"pivot: expected 3 values (mm), got {len(pivot)}")
    px, py, pz = (float(c) for c in pivot)
    out = torch.empty(n, dtype=f64)
    fitted = torch.empty((V, 3), dtype=f32)
    residual = torch.empty(1, dtype=f64)
    w, rot, trans, obs, neutral, basis = args
    ext().track_step(w.data_ptr(), rot.data_ptr(), float(scale), trans.data_ptr(), obs.data_ptr(), mask,
                     neutral.data_ptr(), basis.data_ptr(), (px, py, pz), V, K, float(time),
                     *(t.data_ptr() for t in state), float(min_cutoff), float(beta), float(d_cutoff),
                     bool(filter_enabled), out.data_ptr(), fitted.data_ptr(), residual.data_ptr())
    return out, fitted, float(residual[0])


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
