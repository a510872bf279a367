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
    if not torch.isfinite(obs).all():
        raise ShapeError("fit: landmarks contain NaN or infinite values")
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
        raise ShapeError(f"nearest_code: {what} contains NaN or infinite values")


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
    _check_finite(x, "x (queries)")
    _check_finite(codebook, "the codebook")
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
