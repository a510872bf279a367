// CUDA path of fit.h: one block per frame (blocks stride over frames), the
// same bounded Levenberg-Marquardt steps as fit_cpu.cpp. Threads share the
// O(V) and O(K V) work (model points, residuals and landmark moments with
// block reductions, per-frame observation moments, rows of the normal
// matrix); the small dense step (bounded_step, Cholesky of <= K+7 unknowns)
// runs on thread 0. Per-frame arrays live in a global scratch buffer of
// fit_cuda_scratch_doubles(N, V, K) doubles.
#include <cuda_runtime.h>

#include "fit.h"
#include "fit_math.h"

namespace facelang {

namespace {

constexpr int kThreads = 128;
constexpr int kMoments = 18;  // Sw, Sq[3], Sqq[6], SqFr[3], SYY, SFYr, Sr[3]

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
  const double* R = P.R;
  for (int64_t i = threadIdx.x; i < a.V; i += blockDim.x) {
    const double ax = X[3 * i] - a.pivot[0], ay = X[3 * i + 1] - a.pivot[1], az = X[3 * i + 2] - a.pivot[2];
    const double y0 = R[0] * ax + R[1] * ay + R[2] * az + a.pivot[0];
    const double y1 = R[3] * ax + R[4] * ay + R[5] * az + a.pivot[1];
    const double y2 = R[6] * ax + R[7] * ay + R[8] * az + a.pivot[2];
    const double r0 = P.s * y0 + P.t[0] - obs[3 * i];
    const double r1 = -P.s * y1 + P.t[1] - obs[3 * i + 1];
    const double r2 = -P.s * y2 + P.t[2] - obs[3 * i + 2];
    r[3 * i] = r0;
    r[3 * i + 1] = r1;
    r[3 * i + 2] = r2;
    e += a.weights[i] * (r0 * r0 + r1 * r1 + r2 * r2);
  }
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
  const int64_t K = a.K, M = K + 7;
  const double* R = P.R;
  const double s = P.s;
  const double p[3] = {a.pivot[0], a.pivot[1], a.pivot[2]};
  double m[kMoments] = {};
  for (int64_t i = threadIdx.x; i < a.V; i += blockDim.x) {
    const double om = a.weights[i];
    const double ax = X[3 * i] - p[0], ay = X[3 * i + 1] - p[1], az = X[3 * i + 2] - p[2];
    const double q0 = R[0] * ax + R[1] * ay + R[2] * az;
    const double q1 = R[3] * ax + R[4] * ay + R[5] * az;
    const double q2 = R[6] * ax + R[7] * ay + R[8] * az;
    const double f0 = r[3 * i], f1 = -r[3 * i + 1], f2 = -r[3 * i + 2];  // F r
    const double y0 = q0 + p[0], y1 = q1 + p[1], y2 = q2 + p[2];
    m[0] += om;
    m[1] += om * q0; m[2] += om * q1; m[3] += om * q2;
    m[4] += om * q0 * q0; m[5] += om * q0 * q1; m[6] += om * q0 * q2;
    m[7] += om * q1 * q1; m[8] += om * q1 * q2; m[9] += om * q2 * q2;
    m[10] += om * (q1 * f2 - q2 * f1); m[11] += om * (q2 * f0 - q0 * f2); m[12] += om * (q0 * f1 - q1 * f0);
    m[13] += om * (y0 * y0 + y1 * y1 + y2 * y2);
    m[14] += om * (y0 * f0 + y1 * f1 + y2 * f2);
    m[15] += om * r[3 * i]; m[16] += om * r[3 * i + 1]; m[17] += om * r[3 * i + 2];
  }
  double tot[kMoments];
  for (int j = 0; j < kMoments; ++j) tot[j] = block_sum(m[j], red);
  const double Sw = tot[0], *Sq = tot + 1, *Sqq = tot + 4, *SqFr = tot + 10, SYY = tot[13], SFYr = tot[14];
  const double* Sr = tot + 15;
  if (threadIdx.x == 0) {  // pose block (7 x 7) and its gradient
    const double F[3] = {1.0, -1.0, -1.0};
    const double qq = Sqq[0] + Sqq[3] + Sqq[5];
    const double Q[9] = {Sqq[0], Sqq[1], Sqq[2], Sqq[1], Sqq[3], Sqq[4], Sqq[2], Sqq[4], Sqq[5]};
    double Hp[7][7] = {};
    for (int c = 0; c < 3; ++c)
      for (int e = 0; e < 3; ++e) Hp[c][e] = s * s * ((c == e ? qq : 0.0) - Q[3 * c + e]);
    const double qxp[3] = {Sq[1] * p[2] - Sq[2] * p[1], Sq[2] * p[0] - Sq[0] * p[2], Sq[0] * p[1] - Sq[1] * p[0]};
    const double exq[3][3] = {{0.0, -Sq[2], Sq[1]}, {Sq[2], 0.0, -Sq[0]}, {-Sq[1], Sq[0], 0.0}};
    for (int c = 0; c < 3; ++c) {
      Hp[c][3] = s * qxp[c];
      for (int e = 0; e < 3; ++e) Hp[c][4 + e] = s * F[e] * exq[c][e];
    }
    const double SY[3] = {Sq[0] + Sw * p[0], Sq[1] + Sw * p[1], Sq[2] + Sw * p[2]};
    Hp[3][3] = SYY;
    for (int e = 0; e < 3; ++e) Hp[3][4 + e] = F[e] * SY[e];
    for (int e = 0; e < 3; ++e) Hp[4 + e][4 + e] = Sw;
    const double gp[7] = {s * SqFr[0], s * SqFr[1], s * SqFr[2], SFYr, Sr[0], Sr[1], Sr[2]};
    for (int i = 0; i < 7; ++i) {
      S.g[K + i] = gp[i];
      for (int j = i; j < 7; ++j) S.H[(K + i) * M + K + j] = S.H[(K + j) * M + K + i] = Hp[i][j];
    }
  }
  // blendshape rows: thread j fills row j (and the pose columns' mirror)
  double Rtp[3];
  mat_t_vec(R, p, Rtp);
  const double Ft[3] = {P.t[0], -P.t[1], -P.t[2]};
  double RtFt[3];
  mat_t_vec(R, Ft, RtFt);
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
    const double* G = a.gram + j * K;
    const double* bs = a.bsum + 3 * j;
    double gw = 0.0;
    double v[3] = {a.cross_t[3 * j] - (p[1] * bs[2] - p[2] * bs[1]), a.cross_t[3 * j + 1] - (p[2] * bs[0] - p[0] * bs[2]),
                   a.cross_t[3 * j + 2] - (p[0] * bs[1] - p[1] * bs[0])};
    for (int64_t k = 0; k < K; ++k) {
      gw += w[k] * G[k];
      const double* C = a.cross + (k * K + j) * 3;
      v[0] += w[k] * C[0];
      v[1] += w[k] * C[1];
      v[2] += w[k] * C[2];
      S.H[j * M + k] = s * s * G[k] + (k == j ? a.prior[j] : 0.0);
    }
    const double* N = S.N + 9 * j;
    double tr = 0.0;
    for (int c = 0; c < 3; ++c)
      for (int d = 0; d < 3; ++d) tr += R[3 * d + c] * (d == 0 ? 1.0 : -1.0) * N[3 * c + d];
    S.g[j] = s * (s * (a.gram_t[j] - dot3(bs, p) + gw + dot3(bs, Rtp)) + dot3(bs, RtFt) - tr) + a.prior[j] * w[j] +
             a.l1[j];
    double Rv[3], RSb[3];
    mat_vec(R, v, Rv);
    mat_vec(R, bs, RSb);
    const double hs = s * (a.gram_t[j] - dot3(bs, p) + gw + dot3(bs, Rtp));
    const double row[7] = {s * s * Rv[0], s * s * Rv[1], s * s * Rv[2], hs, s * RSb[0], -s * RSb[1], -s * RSb[2]};
    for (int m2 = 0; m2 < 7; ++m2) S.H[j * M + K + m2] = S.H[(K + m2) * M + j] = row[m2];
  }
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
          S.active[k] = (S.cw[k] <= a.lo[k] + 1e-7 && S.g[k] > 0) || (S.cw[k] >= a.hi[k] - 1e-7 && S.g[k] < 0);
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
        if (!status) continue;
        for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
          S.cand[k] = fmin(double(a.hi[k]), fmax(double(a.lo[k]), double(wout[k]) - S.d[k]));
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
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    last_error() = cudaGetErrorString(err);
    return kCudaError;
  }
  return kOk;
}

}  // namespace facelang
