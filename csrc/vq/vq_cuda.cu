// CUDA path of vq.h: exact fp32 distances sum_d (x - c)^2, one query per
// thread, kQ queries per block. The block's queries ([dim][query], staged
// once when D <= kDC) and a tile of kTK codes ([code][dim]) sit in shared
// memory; each thread keeps kTK running distances in registers, reading the
// code tile as broadcast float4s, and keeps the first minimum (ties -> lowest
// index) as it walks the tiles in order. The (x - c)^2 form costs one more
// operation per multiply-add than ||c||^2 - 2 x.c but cannot cancel, so no
// re-ranking or error bound is needed (the CPU path needs them for bf16).
#include <cuda_runtime.h>

#include "../common/cuda_check.h"

#include "vq.h"

namespace facelang {

namespace {

constexpr int kQ = 128;  // queries per block, one per thread
constexpr int kTK = 32;  // codes per shared-memory tile (registers per thread)
constexpr int kDC = 64;  // dims per shared-memory chunk (multiple of 4)

__global__ void __launch_bounds__(kQ) vq_kernel(const float* __restrict__ x, const float* __restrict__ codebook,
                                                int32_t* __restrict__ idx, float* __restrict__ dist, int64_t N,
                                                int64_t K, int64_t D) {
  __shared__ float sX[kDC][kQ + 1];              // [dim][query], padded against bank conflicts
  __shared__ __align__(16) float sC[kTK][kDC];   // [code][dim], read as broadcast float4
  const int t = threadIdx.x;
  const int64_t q0 = int64_t(blockIdx.x) * kQ;
  const int64_t chunks = (D + kDC - 1) / kDC;
  float best = INFINITY;
  int64_t bi = 0;
  for (int64_t k0 = 0; k0 < K; k0 += kTK) {
    float acc[kTK];
#pragma unroll
    for (int j = 0; j < kTK; ++j) acc[j] = 0.0f;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t d0 = ch * kDC;
      const int dc = int(D - d0 < kDC ? D - d0 : kDC);
      __syncthreads();  // the previous tiles are no longer read
      if (chunks > 1 || k0 == 0) {
        for (int i = t; i < kQ * kDC; i += kQ) {  // coalesced along dims
          const int qq = i / kDC, dd = i % kDC;
          const int64_t q = q0 + qq;
          sX[dd][qq] = (q < N && dd < dc) ? x[q * D + d0 + dd] : 0.0f;
        }
      }
      for (int i = t; i < kTK * kDC; i += kQ) {
        const int j = i / kDC, dd = i % kDC;
        sC[j][dd] = (k0 + j < K && dd < dc) ? codebook[(k0 + j) * D + d0 + dd] : 0.0f;
      }
      __syncthreads();
      for (int dd = 0; dd < dc; dd += 4) {  // zero padding past dc adds (0 - 0)^2
        const float x0 = sX[dd][t], x1 = sX[dd + 1][t], x2 = sX[dd + 2][t], x3 = sX[dd + 3][t];
#pragma unroll
        for (int j = 0; j < kTK; ++j) {
          const float4 c = *reinterpret_cast<const float4*>(&sC[j][dd]);
          const float e0 = x0 - c.x, e1 = x1 - c.y, e2 = x2 - c.z, e3 = x3 - c.w;
          acc[j] = fmaf(e3, e3, fmaf(e2, e2, fmaf(e1, e1, fmaf(e0, e0, acc[j]))));
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kTK; ++j) {
      if (k0 + j < K && acc[j] < best) {
        best = acc[j];
        bi = k0 + j;
      }
    }
  }
  const int64_t q = q0 + t;
  if (q >= N) return;
  idx[q] = int32_t(bi);
  dist[q] = best;
}

}  // namespace

int vq_cuda(const VqArgs& a) {
  int st = vq_validate(a);
  if (st != kOk) return st;
  if (a.N == 0) return kOk;
  const int64_t blocks = (a.N + kQ - 1) / kQ;
  if (blocks > 0x7FFFFFFF) {
    last_error() = "vq: too many queries for one CUDA launch";
    return kInvalidArgument;
  }
  auto stream = static_cast<cudaStream_t>(a.stream);
  vq_kernel<<<unsigned(blocks), kQ, 0, stream>>>(a.x, a.codebook, a.idx, a.dist, a.N, a.K, a.D);
  return launch_status("vq");
}

}  // namespace facelang
