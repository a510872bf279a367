"""Pure-PyTorch twins of every C++/CUDA kernel in csrc/. They are the oracle the
tests compare kernels against, and the fallback when a tensor needs autograd.
Keep them simple and obviously correct rather than fast."""
from __future__ import annotations

import torch


def blend_ref(tmpl: torch.Tensor, basis: torch.Tensor, coeffs: torch.Tensor,
              rot: torch.Tensor | None = None, trans: torch.Tensor | None = None,
              scale: torch.Tensor | None = None) -> torch.Tensor:
    """Twin of csrc/blend: scale * R @ (tmpl + sum_k coeffs[k] * basis[k]) + trans.

    tmpl (V, 3), basis (K, V, 3), coeffs (B, K), rot (B, 3, 3), trans (B, 3),
    scale (B,) -> (B, V, 3)."""
    B = coeffs.shape[0]
    K, V = basis.shape[0], tmpl.shape[0]
    shaped = tmpl[None] + (coeffs @ basis.reshape(K, V * 3)).reshape(B, V, 3)  # (B, V, 3)
    if rot is not None:
        shaped = shaped @ rot.transpose(1, 2)
    if scale is not None:
        shaped = shaped * scale[:, None, None]
    if trans is not None:
        shaped = shaped + trans[:, None, :]
    return shaped


# --------------------------------------------------------------------- fit
#: sign flip from the model frame (+y up, +z toward the camera) to MediaPipe
#: pixel coordinates (y down, z smaller = closer)
FLIP = (1.0, -1.0, -1.0)


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices: skew(a) @ b = a x b."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(v.shape[:-1] + (3, 3))


def exp_so3(d: torch.Tensor) -> torch.Tensor:
    from .face.rotation import axis_angle_to_matrix

    return axis_angle_to_matrix(d)


def fit_residual(tmpl, basis, pivot, obs, w, R, s, t):
    """Weak-perspective residuals of one frame.

    X = tmpl + sum_k w_k basis_k (V, 3); Y = R (X - pivot) + pivot;
    r = s * FLIP * Y + t - obs (V, 3). Returns (q = R (X - pivot), Y, r)."""
    flip = torch.tensor(FLIP, dtype=obs.dtype)
    X = tmpl + torch.einsum("k,kvc->vc", w, basis)  # (V, 3)
    q = (X - pivot) @ R.T
    Y = q + pivot
    return q, Y, s * flip * Y + t - obs


def fit_cost(weights, prior, r, w, l1=None):
    reg = 0.5 * (prior * w * w).sum() + (0.0 if l1 is None else (l1 * w).sum())
    return 0.5 * (weights[:, None] * r * r).sum() + reg


def bounded_step(A, g, w, lo, hi, fixed0, rounds: int = 4):
    """Step d solving A d = g over the free variables, where the first K
    variables (weights w) must stay in [lo, hi] after w - d. Weights in
    `fixed0` keep d = 0; a free weight whose step would leave its box is
    fixed at the bound it crosses (d = w - bound) and the rest re-solved,
    up to `rounds` times. Returns None when A is not positive definite."""
    K, M = w.shape[0], A.shape[0]
    fixed = torch.zeros(M, dtype=torch.bool)
    fixed[:K] = fixed0
    d = torch.zeros(M, dtype=A.dtype)
    for _ in range(rounds):
        free = torch.nonzero(~fixed).flatten()
        rhs = g[free] - A[free][:, fixed] @ d[fixed]
        try:
            L = torch.linalg.cholesky(A[free][:, free])
        except RuntimeError:
            return None
        d[free] = torch.cholesky_solve(rhs[:, None], L)[:, 0]
        new = w - d[:K]
        out = (~fixed[:K]) & ((new < lo) | (new > hi))
        if not out.any():
            break
        d[:K] = torch.where(out, w - torch.clamp(new, lo, hi), d[:K])
        fixed[:K] |= out
    return d


def fit_lm_ref(tmpl, basis, weights, lo, hi, prior, pivot, obs, w, R, s, t, *, l1=None,
               max_iters: int = 10, mu0: float = 1e-3, tol: float = 1e-6, max_trials: int = 6):
    """Twin of csrc/fit: bounded Levenberg-Marquardt per frame, written the
    plain way (explicit Jacobian, dense normal equations), in float64.

    Unknowns per frame: blendshape weights w (K) in [lo, hi] with a ridge
    prior 0.5 * prior_k * w_k^2 and a linear (sparsity) prior l1_k * w_k
    toward neutral, head rotation R (updated
    multiplicatively, R <- exp(skew(-d)) R), weak-perspective scale s and
    translation t (3). Landmark i has weight weights[i] on all 3 coordinates.

    tmpl (V, 3), basis (K, V, 3), weights (V,), lo/hi/prior (K,), pivot (3,),
    obs (N, V, 3), initial w (N, K), R (N, 3, 3), s (N,), t (N, 3).
    Returns dict of w, R, s, t, cost (N,), iters (N,)."""
    dt = torch.float64
    l1 = torch.zeros_like(prior) if l1 is None else l1
    tmpl, basis, weights, lo, hi, prior, l1, pivot, obs = (
        x.to(dt) for x in (tmpl, basis, weights, lo, hi, prior, l1, pivot, obs))
    N, V = obs.shape[:2]
    K = basis.shape[0]
    M = K + 7
    flip = torch.tensor(FLIP, dtype=dt)
    eye3 = torch.eye(3, dtype=dt)
    out = {k: [] for k in ("w", "R", "s", "t", "cost", "iters")}
    for n in range(N):
        wn, Rn, sn, tn = w[n].to(dt).clone(), R[n].to(dt).clone(), s[n].to(dt).clone(), t[n].to(dt).clone()
        q, Y, r = fit_residual(tmpl, basis, pivot, obs[n], wn, Rn, sn, tn)
        cost = fit_cost(weights, prior, r, wn, l1)
        mu, it = mu0, 0
        for it in range(1, max_iters + 1):
            # Jacobian of r (V, 3) with respect to [w, d (rotation), s, t]: (V, 3, M)
            Jw = sn * flip[:, None] * torch.einsum("ab,kvb->vak", Rn, basis)  # (V, 3, K)
            Jd = torch.stack([sn * flip * torch.cross(eye3[c].expand(V, 3), q, dim=1) for c in range(3)], -1)
            Js = (flip * Y)[..., None]
            Jt = eye3.expand(V, 3, 3)
            J = torch.cat([Jw, Jd, Js, Jt], -1).reshape(V * 3, M)
            om = weights.repeat_interleave(3)
            H = J.T @ (om[:, None] * J)
            g = J.T @ (om * r.reshape(-1))
            H[:K, :K] += torch.diag(prior)
            g[:K] += prior * wn + l1
            at_bound = ((wn <= lo + 1e-7) & (g[:K] > 0)) | ((wn >= hi - 1e-7) & (g[:K] < 0))
            accepted = False
            for _ in range(max_trials):
                A = H + mu * torch.diag(torch.diagonal(H) + 1e-9)
                d = bounded_step(A, g, wn, lo, hi, at_bound)
                if d is None:
                    mu *= 4.0
                    continue
                cw = torch.clamp(wn - d[:K], lo, hi)
                cR = exp_so3(-d[K:K + 3]) @ Rn
                cs, ct = sn - d[K + 3], tn - d[K + 4:]
                cq, cY, cr = fit_residual(tmpl, basis, pivot, obs[n], cw, cR, cs, ct)
                c_cost = fit_cost(weights, prior, cr, cw, l1)
                if c_cost < cost:
                    accepted = True
                    mu = max(mu / 3.0, 1e-9)
                    break
                mu *= 4.0
            if not accepted:
                break
            done = (cost - c_cost) <= tol * cost
            wn, Rn, sn, tn, q, Y, r, cost = cw, cR, cs, ct, cq, cY, cr, c_cost
            if done:
                break
        for k, v in zip(("w", "R", "s", "t", "cost", "iters"), (wn, Rn, sn, tn, cost, it)):
            out[k].append(torch.as_tensor(v))
    return {k: torch.stack(v) for k, v in out.items()}


# ---------------------------------------------------------------------- vq
def nearest_code_ref(x: torch.Tensor, codebook: torch.Tensor, block_elems: int = 1 << 22):
    """Twin of csrc/vq: nearest code in squared L2.

    x (N, D), codebook (K, D) -> (idx (N,) int64, dist (N,) in x's dtype) with
    idx[n] = argmin_k ||x[n] - codebook[k]||^2 (first minimum) and dist the
    squared distance to that code. Distances are evaluated in float64 (the
    expanded form is accurate there), over blocks of rows so that only
    ~block_elems distances exist at once."""
    N, K = x.shape[0], codebook.shape[0]
    x64, c64 = x.to(torch.float64), codebook.to(torch.float64)
    c2 = (c64 * c64).sum(1)
    idx = torch.empty(N, dtype=torch.int64, device=x.device)
    rows = max(1, block_elems // max(K, 1))
    for lo in range(0, N, rows):
        xb = x64[lo:lo + rows]
        d = (xb * xb).sum(1, keepdim=True) + c2[None] - 2.0 * xb @ c64.T  # (rows, K)
        idx[lo:lo + rows] = d.argmin(1)
    dist = ((x64 - c64[idx]) ** 2).sum(1)
    return idx, dist.to(x.dtype)


# --------------------------------------------------------------------- mlp
def mlp_ref(x: torch.Tensor, weights, biases, activation: str = "none") -> torch.Tensor:
    """Twin of csrc/mlp: Linear, GELU, ..., Linear. x (N, in); weights[l]
    (out, in) as in nn.Linear, biases[l] (out,) or None; activation: torch's
    GELU `approximate` ("none" exact, "tanh") between the layers."""
    h = x
    for k, (W, b) in enumerate(zip(weights, biases)):
        h = torch.nn.functional.linear(h, W, b)
        if k < len(weights) - 1:
            h = torch.nn.functional.gelu(h, approximate=activation)
    return h


# ------------------------------------------------------------------- track
def one_euro_ref(x, state, scale, t, *, min_cutoff, beta, d_cutoff, enabled=True):
    """Twin of csrc/track's One Euro filter (pyfacelang/track/filters.py):
    x (n,) float64; state [x_prev, dx_prev, t_prev (NaN: none)] updated in
    place (a Python list) -> filtered (n,)."""
    import math

    if not enabled or math.isnan(state[2]) or not bool(torch.isfinite(x).all()):
        if enabled and bool(torch.isfinite(x).all()):
            state[:] = [x.clone(), torch.zeros_like(x), t]
        return x.clone()
    dt = t - state[2]
    dt = dt if dt > 0 else 1e-3

    def alpha(cutoff):
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff) / dt)

    a_d = alpha(d_cutoff)
    dx = a_d * (x - state[0]) / dt + (1 - a_d) * state[1]
    a = alpha(min_cutoff + beta * dx.abs() / scale)
    state[:] = [a * x + (1 - a) * state[0], dx, t]
    return state[0].clone()


def track_step_ref(w, rot, scale, trans, obs, neutral, basis, pivot, time, state, filter_scale, *,
                   min_cutoff, beta, d_cutoff, enabled=True, observed=None):
    """Twin of csrc/track (see `pyfacelang._kernels.track_step`); state is
    a list [x, dx, t] updated in place. -> (out (K+7,), fitted (V, 3), residual)."""
    f64 = torch.float64
    K, V = w.shape[0], obs.shape[0]
    R = rot.to(f64)
    cos = ((torch.trace(R) - 1) / 2).clamp(-1, 1)
    theta = torch.acos(cos)
    sin = torch.sin(theta)
    f = 0.5 + theta * theta / 12 if abs(float(sin)) < 1e-6 else theta / (2 * sin)
    log_r = torch.stack([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) * f
    raw = torch.cat([w.to(f64), log_r, torch.tensor([float(scale)], dtype=f64), trans.to(f64)])
    out = one_euro_ref(raw, state, filter_scale, time, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff,
                       enabled=enabled)
    out[:K] = out[:K].clamp(0, 1)
    p = torch.as_tensor(pivot, dtype=f64)
    flip = torch.tensor(FLIP, dtype=f64)

    def pixels(wk, Rk, cam):
        X = (neutral + (wk.float() @ basis.reshape(K, V * 3)).reshape(V, 3)).to(f64)    # (V, 3)
        return cam[0] * flip * ((X - p) @ Rk.T + p) + cam[1:]

    Rf = exp_so3(out[K:K + 3])
    fitted = pixels(out[:K], Rf, out[K + 3:]).float()
    d = pixels(w, R, raw[K + 3:]).float()[:, :2].to(f64) - obs[:, :2].to(f64)          # (V, 2)
    dist = d.norm(dim=1)
    residual = float(dist.mean() if observed is None else dist[observed].mean())
    return out, fitted, residual

