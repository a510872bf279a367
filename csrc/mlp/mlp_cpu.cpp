// CPU forward of a small MLP (see mlp.h).
#include "mlp.h"

#include <algorithm>
#include <vector>

#include "../common/dense.h"
#include "../common/parallel.h"

namespace facelang {
namespace {

// Rows per block: each weight row is read once per block, while the block's
// activations (kBlock x widest layer) stay in L1/L2.
constexpr int64_t kBlock = 8;

}  // namespace

int mlp_cpu(const MlpArgs& a) {
  if (!a.layers || a.n_layer < 1 || a.N < 0) return kInvalidArgument;
  if (a.activation != kGeluErf && a.activation != kGeluTanh) return kInvalidArgument;
  int64_t widest = 0;
  for (int64_t l = 0; l < a.n_layer; ++l) {
    const MlpLayer& L = a.layers[l];
    if (!L.W || L.in < 1 || L.out < 1) return kInvalidArgument;
    if (l > 0 && L.in != a.layers[l - 1].out) return kInvalidArgument;
    widest = std::max(widest, L.out);
  }
  if (a.N == 0) return kOk;
  if (!a.x || !a.y) return kInvalidArgument;
  const int64_t in0 = a.layers[0].in, out_last = a.layers[a.n_layer - 1].out;
  const bool tanh_gelu = a.activation == kGeluTanh;
  // one block of rows per task: a single frame stays on the calling thread
  parallel_for((a.N + kBlock - 1) / kBlock, a.num_threads, 4, [&](int64_t b0, int64_t b1) {
    std::vector<float> buf(2 * kBlock * widest);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * kBlock, R = std::min(kBlock, a.N - r0);
      const float* src = a.x + r0 * in0;
      int64_t src_stride = in0;
      float* ping = buf.data();
      float* pong = ping + kBlock * widest;
      for (int64_t l = 0; l < a.n_layer; ++l) {
        const MlpLayer& L = a.layers[l];
        const bool last = l == a.n_layer - 1;
        float* dst = last ? a.y + r0 * out_last : ping;
        const int64_t dst_stride = last ? out_last : L.out;
        linear(L.W, L.b, src, dst, R, L.in, L.out, src_stride, dst_stride);
        if (!last) {
          float* v = dst;
          const int64_t n = R * L.out;
          if (tanh_gelu)
            for (int64_t i = 0; i < n; ++i) v[i] = gelu_tanh(v[i]);
          else
            for (int64_t i = 0; i < n; ++i) v[i] = gelu_erf(v[i]);
        }
        src = dst;
        src_stride = dst_stride;
        std::swap(ping, pong);
      }
    }
  });
  return kOk;
}

}  // namespace facelang
