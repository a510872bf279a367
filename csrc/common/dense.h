// Dense float32 building blocks for the CPU kernels that run small networks
// one or a few rows at a time (csrc/decode, csrc/mlp): a dot product, a
// linear layer in PyTorch's nn.Linear layout, and the two GELUs.
//
// Each output element is computed from its own input row only, in an order
// that does not depend on how many rows are passed at once, so a row gives
// the same bits alone (the live path) as inside a batch (offline).
#pragma once

#include <cmath>
#include <cstdint>

namespace facelang {

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y[r, j] = W[j] . x[r] + b[j] for R rows of x (R, in) and W (out, in); b may be null.
// Four weight rows at a time: four independent vector accumulators keep the
// FMA units busy where one dot product waits on its own running sum. The
// compiler may add each sum up in another order than `dot` does, so outputs
// can differ from a plain dot product in the last bits (torch's own order
// differs too; the tests compare with a tolerance).
inline void linear(const float* W, const float* b, const float* x, float* y, int64_t R, int64_t in, int64_t out,
                   int64_t x_stride, int64_t y_stride) {
  int64_t j = 0;
  for (; j + 4 <= out; j += 4) {
    const float* w0 = W + j * in;
    const float* w1 = w0 + in;
    const float* w2 = w1 + in;
    const float* w3 = w2 + in;
    for (int64_t r = 0; r < R; ++r) {
      const float* xr = x + r * x_stride;
      float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t i = 0; i < in; ++i) {
        const float xi = xr[i];
        s0 += w0[i] * xi;
        s1 += w1[i] * xi;
        s2 += w2[i] * xi;
        s3 += w3[i] * xi;
      }
      float* yr = y + r * y_stride + j;
      yr[0] = s0 + (b ? b[j] : 0.0f);
      yr[1] = s1 + (b ? b[j + 1] : 0.0f);
      yr[2] = s2 + (b ? b[j + 2] : 0.0f);
      yr[3] = s3 + (b ? b[j + 3] : 0.0f);
    }
  }
  for (; j < out; ++j) {
    const float* w = W + j * in;
    for (int64_t r = 0; r < R; ++r) y[r * y_stride + j] = dot(w, x + r * x_stride, in) + (b ? b[j] : 0.0f);
  }
}

// torch.nn.GELU() (approximate="none"): x * Phi(x) with the exact erf.
inline float gelu_erf(float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); }

// torch.nn.GELU(approximate="tanh").
inline float gelu_tanh(float v) {
  return 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

}  // namespace facelang
