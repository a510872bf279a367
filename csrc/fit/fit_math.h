// Small dense math shared by the CPU and CUDA fitters (host + device).
#pragma once

#include <cmath>

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
