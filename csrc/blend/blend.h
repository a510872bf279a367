// Blendshapes + rigid pose, batched:
//   out[b, v] = scale[b] * R[b] @ (tmpl[v] + sum_k coeffs[b, k] * basis[k, v]) + trans[b]
// This is the geometry of the built-in rig (identity + ARKit-52 bases, head
// pose) and the linear part of any blendshape model. Torch twin:
// pyfacelang/_reference.py::blend_ref.
#pragma once

#include <cstdint>

#include "../common/status.h"

namespace facelang {

// The whole CPU/CUDA interface: raw pointers (all host pointers for the CPU
// path, all device pointers for the CUDA path), float32, C-contiguous.
struct BlendArgs {
  const float* tmpl = nullptr;    // (V, 3) neutral vertices, mm
  const float* basis = nullptr;   // (K, V, 3) displacement per unit coefficient, mm
  const float* coeffs = nullptr;  // (B, K) coefficients (identity, then expression)
  const float* rot = nullptr;     // (B, 3, 3) row-major rotations; null = identity
  const float* trans = nullptr;   // (B, 3) translations, mm; null = zero
  const float* scale = nullptr;   // (B,) uniform scales; null = one
  float* out = nullptr;           // (B, V, 3) output vertices, mm
  int64_t B = 0;                  // batch size (frames)
  int64_t V = 0;                  // vertices per mesh
  int64_t K = 0;                  // number of basis shapes (may be 0)
  int num_threads = 0;            // CPU only: worker threads, <= 0 means all cores
  void* stream = nullptr;         // CUDA only: cudaStream_t to launch on (null = default)
};

// Returns a Status code (0 = ok). Validates sizes and pointers.
int blend_cpu(const BlendArgs& a);
#ifdef FACELANG_WITH_CUDA
int blend_cuda(const BlendArgs& a);
#endif

// Device dispatch: on_cuda selects the CUDA path (kCudaUnavailable when the
// extension was built without CUDA).
inline int blend(const BlendArgs& a, bool on_cuda) {
  if (on_cuda) {
#ifdef FACELANG_WITH_CUDA
    return blend_cuda(a);
#else
    return kCudaUnavailable;
#endif
  }
  return blend_cpu(a);
}

inline int blend_validate(const BlendArgs& a) {
  if (a.B < 0 || a.V <= 0 || a.K < 0) return kInvalidArgument;
  if (!a.tmpl || !a.out) return kInvalidArgument;
  if (a.K > 0 && (!a.basis || !a.coeffs)) return kInvalidArgument;
  return kOk;
}

}  // namespace facelang
