// Nearest code (vector quantization), squared L2:
//   idx[n]  = argmin_k ||x[n] - codebook[k]||^2   (ties -> lowest k)
//   dist[n] = sum_d (x[n, d] - codebook[idx[n], d])^2, evaluated in fp32
// The tokenizer's inner loop: one query per frame live, 1e5+ when building a
// corpus. Torch twin: pyfacelang/_reference.py::nearest_code_ref.
#pragma once

#include <cstdint>

#include "../common/status.h"

namespace facelang {

// The whole CPU/CUDA interface: raw pointers (all host pointers for the CPU
// path, all device pointers for the CUDA path), C-contiguous.
struct VqArgs {
  const float* x = nullptr;         // (N, D) float32 queries, finite
  const float* codebook = nullptr;  // (K, D) float32 codes, finite
  int32_t* idx = nullptr;           // (N,) output: index of the nearest code
  float* dist = nullptr;            // (N,) output: squared distance to it (>= 0)
  int64_t N = 0;                    // number of queries (may be 0)
  int64_t K = 0;                    // number of codes (>= 1)
  int64_t D = 0;                    // dimension (>= 1)
  bool exact = false;               // CPU only: fp32 first pass instead of bf16 (same
                                    // answers, slower); the CUDA path is always fp32
  int num_threads = 0;              // CPU only: worker threads, <= 0 means all cores
  void* stream = nullptr;           // CUDA only: cudaStream_t to launch on (null = default)
};

// Returns a Status code (0 = ok). Validates sizes and pointers.
int vq_cpu(const VqArgs& a);
#ifdef FACELANG_WITH_CUDA
int vq_cuda(const VqArgs& a);
#endif

// Device dispatch: on_cuda selects the CUDA path (kCudaUnavailable when the
// extension was built without CUDA).
inline int vq(const VqArgs& a, bool on_cuda) {
  if (on_cuda) {
#ifdef FACELANG_WITH_CUDA
    return vq_cuda(a);
#else
    return kCudaUnavailable;
#endif
  }
  return vq_cpu(a);
}

// True when none of the n floats is NaN or infinite (x - x is 0 exactly for
// finite x and NaN otherwise). One vectorized pass, no threads: the wrappers'
// input check, cheaper than torch.isfinite and its thread pool.
inline bool vq_all_finite(const float* p, int64_t n) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) bad |= int(p[i] - p[i] != 0.0f);
  return bad == 0;
}

inline int vq_validate(const VqArgs& a) {
  if (a.N < 0 || a.K <= 0 || a.D <= 0 || a.K > INT32_MAX) return kInvalidArgument;
  if (a.N > 0 && (!a.x || !a.codebook || !a.idx || !a.dist)) return kInvalidArgument;
  return kOk;
}

}  // namespace facelang
