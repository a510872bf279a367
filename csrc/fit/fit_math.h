// Small dense math shared by the CPU and CUDA fitters (host + device).
#pragma once

#include <cmath>

#include "fit.h"

#ifdef __CUDACC__
#define FL_HD __host__ __device__
#else
#define FL_HD
#endif

namespace facelang {

// Head rotation (row-major), weak-perspective scale and translation, in double.
struct Pose {
  double R[9];
  double s;
  double t[3];
};

FL_HD inline double dot3(const double* a, const double* b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

FL_HD inline void mat_vec(const double* R, const double* v, double* out) {
  for (int r = 0; r < 3; ++r) out[r] = R[3 * r] * v[0] + R[3 * r + 1] * v[1] + R[3 * r + 2] * v[2];
}

FL_HD inline void mat_t_vec(const double* R, const double* v, double* out) {
  for (int c = 0; c < 3; ++c) out[c] = R[c] * v[0] + R[3 + c] * v[1] + R[6 + c] * v[2];
}

FL_HD inline Pose load_pose(const float* R, float s, const float* t) {
  Pose P;
  for (int i = 0; i < 9; ++i) P.R[i] = R[i];
  P.s = s;
  for (int i = 0; i < 3; ++i) P.t[i] = t[i];
  return P;
}

FL_HD inline void store_pose(const Pose& P, float* R, float* s, float* t) {
  for (int i = 0; i < 9; ++i) R[i] = float(P.R[i]);
  *s = float(P.s);
  for (int i = 0; i < 3; ++i) t[i] = float(P.t[i]);
}

// Rodrigues, with the same small-angle Taylor branch as
// pyfacelang/face/rotation.py::axis_angle_to_matrix.
FL_HD inline void exp_so3(const double* v, double* E) {
  const double t2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
  double a, b;
  if (t2 < 1e-8) {
    a = 1.0 - t2 / 6.0;
    b = 0.5 - t2 / 24.0;
  } else {
    const double t = sqrt(t2);
    a = sin(t) / t;
    b = (1.0 - cos(t)) / t2;
  }
  const double K[9] = {0, -v[2], v[1], v[2], 0, -v[0], -v[1], v[0], 0};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      double kk = K[3 * r] * K[c] + K[3 * r + 1] * K[3 + c] + K[3 * r + 2] * K[6 + c];
      E[3 * r + c] = (r == c ? 1.0 : 0.0) + a * K[3 * r + c] + b * kk;
    }
}

// Candidate pose for the LM step d = (d_rot (3), d_s, d_t (3)): R <- exp(-d_rot) R.
FL_HD inline Pose step_pose(const Pose& P, const double* d) {
  Pose C;
  const double nd[3] = {-d[0], -d[1], -d[2]};
  double E[9];
  exp_so3(nd, E);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      C.R[3 * r + c] = E[3 * r] * P.R[c] + E[3 * r + 1] * P.R[3 + c] + E[3 * r + 2] * P.R[6 + c];
  C.s = P.s - d[3];
  for (int i = 0; i < 3; ++i) C.t[i] = P.t[i] - d[4 + i];
  return C;
}

// Solves A x = b for symmetric positive definite A (M x M, overwritten by its
// Cholesky factor). Returns false if A is not positive definite.
FL_HD inline bool cholesky_solve(double* A, const double* b, double* x, long M) {
  for (long j = 0; j < M; ++j) {
    double d = A[j * M + j];
    for (long k = 0; k < j; ++k) d -= A[j * M + k] * A[j * M + k];
    if (!(d > 0.0)) return false;
    d = sqrt(d);
    A[j * M + j] = d;
    for (long i = j + 1; i < M; ++i) {
      double v = A[i * M + j];
      for (long k = 0; k < j; ++k) v -= A[i * M + k] * A[j * M + k];
      A[i * M + j] = v / d;
    }
  }
  for (long i = 0; i < M; ++i) {  // L y = b
    double v = b[i];
    for (long k = 0; k < i; ++k) v -= A[i * M + k] * x[k];
    x[i] = v / A[i * M + i];
  }
  for (long i = M - 1; i >= 0; --i) {  // L^T x = y
    double v = x[i];
    for (long k = i + 1; k < M; ++k) v -= A[k * M + i] * x[k];
    x[i] = v / A[i * M + i];
  }
  return true;
}

// Residual of one landmark, r = s F (R (X - p) + p) + t - obs, stored in r;
// returns |r|^2.
template <typename T>
FL_HD inline double landmark_residual(const T* X, const float* obs, const Pose& P, const float* pivot, T* r) {
  const double* R = P.R;
  const double ax = X[0] - pivot[0], ay = X[1] - pivot[1], az = X[2] - pivot[2];
  const double y0 = R[0] * ax + R[1] * ay + R[2] * az + pivot[0];
  const double y1 = R[3] * ax + R[4] * ay + R[5] * az + pivot[1];
  const double y2 = R[6] * ax + R[7] * ay + R[8] * az + pivot[2];
  const double r0 = P.s * y0 + P.t[0] - obs[0];
  const double r1 = -P.s * y1 + P.t[1] - obs[1];
  const double r2 = -P.s * y2 + P.t[2] - obs[2];
  r[0] = T(r0);
  r[1] = T(r1);
  r[2] = T(r2);
  return r0 * r0 + r1 * r1 + r2 * r2;
}

// ---- normal equations (see fit_cpu.cpp::assemble for the derivation) ----
constexpr int kMoments = 18;  // Sw, Sq[3], Sqq[6], SqFr[3], SYY, SFYr, Sr[3]

// Adds landmark i's contribution (weight om, model point X, residual r) to the
// pose moments m: q = R (X - p), Y = q + p.
template <typename T>
FL_HD inline void add_moments(double* m, double om, const T* X, const T* r, const double* R, const double* p) {
  const double ax = X[0] - p[0], ay = X[1] - p[1], az = X[2] - p[2];
  const double q0 = R[0] * ax + R[1] * ay + R[2] * az;
  const double q1 = R[3] * ax + R[4] * ay + R[5] * az;
  const double q2 = R[6] * ax + R[7] * ay + R[8] * az;
  const double f0 = r[0], f1 = -double(r[1]), f2 = -double(r[2]);  // F r
  const double y0 = q0 + p[0], y1 = q1 + p[1], y2 = q2 + p[2];
  m[0] += om;
  m[1] += om * q0; m[2] += om * q1; m[3] += om * q2;
  m[4] += om * q0 * q0; m[5] += om * q0 * q1; m[6] += om * q0 * q2;
  m[7] += om * q1 * q1; m[8] += om * q1 * q2; m[9] += om * q2 * q2;
  m[10] += om * (q1 * f2 - q2 * f1); m[11] += om * (q2 * f0 - q0 * f2); m[12] += om * (q0 * f1 - q1 * f0);
  m[13] += om * (y0 * y0 + y1 * y1 + y2 * y2);
  m[14] += om * (y0 * f0 + y1 * f1 + y2 * f2);
  m[15] += om * r[0]; m[16] += om * r[1]; m[17] += om * r[2];
}

// Pose block of H (rows/columns K..K+6: rotation d, scale, translation) and of g
// from the summed moments:
//   H_dd = s^2 sum om (|q|^2 I - q q^T)   H_ds = s (sum om q) x p
//   H_dt[c][e] = s F_e (e_c x sum om q)_e  H_ss = sum om |Y|^2
//   H_st[e] = F_e sum om Y_e              H_tt = (sum om) I
//   g_d = s sum om q x (F r)   g_s = sum om (F Y) . r   g_t = sum om r
FL_HD inline void pose_block(const double* m, double s, const double* p, double* H, double* g, long K) {
  const long M = K + 7;
  const double F[3] = {1.0, -1.0, -1.0};
  const double Sw = m[0], *Sq = m + 1, *Sqq = m + 4, *SqFr = m + 10, SYY = m[13], SFYr = m[14], *Sr = m + 15;
  const double qq = Sqq[0] + Sqq[3] + Sqq[5];
  const double Q[9] = {Sqq[0], Sqq[1], Sqq[2], Sqq[1], Sqq[3], Sqq[4], Sqq[2], Sqq[4], Sqq[5]};
  double Hp[7][7] = {};
  for (int c = 0; c < 3; ++c)
    for (int e = 0; e < 3; ++e) Hp[c][e] = s * s * ((c == e ? qq : 0.0) - Q[3 * c + e]);
  const double qxp[3] = {Sq[1] * p[2] - Sq[2] * p[1], Sq[2] * p[0] - Sq[0] * p[2], Sq[0] * p[1] - Sq[1] * p[0]};
  const double exq[3][3] = {{0.0, -Sq[2], Sq[1]}, {Sq[2], 0.0, -Sq[0]}, {-Sq[1], Sq[0], 0.0}};  // e_c x Sq
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
    g[K + i] = gp[i];
    for (int j = i; j < 7; ++j) H[(K + i) * M + K + j] = H[(K + j) * M + K + i] = Hp[i][j];
  }
}

// Row j of H (all K weight columns and the 7 pose columns, mirrored into
// column j) and g[j], from the precomputed sums and the frame's observation
// moments N_j (3x3); w: current weights.
template <typename T>
FL_HD inline void weight_row(const FitArgs& a, long j, const T* w, const Pose& P, const double* N, double* H,
                             double* g) {
  const long K = a.K, M = K + 7;
  const double* R = P.R;
  const double s = P.s;
  const double p[3] = {a.pivot[0], a.pivot[1], a.pivot[2]};
  const double* G = a.gram + j * K;
  const double* bs = a.bsum + 3 * j;
  double Rtp[3], RtFt[3];
  mat_t_vec(R, p, Rtp);
  const double Ft[3] = {P.t[0], -P.t[1], -P.t[2]};
  mat_t_vec(R, Ft, RtFt);
  double gw = 0.0;  // sum_k w_k G_jk; v_j = CT_j - p x Sb_j + sum_k w_k C_kj
  double v[3] = {a.cross_t[3 * j] - (p[1] * bs[2] - p[2] * bs[1]), a.cross_t[3 * j + 1] - (p[2] * bs[0] - p[0] * bs[2]),
                 a.cross_t[3 * j + 2] - (p[0] * bs[1] - p[1] * bs[0])};
  for (long k = 0; k < K; ++k) {
    const double wk = w[k];
    gw += wk * G[k];
    const double* C = a.cross + (k * K + j) * 3;
    v[0] += wk * C[0];
    v[1] += wk * C[1];
    v[2] += wk * C[2];
    H[j * M + k] = s * s * G[k] + (k == j ? a.prior[j] : 0.0);
  }
  double tr = 0.0;  // tr(R^T F N_j^T) = sum_{c,d} R[d][c] F_d N_j[c][d]
  for (int c = 0; c < 3; ++c)
    for (int d = 0; d < 3; ++d) tr += R[3 * d + c] * (d == 0 ? 1.0 : -1.0) * N[3 * c + d];
  const double hs = s * (a.gram_t[j] - dot3(bs, p) + gw + dot3(bs, Rtp));
  g[j] = s * (s * (a.gram_t[j] - dot3(bs, p) + gw + dot3(bs, Rtp)) + dot3(bs, RtFt) - tr) +
         a.prior[j] * double(w[j]) + a.l1[j];
  double Rv[3], RSb[3];
  mat_vec(R, v, Rv);
  mat_vec(R, bs, RSb);
  const double row[7] = {s * s * Rv[0], s * s * Rv[1], s * s * Rv[2], hs, s * RSb[0], -s * RSb[1], -s * RSb[2]};
  for (int m = 0; m < 7; ++m) H[j * M + K + m] = H[(K + m) * M + j] = row[m];
}

// Scratch for bounded_step, as raw pointers so the CPU and CUDA paths share it.
struct StepWork {
  double* A;               // (M*M) damped free-variable system
  double* gf;              // (M) right-hand side over free variables
  double* df;              // (M) its solution
  double* d;               // (M) full step (out)
  unsigned char* active;   // (K) weights at a bound with the gradient pushing out (in)
  unsigned char* fixed;    // (M) variables held fixed in the current solve
  long* free_idx;          // (M) indices of the free variables
  long* clamped;           // (M) weights fixed at a bound within this step
};

// Twin of _reference.bounded_step: solve (H + mu diag(H)) d = g over the free
// variables; weights flagged `active` keep d = 0, and a free weight whose step
// would leave [lo, hi] is fixed at that bound (d = w - bound) and the others
// re-solved, up to 4 rounds. Returns false if the system is not positive definite.
FL_HD inline bool bounded_step(long K, const float* lo, const float* hi, const double* H, const double* g,
                               const float* w, double mu, StepWork& s) {
  const long M = K + 7;
  for (long m = 0; m < M; ++m) {
    s.d[m] = 0.0;
    s.fixed[m] = m < K ? s.active[m] : 0;
  }
  for (int round = 0; round < 4; ++round) {
    long nf = 0, nc = 0;
    for (long m = 0; m < M; ++m) {
      if (!s.fixed[m]) s.free_idx[nf++] = m;
      else if (s.d[m] != 0.0) s.clamped[nc++] = m;
    }
    for (long i = 0; i < nf; ++i) {
      const double* Hrow = H + s.free_idx[i] * M;
      double rhs = g[s.free_idx[i]];
      for (long c = 0; c < nc; ++c) rhs -= Hrow[s.clamped[c]] * s.d[s.clamped[c]];  // off-diagonal: undamped
      s.gf[i] = rhs;
      for (long j = 0; j < nf; ++j) s.A[i * nf + j] = Hrow[s.free_idx[j]];
      s.A[i * nf + i] += mu * (Hrow[s.free_idx[i]] + 1e-9);
    }
    if (!cholesky_solve(s.A, s.gf, s.df, nf)) return false;
    for (long i = 0; i < nf; ++i) s.d[s.free_idx[i]] = s.df[i];
    bool out = false;
    for (long k = 0; k < K; ++k) {
      if (s.fixed[k]) continue;
      const double nw = double(w[k]) - s.d[k];
      if (nw < lo[k] || nw > hi[k]) {
        s.d[k] = double(w[k]) - (nw < lo[k] ? lo[k] : hi[k]);
        s.fixed[k] = 1;
        out = true;
      }
    }
    if (!out) break;
  }
  return true;
}

}  // namespace facelang
