// A small multilayer perceptron (Linear, GELU, ..., Linear) on the CPU,
// for networks that run on every frame of a live stream: the tokenizer's
// encoder (pyfacelang/tokens/model.py::GeoVQVAE.encode, exact GELU) and the
// motion reader (pyfacelang/track/reader.py::ReaderNet, tanh GELU).
//
// Why a kernel: one frame is ~250 k multiply-adds, which torch spends
// ~0.25 ms on (seven operator calls of ~15-30 us overhead each); here it is
// one pass over the weights. A row's output does not depend on the other
// rows passed with it, nor on the thread count, so streaming one row at a
// time gives the same bits as encoding the whole sequence.
// Torch twin: pyfacelang/_reference.py::mlp_ref; tests compare them.
//
// On a GPU, torch's batched layers are the fast path, so there is no CUDA
// version: CUDA models run through torch.
#pragma once

#include <cstdint>

#include "../common/status.h"

namespace facelang {

// One layer y = W x + b, in PyTorch's nn.Linear layout, float32, C-contiguous host memory.
struct MlpLayer {
  const float* W = nullptr;  // (out, in) weights
  const float* b = nullptr;  // (out,) bias, or null for none
  int64_t in = 0;            // input width (the previous layer's `out`)
  int64_t out = 0;           // output width
};

enum MlpActivation : int {
  kGeluErf = 0,   // torch.nn.GELU(): x * Phi(x)
  kGeluTanh = 1,  // torch.nn.GELU(approximate="tanh")
};

struct MlpArgs {
  const MlpLayer* layers = nullptr;  // (n_layer,) layers in order; the activation follows every one but the last
  int64_t n_layer = 0;               // >= 1
  int activation = kGeluErf;         // an MlpActivation
  const float* x = nullptr;          // (N, layers[0].in) input rows
  float* y = nullptr;                // (N, layers[n_layer - 1].out) output rows (written)
  int64_t N = 0;                     // rows (0: nothing to do)
  int num_threads = 0;               // CPU worker threads over rows (<= 0: all cores)
};

// Returns kOk, or kInvalidArgument for null pointers, a layer whose `in`
// differs from the previous `out`, a size < 1 or an unknown activation.
int mlp_cpu(const MlpArgs& a);

}  // namespace facelang
