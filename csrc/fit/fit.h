// Per-frame face fit: bounded Levenberg-Marquardt on blendshape weights, head
// rotation and a weak-perspective camera, for many frames at once.
//
//   X_i = tmpl_i + sum_k w_k basis_k,i            (model frame, mm)
//   Y_i = R (X_i - pivot) + pivot
//   r_i = s * F * Y_i + t - obs_i,  F = diag(1, -1, -1)  (MediaPipe pixels)
//   E   = 1/2 sum_i weights_i |r_i|^2 + sum_k (1/2 prior_k w_k^2 + l1_k w_k),  lo <= w <= hi
//   (l1 is a sparsity prior: linear in w because the weights are bounded below by 0)
//
// Every block of J^T J that involves w is assembled from quantities that
// depend only on the model and landmark weights (precomputed once, see
// pyfacelang/track/fit_model.py), so an iteration costs two K x 3V
// matrix-vector products (model evaluation and gradient) plus O(K^2) work.
// Torch twin: pyfacelang/_reference.py::fit_lm_ref.
#pragma once

#include <cstdint>

#include "../common/status.h"

namespace facelang {

struct FitArgs {
  // ---- model (identity already applied to tmpl), float32, C-contiguous
  const float* tmpl = nullptr;     // (V, 3) neutral vertices for this identity, mm
  const float* basis = nullptr;    // (K, V, 3) blendshape displacements, mm
  const float* weights = nullptr;  // (V,) landmark weights (same on x, y, z)
  const float* lo = nullptr;       // (K,) lower bounds of w
  const float* hi = nullptr;       // (K,) upper bounds of w
  const float* prior = nullptr;    // (K,) ridge prior strength toward w = 0
  const float* l1 = nullptr;       // (K,) linear (sparsity) prior per unit weight
  float pivot[3] = {0, 0, 0};      // head rotation centre, mm
  // ---- precomputed, float64 (sums over landmarks i with weights_i)
  const double* gram = nullptr;    // (K, K)    sum_i w_i B_k,i . B_j,i
  const double* cross = nullptr;   // (K, K, 3) sum_i w_i B_k,i x B_j,i
  const double* bsum = nullptr;    // (K, 3)    sum_i w_i B_k,i
  const double* gram_t = nullptr;  // (K,)      sum_i w_i B_k,i . tmpl_i
  const double* cross_t = nullptr; // (K, 3)    sum_i w_i tmpl_i x B_k,i
  // ---- per frame
  const float* obs = nullptr;      // (N, V, 3) landmarks in pixels (x, y down, z depth)
  float* w = nullptr;              // (N, K) in: start, out: solution
  float* rot = nullptr;            // (N, 3, 3) row-major, in/out
  float* scale = nullptr;          // (N,) pixels per mm, in/out
  float* trans = nullptr;          // (N, 3) pixels, in/out
  float* cost = nullptr;           // (N,) out: final E
  int32_t* iters = nullptr;        // (N,) out: iterations run
  // ---- sizes and settings
  int64_t N = 0, V = 0, K = 0;
  int max_iters = 10;              // LM iterations per frame
  int max_trials = 6;              // damping increases per iteration before giving up
  float mu0 = 1e-3f;               // initial Marquardt damping
  float tol = 1e-6f;               // stop when the relative cost decrease is below this
  int chain = 0;                   // 1: frames form a sequence; frame n starts from frame n-1's
                                   //    solution (its own inputs are ignored except for n = 0)
  int num_threads = 0;             // CPU: threads across frames (<= 0: all cores; 1 when chained)
  void* stream = nullptr;          // CUDA stream
  double* scratch = nullptr;       // CUDA only: device scratch, fit_cuda_scratch_doubles(...) doubles
};

// Returns a Status code. CPU: host pointers; CUDA: device pointers.
int fit_cpu(const FitArgs& a);
#ifdef FACELANG_WITH_CUDA
int fit_cuda(const FitArgs& a);
#endif

// Size of the CUDA scratch buffer in doubles.
// Per frame (fit_cuda.cu::carve): H, A (M*M each); g, d, gf, df, cw, cand (M each);
// obs moments (9K); points and residuals, current and candidate (4 * 3V);
// two index arrays (M longs) and two flag arrays (M bytes each), with slack.
inline int64_t fit_cuda_scratch_doubles(int64_t N, int64_t V, int64_t K) {
  const int64_t M = K + 7;
  return N * (2 * M * M + 6 * M + 9 * K + 12 * V + 2 * M + (M + 7) / 8 + (M + 7) / 8 + 8);
}

inline int fit(const FitArgs& a, bool on_cuda) {
  if (on_cuda) {
#ifdef FACELANG_WITH_CUDA
    return fit_cuda(a);
#else
    return kCudaUnavailable;
#endif
  }
  return fit_cpu(a);
}

inline int fit_validate(const FitArgs& a) {
  if (a.N < 0 || a.V <= 0 || a.K <= 0 || a.max_iters < 0 || a.max_trials <= 0) return kInvalidArgument;
  const void* req[] = {a.tmpl, a.basis, a.weights, a.lo, a.hi, a.prior, a.l1, a.gram, a.cross, a.bsum,
                       a.gram_t, a.cross_t, a.obs, a.w, a.rot, a.scale, a.trans, a.cost, a.iters};
  for (const void* p : req)
    if (!p) return kInvalidArgument;
  return kOk;
}

}  // namespace facelang
