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
  const double* R = P.R;
  for (int64_t i = 0; i < a.V; ++i) {
    const double ax = X[3 * i] - a.pivot[0], ay = X[3 * i + 1] - a.pivot[1], az = X[3 * i + 2] - a.pivot[2];
    const double y0 = R[0] * ax + R[1] * ay + R[2] * az + a.pivot[0];
    const double y1 = R[3] * ax + R[4] * ay + R[5] * az + a.pivot[1];
    const double y2 = R[6] * ax + R[7] * ay + R[8] * az + a.pivot[2];
    const double r0 = P.s * y0 + P.t[0] - obs[3 * i];
    const double r1 = -P.s * y1 + P.t[1] - obs[3 * i + 1];
    const double r2 = -P.s * y2 + P.t[2] - obs[3 * i + 2];
    r[3 * i] = float(r0);
    r[3 * i + 1] = float(r1);
    r[3 * i + 2] = float(r2);
    e += a.weights[i] * (r0 * r0 + r1 * r1 + r2 * r2);
  }
  e *= 0.5;
  for (int64_t k = 0; k < a.K; ++k) e += (0.5 * a.prior[k] * double(w[k]) + a.l1[k]) * double(w[k]);
  return e;
}

// Normal equations H (M x M), gradient g (M) at (w, P) with points X and residuals r.
void assemble(const FitArgs& a, const float* w, const Pose& P, const float* X, const float* r, Work& wk) {
  const int64_t K = a.K, M = K + 7;
  double* H = wk.H.data();
  double* g = wk.g.data();
  std::fill(wk.H.begin(), wk.H.end(), 0.0);
  std::fill(wk.g.begin(), wk.g.end(), 0.0);
  const double* R = P.R;
  const double s = P.s;
  const double p[3] = {a.pivot[0], a.pivot[1], a.pivot[2]};
  // --- pose block (rotation d, scale, translation) from landmark moments:
  //   H_dd = s^2 sum om (|q|^2 I - q q^T)   H_ds = s (sum om q) x p
  //   H_dt[c][e] = s F_e (e_c x sum om q)_e  H_ss = sum om |Y|^2
  //   H_st[e] = F_e sum om Y_e              H_tt = (sum om) I
  //   g_d = s sum om q x (F r)   g_s = sum om (F Y) . r   g_t = sum om r
  double Sw = 0, Sq[3] = {0, 0, 0}, Sqq[6] = {0, 0, 0, 0, 0, 0}, SqFr[3] = {0, 0, 0}, SYY = 0, SFYr = 0;
  double Sr[3] = {0, 0, 0};
  for (int64_t i = 0; i < a.V; ++i) {
    const double om = a.weights[i];
    const double ax = X[3 * i] - p[0], ay = X[3 * i + 1] - p[1], az = X[3 * i + 2] - p[2];
    const double q0 = R[0] * ax + R[1] * ay + R[2] * az;
    const double q1 = R[3] * ax + R[4] * ay + R[5] * az;
    const double q2 = R[6] * ax + R[7] * ay + R[8] * az;
    const double r0 = r[3 * i], r1 = r[3 * i + 1], r2 = r[3 * i + 2];
    const double f0 = r0, f1 = -r1, f2 = -r2;  // F r
    const double y0 = q0 + p[0], y1 = q1 + p[1], y2 = q2 + p[2];
    Sw += om;
    Sq[0] += om * q0; Sq[1] += om * q1; Sq[2] += om * q2;
    Sqq[0] += om * q0 * q0; Sqq[1] += om * q0 * q1; Sqq[2] += om * q0 * q2;
    Sqq[3] += om * q1 * q1; Sqq[4] += om * q1 * q2; Sqq[5] += om * q2 * q2;
    SqFr[0] += om * (q1 * f2 - q2 * f1); SqFr[1] += om * (q2 * f0 - q0 * f2); SqFr[2] += om * (q0 * f1 - q1 * f0);
    SYY += om * (y0 * y0 + y1 * y1 + y2 * y2);
    SFYr += om * (y0 * f0 + y1 * f1 + y2 * f2);
    Sr[0] += om * r0; Sr[1] += om * r1; Sr[2] += om * r2;
  }
  {
    const double F[3] = {1.0, -1.0, -1.0};
    const double qq = Sqq[0] + Sqq[3] + Sqq[5];
    const double Q[9] = {Sqq[0], Sqq[1], Sqq[2], Sqq[1], Sqq[3], Sqq[4], Sqq[2], Sqq[4], Sqq[5]};
    double Hp[7][7] = {};
    for (int c = 0; c < 3; ++c)
      for (int e = 0; e < 3; ++e) Hp[c][e] = s * s * ((c == e ? qq : 0.0) - Q[3 * c + e]);
    const double qxp[3] = {Sq[1] * p[2] - Sq[2] * p[1], Sq[2] * p[0] - Sq[0] * p[2], Sq[0] * p[1] - Sq[1] * p[0]};
    // e_c x Sq, as rows c
    const double exq[3][3] = {{0.0, -Sq[2], Sq[1]}, {Sq[2], 0.0, -Sq[0]}, {-Sq[1], Sq[0], 0.0}};
    for (int c = 0; c < 3; ++c) {
      Hp[c][3] = s * qxp[c];
      for (int e = 0; e < 3; ++e) Hp[c][4 + e] = s * F[e] * exq[c][e];
    }
    double SY[3] = {Sq[0] + Sw * p[0], Sq[1] + Sw * p[1], Sq[2] + Sw * p[2]};
    Hp[3][3] = SYY;
    for (int e = 0; e < 3; ++e) Hp[3][4 + e] = F[e] * SY[e];
    for (int e = 0; e < 3; ++e) Hp[4 + e][4 + e] = Sw;
    const double gp[7] = {s * SqFr[0], s * SqFr[1], s * SqFr[2], SFYr, Sr[0], Sr[1], Sr[2]};
    for (int m = 0; m < 7; ++m) {
      g[K + m] = gp[m];
      for (int n = m; n < 7; ++n) H[(K + m) * M + K + n] = H[(K + n) * M + K + m] = Hp[m][n];
    }
  }
  // --- blendshape blocks from the precomputed sums
  double Rtp[3];
  mat_t_vec(R, p, Rtp);
  for (int64_t j = 0; j < K; ++j) {
    const double* G = a.gram + j * K;
    const double* bs = a.bsum + 3 * j;
    double gw = 0.0;  // sum_k w_k G_jk
    double v[3] = {a.cross_t[3 * j] - (p[1] * bs[2] - p[2] * bs[1]),  // v_j = CT_j - p x Sb_j + sum_k w_k C_kj
                   a.cross_t[3 * j + 1] - (p[2] * bs[0] - p[0] * bs[2]),
                   a.cross_t[3 * j + 2] - (p[0] * bs[1] - p[1] * bs[0])};
    for (int64_t k = 0; k < K; ++k) {
      const double wk_ = w[k];
      gw += wk_ * G[k];
      const double* C = a.cross + (k * K + j) * 3;
      v[0] += wk_ * C[0];
      v[1] += wk_ * C[1];
      v[2] += wk_ * C[2];
      if (k >= j) H[j * M + k] = H[k * M + j] = s * s * G[k];
    }
    H[j * M + j] += a.prior[j];
    {  // gradient (see obs_moments)
      const double* N = wk.N.data() + 9 * j;
      double tr = 0.0;  // tr(R^T F N_j^T) = sum_{c,d} R[d][c] F_d N_j[c][d]
      for (int c = 0; c < 3; ++c)
        for (int d = 0; d < 3; ++d) tr += R[3 * d + c] * (d == 0 ? 1.0 : -1.0) * N[3 * c + d];
      double RtFt[3];
      const double Ft[3] = {P.t[0], -P.t[1], -P.t[2]};
      mat_t_vec(R, Ft, RtFt);
      g[j] = s * (s * (a.gram_t[j] - dot3(bs, p) + gw + dot3(bs, Rtp)) + dot3(bs, RtFt) - tr) +
             a.prior[j] * double(w[j]) + a.l1[j];
    }
    double Rv[3];
    mat_vec(R, v, Rv);
    const double hs = s * (a.gram_t[j] - dot3(bs, p) + gw + dot3(bs, Rtp));
    double RSb[3];
    mat_vec(R, bs, RSb);
    const double row[7] = {s * s * Rv[0], s * s * Rv[1], s * s * Rv[2], hs, s * RSb[0], -s * RSb[1], -s * RSb[2]};
    for (int m = 0; m < 7; ++m) H[j * M + K + m] = H[(K + m) * M + j] = row[m];
  }
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
