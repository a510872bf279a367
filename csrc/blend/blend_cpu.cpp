#include <vector>

#include "../common/parallel.h"
#include "blend.h"

namespace facelang {

namespace {

// One mesh: accumulate the linear combination into out (V*3 contiguous floats),
// then apply the similarity transform in place. The k-outer / j-inner order
// streams each basis row once and lets the compiler vectorize the inner loop.
void blend_one(const BlendArgs& a, int64_t b, float* out) {
  const int64_t n = a.V * 3;
  for (int64_t j = 0; j < n; ++j) out[j] = a.tmpl[j];
  const float* c = a.coeffs ? a.coeffs + b * a.K : nullptr;
  for (int64_t k = 0; k < a.K; ++k) {
    const float w = c[k];
    const float* row = a.basis + k * n;
    for (int64_t j = 0; j < n; ++j) out[j] += w * row[j];
  }
  if (!a.rot && !a.trans && !a.scale) return;
  float R[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  if (a.rot)
    for (int i = 0; i < 9; ++i) R[i] = a.rot[b * 9 + i];
  const float s = a.scale ? a.scale[b] : 1.0f;
  for (int i = 0; i < 9; ++i) R[i] *= s;
  const float tx = a.trans ? a.trans[b * 3 + 0] : 0.0f;
  const float ty = a.trans ? a.trans[b * 3 + 1] : 0.0f;
  const float tz = a.trans ? a.trans[b * 3 + 2] : 0.0f;
  for (int64_t v = 0; v < a.V; ++v) {
    float* p = out + v * 3;
    const float x = p[0], y = p[1], z = p[2];
    p[0] = R[0] * x + R[1] * y + R[2] * z + tx;
    p[1] = R[3] * x + R[4] * y + R[5] * z + ty;
    p[2] = R[6] * x + R[7] * y + R[8] * z + tz;
  }
}

}  // namespace

int blend_cpu(const BlendArgs& a) {
  int st = blend_validate(a);
  if (st != kOk) return st;
  // A mesh is ~V*K*3 FMAs (~0.1 MFLOP for the rig): a few meshes per task.
  parallel_for(a.B, a.num_threads, /*min_grain=*/4, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) blend_one(a, b, a.out + b * a.V * 3);
  });
  return kOk;
}

}  // namespace facelang
