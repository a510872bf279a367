"""Nearest-code (vector quantization) speed: `bench_vq` times the tokenizer's
inner loop against the baselines a researcher would write, in one process.

- cdist_ms: `torch.cdist(x, c).argmin(1)`, the baseline (`speedup` =
  cdist_ms / ours_ms).
- addmm_ms: `(||c||^2 - 2 x @ c.T).argmin(1)` through `torch.addmm`, the
  usual hand-written form (one (N, K) matrix, no sqrt).
- exact_ms: our kernel (csrc/vq) in fp32 throughout (`exact=True`).
- ours_ms: our kernel's default path (bf16 pass, rigorous shortlist, exact
  fp32 re-rank).
- faiss_ms: faiss IndexFlatL2 when `import faiss` works, else None with the
  reason in `faiss_note`.
- single_frame_us: one query (the live loop), median over `single_calls`
  calls: ours (`ours`), `torch.cdist` + argmin (`torch`) and the addmm form
  (`torch_addmm`), each including its Python call overhead.
- agree: per method, the fraction of rows whose chosen code is within 1e-5
  (relative) of the true minimum distance (float64 reference).
- gflops: 2 N K D / time. `cuda`: the same on the GPU when one is usable.
"""
from __future__ import annotations

import time

import torch

from .. import _kernels
from .._reference import nearest_code_ref


def _data(n: int, k: int, d: int, seed: int, data: str):
    g = torch.Generator().manual_seed(seed)
    if data == "gaussian":
        return torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)
    if data == "clustered":
        # codes are cluster centres, queries are noisy members; everything
        # sits near +100 (large norms, as for unnormalised features)
        centres = torch.randn(k, d, generator=g)
        lab = torch.randint(0, k, (n,), generator=g)
        x = centres[lab] + 0.1 * torch.randn(n, d, generator=g)
        return x + 100, centres + 100
    raise ValueError(f"bench_vq: data must be 'gaussian' or 'clustered', got {data!r}")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, repeats: int, device) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3


def _single_us(fn, calls: int, device) -> float:
    for _ in range(20):
        fn()
    _sync(device)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e6


def _methods(x, c, threads: int):
    c2 = (c * c).sum(1)
    return {
        "cdist": lambda: torch.cdist(x, c).argmin(1),
        "addmm": lambda: torch.addmm(c2[None], x, c.T, beta=1.0, alpha=-2.0).argmin(1),
        "exact": lambda: _kernels.nearest_code(x, c, exact=True, num_threads=threads)[0],
        "ours": lambda: _kernels.nearest_code(x, c, num_threads=threads)[0],
    }


def _agree(x64, c64, best, idx) -> float:
    got = ((x64 - c64[idx.cpu().long()]) ** 2).sum(1)
    return float((got <= best * (1 + 1e-5) + 1e-12).double().mean())


def _run(x, c, best, threads, repeats, single_calls, device, with_faiss):
    n, d = x.shape
    k = c.shape[0]
    x64, c64 = x.double().cpu(), c.double().cpu()
    out = {}
    for name, fn in _methods(x, c, threads).items():
        ms = _median_ms(fn, repeats, device)
        out[f"{name}_ms"] = ms
        out[f"{name}_gflops"] = 2.0 * n * k * d / (ms * 1e6)
        out.setdefault("agree", {})[name] = _agree(x64, c64, best, fn())
    out["faiss_ms"], out["faiss_note"] = None, "not run on this device"
    if with_faiss:
        try:
            import faiss  # type: ignore
        except ImportError as e:
            out["faiss_note"] = f"faiss not installed ({e})"
        else:
            if threads > 0:
                faiss.omp_set_num_threads(threads)
            index = faiss.IndexFlatL2(d)
            index.add(c.numpy())
            xn = x.numpy()
            out["faiss_ms"] = _median_ms(lambda: index.search(xn, 1), repeats, device)
            out["faiss_gflops"] = 2.0 * n * k * d / (out["faiss_ms"] * 1e6)
            out["agree"]["faiss"] = _agree(x64, c64, best, torch.from_numpy(index.search(xn, 1)[1][:, 0]))
            out["faiss_note"] = "IndexFlatL2"
    ours, dist = _kernels.nearest_code(x, c, num_threads=threads)
    out["agreement"] = float(((dist.double().cpu() - best).abs() <= 1e-5 * best + 1e-12).double().mean())
    x1, c2 = x[:1].clone(), (c * c).sum(1)
    out["single_frame_us"] = {
        "ours": _single_us(lambda: _kernels.nearest_code(x1, c, num_threads=threads), single_calls, device),
        "torch": _single_us(lambda: torch.cdist(x1, c).argmin(1), single_calls, device),
        "torch_addmm": _single_us(lambda: torch.addmm(c2[None], x1, c.T, beta=1.0, alpha=-2.0).argmin(1),
                                  single_calls, device),
    }
    out["speedup"] = out["cdist_ms"] / out["ours_ms"]
    out["speedup_vs_faiss"] = out["faiss_ms"] / out["ours_ms"] if out["faiss_ms"] else None
    return out


def bench_vq(n: int = 100_000, k: int = 1024, d: int = 64, *, seed: int = 0, repeats: int = 5, threads: int = 0,
             data: str = "gaussian", single_calls: int = 2000) -> dict:
    """Time nearest-code search on n queries, k codes, d dims (see the
    module docstring). threads: CPU threads for every method (0 = all
    cores). Returns a dict; `format_table` renders it."""
    x, c = _data(n, k, d, seed, data)
    _, best = nearest_code_ref(x.double(), c.double())
    old = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        res = {"n": n, "k": k, "d": d, "data": data, "seed": seed, "repeats": repeats,
               "threads": threads if threads > 0 else old}
        res.update(_run(x, c, best, threads, repeats, single_calls, torch.device("cpu"), True))
        res["cuda"] = None
        import pyfacelang

        if pyfacelang.has_cuda():
            dev = torch.device("cuda")
            res["cuda"] = _run(x.to(dev), c.to(dev), best, threads, repeats, single_calls, dev, False)
            res["cuda"]["device"] = torch.cuda.get_device_name(dev)
    finally:
        torch.set_num_threads(old)
    return res


def _rows(r: dict, faiss: bool) -> list[str]:
    names = [("cdist", "torch cdist + argmin"), ("addmm", "torch addmm + argmin"),
             ("exact", "pyfacelang exact fp32"), ("ours", "pyfacelang bf16 + re-rank")]
    if faiss:
        names.append(("faiss", "faiss IndexFlatL2"))
    lines = [f"  {'method':<28}{'ms':>10}{'GFLOP/s':>10}{'rows at min':>13}"]
    for key, label in names:
        ms = r.get(f"{key}_ms")
        if ms is None:
            lines.append(f"  {label:<28}{'n/a':>10}   ({r.get('faiss_note')})")
            continue
        lines.append(f"  {label:<28}{ms:>10.2f}{r[f'{key}_gflops']:>10.1f}{r['agree'].get(key, float('nan')):>13.4f}")
    s = r["single_frame_us"]
    lines.append(f"  speedup vs cdist {r['speedup']:.1f}x" + (
        f", vs faiss {r['speedup_vs_faiss']:.2f}x" if r.get("speedup_vs_faiss") else ""))
    lines.append(f"  single frame (N=1): pyfacelang {s['ours']:.1f} us, torch cdist {s['torch']:.1f} us, "
                 f"torch addmm {s['torch_addmm']:.1f} us")
    lines.append(f"  pyfacelang distances equal to the fp32 minimum (1e-5 rel.): {r['agreement']:.4f} of rows")
    return lines


def format_table(result: dict) -> str:
    """Readable text table of a `bench_vq` result."""
    r = result
    head = (f"nearest code: N={r['n']} K={r['k']} D={r['d']} data={r['data']} threads={r['threads']} "
            f"(median of {r['repeats']})")
    lines = [head, "CPU:"] + _rows(r, True)
    if r.get("cuda"):
        lines += [f"CUDA ({r['cuda'].get('device', '')}):"] + _rows(r["cuda"], False)
    else:
        lines.append("CUDA: not available")
    return "\n".join(lines)
