// CUDA path of blend.h: grid (ceil(V / kThreads), min(B, 65535)), one thread
// per vertex; blocks stride over the batch so any B works. The batch row's
// coefficients and pose are staged in shared memory.
#include <cuda_runtime.h>

#include "../common/cuda_check.h"

#include "blend.h"

namespace facelang {

namespace {

constexpr int kThreads = 128;

__global__ void blend_kernel(const float* __restrict__ tmpl, const float* __restrict__ basis,
                             const float* __restrict__ coeffs, const float* __restrict__ rot,
                             const float* __restrict__ trans, const float* __restrict__ scale,
                             float* __restrict__ out, int64_t B, int64_t V, int64_t K) {
  extern __shared__ float s_coeff[];  // (K,)
  __shared__ float s_pose[12];        // R (9, pre-scaled), t (3)
  const int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stride = V * 3;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    __syncthreads();  // previous row's shared values are no longer in use
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) s_coeff[k] = coeffs[b * K + k];
    if (threadIdx.x == 0) {
      const float s = scale ? scale[b] : 1.0f;
      for (int i = 0; i < 9; ++i) s_pose[i] = s * (rot ? rot[b * 9 + i] : (i % 4 == 0 ? 1.0f : 0.0f));
      for (int i = 0; i < 3; ++i) s_pose[9 + i] = trans ? trans[b * 3 + i] : 0.0f;
    }
    __syncthreads();
    if (v >= V) continue;
    float x = tmpl[v * 3 + 0], y = tmpl[v * 3 + 1], z = tmpl[v * 3 + 2];
    for (int64_t k = 0; k < K; ++k) {
      const float w = s_coeff[k];
      const float* row = basis + k * stride + v * 3;
      x += w * row[0];
      y += w * row[1];
      z += w * row[2];
    }
    const float* R = s_pose;
    float* o = out + (b * V + v) * 3;
    o[0] = R[0] * x + R[1] * y + R[2] * z + s_pose[9];
    o[1] = R[3] * x + R[4] * y + R[5] * z + s_pose[10];
    o[2] = R[6] * x + R[7] * y + R[8] * z + s_pose[11];
  }
}

}  // namespace

int blend_cuda(const BlendArgs& a) {
  int st = blend_validate(a);
  if (st != kOk) return st;
  if (a.B == 0) return kOk;
  const size_t shmem = static_cast<size_t>(a.K) * sizeof(float);
  if (shmem > 48 * 1024) {
    last_error() = "blend: too many basis shapes for the CUDA kernel (K > 12288)";
    return kInvalidArgument;
  }
  const int64_t rows = a.B < 65535 ? a.B : 65535;
  dim3 grid(static_cast<unsigned>((a.V + kThreads - 1) / kThreads), static_cast<unsigned>(rows));
  auto stream = static_cast<cudaStream_t>(a.stream);
  blend_kernel<<<grid, kThreads, shmem, stream>>>(a.tmpl, a.basis, a.coeffs, a.rot, a.trans, a.scale,
                                                  a.out, a.B, a.V, a.K);
  return launch_status("blend");
}

}  // namespace facelang
