// CUDA path of fit.h: one block per frame (blocks stride over frames), the
// same bounded Levenberg-Marquardt steps as fit_cpu.cpp. Threads share the
// O(V) and O(K V) work (model points, residuals and landmark moments with
// block reductions, per-frame observation moments, rows of the normal
// matrix); the small dense step (bounded_step, Cholesky of <= K+7 unknowns)
// runs on thread 0. Per-frame arrays live in a global scratch buffer of
// fit_cuda_scratch_doubles(N, V, K) doubles.
#include <cuda_runtime.h>

#include "../common/cuda_check.h"

#include "fit.h"
#include "fit_math.h"

namespace facelang {

namespace {

constexpr int kThreads = 128;

// Per-frame scratch, carved from the global buffer.
struct Scratch {
  double *H, *A, *g, *d, *gf, *df;  // normal equations and bounded_step scratch
  double *cw, *cand;                // current and candidate weights (K)
  double *N, *X, *r, *cX, *cr;      // obs moments (9K); points / residuals, current and candidate (3V)
  long *free_idx, *clamped;
  unsigned char *active, *fixed;
};

__device__ Scratch carve(double* base, int64_t V, int64_t K) {
  const int64_t M = K + 7, n3 = 3 * V;
  Scratch s;
  double* p = base;
  s.H = p; p += M * M;
  s.A = p; p += M * M;
  s.g = p; p += M;
  s.d = p; p += M;
  s.gf = p; p += M;
  s.df = p; p += M;
  s.cw = p; p += M;
  s.cand = p; p += M;
  s.N = p; p += 9 * K;
  s.X = p; p += n3;
  s.r = p; p += n3;
  s.cX = p; p += n3;
  s.cr = p; p += n3;
  s.free_idx = reinterpret_cast<long*>(p); p += M;
  s.clamped = reinterpret_cast<long*>(p); p += M;
  s.active = reinterpret_cast<unsigned char*>(p); p += (M + 7) / 8;
  s.fixed = reinterpret_cast<unsigned char*>(p);
  return s;
}

// Sum of one value per thread; the result is valid on every thread.
__device__ double block_sum(double v, double* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) red[threadIdx.x] += red[threadIdx.x + stride];
    __syncthreads();
  }
  const double out = red[0];
  __syncthreads();
  return out;
}

__device__ void model_points(const FitArgs& a, const double* w, double* X) {
  const int64_t n3 = 3 * a.V;
  for (int64_t e = threadIdx.x; e < n3; e += blockDim.x) {
    double x = a.tmpl[e];
    for (int64_t k = 0; k < a.K; ++k) x += w[k] * a.basis[k * n3 + e];
    X[e] = x;
  }
  __syncthreads();
}

// r = s F (R (X - p) + p) + t - obs; returns the cost (on every thread).
__device__ double residuals(const FitArgs& a, const float* obs, const double* X, const Pose& P, const double* w,
                            double* r, double* red) {
  double e = 0.0;
  for (int64_t i = threadIdx.x; i < a.V; i += blockDim.x)
    e += a.weights[i] * landmark_residual(X + 3 * i, obs + 3 * i, P, a.pivot, r + 3 * i);
  double reg = 0.0;
  for (int64_t k = threadIdx.x; k < a.K; k += blockDim.x) reg += (0.5 * a.prior[k] * w[k] + a.l1[k]) * w[k];
  return block_sum(0.5 * e + reg, red);
}

// N_k (3x3) = sum_i om_i basis_k,i obs_i^T, one (k, c, d) entry per thread.
__device__ void obs_moments(const FitArgs& a, const float* obs, double* N) {
  const int64_t n3 = 3 * a.V;
  for (int64_t e = threadIdx.x; e < 9 * a.K; e += blockDim.x) {
    const int64_t k = e / 9, c = (e % 9) / 3, d = e % 3;
    const float* row = a.basis + k * n3;
    double acc = 0.0;
    for (int64_t i = 0; i < a.V; ++i) acc += double(a.weights[i]) * row[3 * i + c] * obs[3 * i + d];
    N[e] = acc;
  }
  __syncthreads();
}

// Normal matrix H and gradient g (see fit_cpu.cpp::assemble for the algebra).
__device__ void assemble(const FitArgs& a, const double* w, const Pose& P, const double* X, const double* r,
                         const Scratch& S, double* red) {
  const double p[3] = {a.pivot[0], a.pivot[1], a.pivot[2]};
  double m[kMoments] = {};
  for (int64_t i = threadIdx.x; i < a.V; i += blockDim.x) add_moments(m, a.weights[i], X + 3 * i, r + 3 * i, P.R, p);
  double tot[kMoments];
  for (int j = 0; j < kMoments; ++j) tot[j] = block_sum(m[j], red);
  if (threadIdx.x == 0) pose_block(tot, P.s, p, S.H, S.g, a.K);
  for (int64_t j = threadIdx.x; j < a.K; j += blockDim.x) weight_row(a, j, w, P, S.N + 9 * j, S.H, S.g);
  __syncthreads();
}

__global__ void fit_kernel(FitArgs a, int64_t per_frame) {
  __shared__ double red[kThreads];
  __shared__ Pose P, cP;
  __shared__ double cost, c_cost, mu;
  __shared__ int accepted, status;
  const int64_t K = a.K;
  for (int64_t n = blockIdx.x; n < a.N; n += gridDim.x) {
    Scratch S = carve(a.scratch + n * per_frame, a.V, a.K);
    const float* obs = a.obs + n * a.V * 3;
    float* wout = a.w + n * K;  // current weights (float, what bounded_step reads); S.cw mirrors them in double
    __syncthreads();
    if (threadIdx.x == 0) {
      P = load_pose(a.rot + 9 * n, a.scale[n], a.trans + 3 * n);
      mu = a.mu0;
    }
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) S.cw[k] = wout[k];
    __syncthreads();
    obs_moments(a, obs, S.N);
    model_points(a, S.cw, S.X);
    double c0 = residuals(a, obs, S.X, P, S.cw, S.r, red);
    if (threadIdx.x == 0) cost = c0;
    __syncthreads();
    int it = 0;
    for (it = 1; it <= a.max_iters; ++it) {
      assemble(a, S.cw, P, S.X, S.r, S, red);
      if (threadIdx.x == 0) {
        for (int64_t k = 0; k < K; ++k)
          S.active[k] = (wout[k] <= a.lo[k] + 1e-7f && S.g[k] > 0) || (wout[k] >= a.hi[k] - 1e-7f && S.g[k] < 0);
        accepted = 0;
      }
      __syncthreads();
      for (int trial = 0; trial < a.max_trials; ++trial) {  // uniform across the block
        if (threadIdx.x == 0) {
          StepWork sw = {S.A, S.gf, S.df, S.d, S.active, S.fixed, S.free_idx, S.clamped};
          status = bounded_step(K, a.lo, a.hi, S.H, S.g, wout, mu, sw) ? 1 : 0;
          if (status) {
            cP = step_pose(P, S.d + K);
          } else {
            mu *= 4.0;
          }
        }
        __syncthreads();
        const int ok = status;
        __syncthreads();  // every thread has read status before thread 0 may write it again
        if (!ok) continue;
        // candidate weights, rounded to float exactly like the CPU path
        for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
          S.cand[k] = double(fminf(a.hi[k], fmaxf(a.lo[k], float(double(wout[k]) - S.d[k]))));
        __syncthreads();
        model_points(a, S.cand, S.cX);
        const double cc = residuals(a, obs, S.cX, cP, S.cand, S.cr, red);
        if (threadIdx.x == 0) {
          c_cost = cc;
          if (cc < cost) {
            accepted = 1;
            mu = fmax(mu / 3.0, 1e-9);
          } else {
            mu *= 4.0;
          }
        }
        __syncthreads();
        if (accepted) break;
      }
      if (!accepted) break;
      // take the step: weights, points, residuals, pose
      for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
        wout[k] = float(S.cand[k]);
        S.cw[k] = S.cand[k];
      }
      for (int64_t e = threadIdx.x; e < 3 * a.V; e += blockDim.x) {
        S.X[e] = S.cX[e];
        S.r[e] = S.cr[e];
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        status = (cost - c_cost) <= a.tol * cost ? 1 : 0;  // converged
        P = cP;
        cost = c_cost;
      }
      __syncthreads();
      if (status) break;
    }
    if (threadIdx.x == 0) {
      store_pose(P, a.rot + 9 * n, a.scale + n, a.trans + 3 * n);
      a.cost[n] = float(cost);
      a.iters[n] = it < a.max_iters ? it : a.max_iters;
    }
    __syncthreads();
  }
}

}  // namespace

int fit_cuda(const FitArgs& a) {
  int st = fit_validate(a);
  if (st != kOk) return st;
  if (!a.scratch) {
    last_error() = "fit: CUDA scratch buffer missing";
    return kInvalidArgument;
  }
  if (a.chain) {
    last_error() = "fit: chained (sequential) fitting runs on the CPU path only";
    return kInvalidArgument;
  }
  if (a.N == 0) return kOk;
  const int blocks = static_cast<int>(a.N < 65535 ? a.N : 65535);
  fit_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(a.stream)>>>(a, fit_cuda_scratch_doubles(1, a.V, a.K));
  return launch_status("fit");
}

}  // namespace facelang
