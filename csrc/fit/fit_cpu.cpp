// CPU path of fit.h: threads across frames; per frame the same bounded
// Levenberg-Marquardt steps as pyfacelang/_reference.py::fit_lm_ref.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/parallel.h"
#include "fit.h"
#include "fit_math.h"

namespace facelang {

namespace {

// Per-thread scratch for one frame.
struct Work {
  std::vector<float> X, r;             // (V*3) model points, residuals
  std::vector<float> u;                // 3 x padded(V*3): om * obs coordinate d, repeated per xyz
  std::vector<double> N;               // (K, 3, 3) per-frame observation moments
  std::vector<double> H, A, g, d;      // normal matrix, damped copy, gradient, step
  std::vector<float> cw;               // candidate weights (K)
  std::vector<float> cX, cr;           // candidate model points / residuals
  std::vector<unsigned char> active;   // (K) bound-active flags
  std::vector<unsigned char> fixed;    // (K+7) variables held fixed in the current solve
  std::vector<long> free, clamped;     // free variables / weights clamped within a step
  std::vector<double> gf, df;          // gradient and step restricted to the free variables
  StepWork step;                       // raw views of the above for bounded_step (so no copies)
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
  explicit Work(int64_t V, int64_t K)
      : X(V * 3), r(V * 3), u(3 * ((V * 3 + 47) / 48 * 48)), N(9 * K), H((K + 7) * (K + 7)), A((K + 7) * (K + 7)), g(K + 7), d(K + 7),
        cw(K), cX(V * 3), cr(V * 3), active(K), fixed(K + 7), free(K + 7), clamped(K + 7), gf(K + 7), df(K + 7) {
    step = {A.data(), gf.data(), df.data(), d.data(), active.data(), fixed.data(), free.data(), clamped.data()};
  }
};

// X = tmpl + sum_k w_k basis_k (k-outer: streams each basis row once).
void model_points(const FitArgs& a, const float* w, float* X) {
  const int64_t n = a.V * 3;
  std::copy(a.tmpl, a.tmpl + n, X);
  for (int64_t k = 0; k < a.K; ++k) {
    const float wk = w[k];
    if (wk == 0.0f) continue;  // exact: the fit's bases are finite; most weights sit at 0
    const float* row = a.basis + k * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) X[j] += wk * row[j];
  }
}

// Per frame: N[k] (3x3) = sum_i om_i basis_k,i obs_i^T, so that the
// blendshape gradient needs no pass over the basis per iteration:
//   g_w[k] = s (s (gram_t_k - bsum_k.p + (G w)_k + bsum_k.R^T p) + bsum_k.R^T F t - tr(R^T F N_k^T))
// Blocks of 48 floats keep each vector lane on one coordinate (48 = 3 * 16).
void obs_moments(const FitArgs& a, const float* obs, Work& wk) {
  constexpr int kB = 48;
  const int64_t n3 = a.V * 3, padded = wk.u.size() / 3;
  for (int d = 0; d < 3; ++d) {
    float* u = wk.u.data() + d * padded;
    for (int64_t i = 0; i < a.V; ++i) {
      const float v = a.weights[i] * obs[3 * i + d];
      u[3 * i] = u[3 * i + 1] = u[3 * i + 2] = v;
    }
    for (int64_t m = n3; m < padded; ++m) u[m] = 0.0f;
  }
  for (int64_t k = 0; k < a.K; ++k) {
    const float* row = a.basis + k * n3;
    double* N = wk.N.data() + 9 * k;
    for (int d = 0; d < 3; ++d) {
      const float* u = wk.u.data() + d * padded;
      float acc[kB] = {};
      int64_t m = 0;
      for (; m + kB <= n3; m += kB)
#pragma omp simd
        for (int l = 0; l < kB; ++l) acc[l] += row[m + l] * u[m + l];
      for (int l = 0; m + l < n3; ++l) acc[l] += row[m + l] * u[m + l];
      double c3[3] = {0, 0, 0};
      for (int l = 0; l < kB; l += 3) {
        c3[0] += acc[l];
        c3[1] += acc[l + 1];
        c3[2] += acc[l + 2];
      }
      for (int c = 0; c < 3; ++c) N[3 * c + d] = c3[c];
    }
  }
}

// r = s F (R (X - p) + p) + t - obs; returns the cost E.
double residuals(const FitArgs& a, const float* obs, const float* X, const Pose& P, const float* w, float* r) {
  double e = 0.0;
  for (int64_t i = 0; i < a.V; ++i) e += a.weights[i] * landmark_residual(X + 3 * i, obs + 3 * i, P, a.pivot, r + 3 * i);
  e *= 0.5;
  for (int64_t k = 0; k < a.K; ++k) e += (0.5 * a.prior[k] * double(w[k]) + a.l1[k]) * double(w[k]);
  return e;
}

// Normal equations H (M x M), gradient g (M) at (w, P) with points X and residuals r.
void assemble(const FitArgs& a, const float* w, const Pose& P, const float* X, const float* r, Work& wk) {
  const int64_t K = a.K;
  double* H = wk.H.data();
  double* g = wk.g.data();
  std::fill(wk.H.begin(), wk.H.end(), 0.0);
  std::fill(wk.g.begin(), wk.g.end(), 0.0);
  const double p[3] = {a.pivot[0], a.pivot[1], a.pivot[2]};
  double m[kMoments] = {};
  for (int64_t i = 0; i < a.V; ++i) add_moments(m, a.weights[i], X + 3 * i, r + 3 * i, P.R, p);
  pose_block(m, P.s, p, H, g, K);
  for (int64_t j = 0; j < K; ++j) weight_row(a, j, w, P, wk.N.data() + 9 * j, H, g);
}

void fit_frame(const FitArgs& a, int64_t n, Work& wk) {
  const int64_t K = a.K;
  const float* obs = a.obs + n * a.V * 3;
  float* w = a.w + n * K;
  if (a.chain && n > 0) {  // warm start from the previous frame's solution
    std::copy(w - K, w, w);
    std::copy(a.rot + 9 * (n - 1), a.rot + 9 * n, a.rot + 9 * n);
    a.scale[n] = a.scale[n - 1];
    std::copy(a.trans + 3 * (n - 1), a.trans + 3 * n, a.trans + 3 * n);
  }
  Pose P = load_pose(a.rot + 9 * n, a.scale[n], a.trans + 3 * n);
  obs_moments(a, obs, wk);
  model_points(a, w, wk.X.data());
  double cost = residuals(a, obs, wk.X.data(), P, w, wk.r.data());
  double mu = a.mu0;
  int it = 0;
  for (it = 1; it <= a.max_iters; ++it) {
    assemble(a, w, P, wk.X.data(), wk.r.data(), wk);
    double* H = wk.H.data();
    double* g = wk.g.data();
    for (int64_t k = 0; k < K; ++k)
      wk.active[k] = (w[k] <= a.lo[k] + 1e-7f && g[k] > 0) || (w[k] >= a.hi[k] - 1e-7f && g[k] < 0);
    bool accepted = false;
    double c_cost = cost;
    Pose cP;
    for (int trial = 0; trial < a.max_trials; ++trial) {
      if (!bounded_step(K, a.lo, a.hi, H, g, w, mu, wk.step)) {
        mu *= 4.0;
        continue;
      }
      for (int64_t k = 0; k < K; ++k) wk.cw[k] = std::min(a.hi[k], std::max(a.lo[k], float(w[k] - wk.d[k])));
      cP = step_pose(P, wk.d.data() + K);
      model_points(a, wk.cw.data(), wk.cX.data());
      c_cost = residuals(a, obs, wk.cX.data(), cP, wk.cw.data(), wk.cr.data());
      if (c_cost < cost) {
        accepted = true;
        mu = std::max(mu / 3.0, 1e-9);
        break;
      }
      mu *= 4.0;
    }
    if (!accepted) break;
    const bool done = (cost - c_cost) <= a.tol * cost;
    std::copy(wk.cw.begin(), wk.cw.end(), w);
    wk.X.swap(wk.cX);
    wk.r.swap(wk.cr);
    P = cP;
    cost = c_cost;
    if (done) break;
  }
  store_pose(P, a.rot + 9 * n, a.scale + n, a.trans + 3 * n);
  a.cost[n] = float(cost);
  a.iters[n] = std::min(it, a.max_iters);
}

}  // namespace

int fit_cpu(const FitArgs& args) {
  int st = fit_validate(args);
  if (st != kOk) return st;
  const FitArgs& a = args;
  parallel_for(a.N, a.chain ? 1 : a.num_threads, /*min_grain=*/2, [&](int64_t lo, int64_t hi) {
    Work wk(a.V, a.K);
    for (int64_t n = lo; n < hi; ++n) fit_frame(a, n, wk);
  });
  return kOk;
}

}  // namespace facelang
