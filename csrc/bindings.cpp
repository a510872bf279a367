// The single Python module pyfacelang._C. Kernels take raw addresses
// (tensor.data_ptr()) plus sizes; pyfacelang/_kernels.py validates tensors
// (dtype, contiguity, device, shapes) before calling in here, so this layer
// stays free of torch headers.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "blend/blend.h"
#include "decode/decode.h"
#include "fit/fit.h"
#include "mlp/mlp.h"
#include "track/track.h"
#include "vq/vq.h"
#include "common/status.h"

#ifdef FACELANG_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace py = pybind11;
using namespace facelang;

namespace {

template <typename T>
T* ptr(std::uintptr_t addr) {
  return reinterpret_cast<T*>(addr);
}

void check(int status, const char* what) {
  if (status == kOk) return;
  std::string msg = std::string(what) + ": " + status_string(status);
  if (!last_error().empty()) {
    msg += " (" + last_error() + ")";
    last_error().clear();
  }
  throw std::runtime_error(msg);
}

// Runs a kernel entry point (returning a Status) without the GIL, so other
// Python threads (the live loop's) go on meanwhile; raises on failure.
template <typename Fn>
void run_nogil(const char* what, Fn fn) {
  int st;
  {
    py::gil_scoped_release nogil;
    st = fn();
  }
  check(st, what);
}

bool built_with_cuda() {
#ifdef FACELANG_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef FACELANG_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

// DecodeArgs from a dict of addresses and sizes (built by pyfacelang/_kernels.py::decode).
DecodeArgs decode_args(py::dict m, std::vector<DecodeLayer>& layers) {
  auto addr = [&](py::handle d, const char* key) { return py::cast<py::dict>(d)[key].cast<std::uintptr_t>(); };
  auto num = [&](const char* key) { return m[key].cast<int64_t>(); };
  for (auto d : m["layers"].cast<py::list>()) {
    DecodeLayer L;
    L.ln1_w = ptr<const float>(addr(d, "ln1_w"));
    L.ln1_b = ptr<const float>(addr(d, "ln1_b"));
    L.qkv_w = ptr<const float>(addr(d, "qkv_w"));
    L.qkv_b = ptr<const float>(addr(d, "qkv_b"));
    L.proj_w = ptr<const float>(addr(d, "proj_w"));
    L.proj_b = ptr<const float>(addr(d, "proj_b"));
    L.ln2_w = ptr<const float>(addr(d, "ln2_w"));
    L.ln2_b = ptr<const float>(addr(d, "ln2_b"));
    L.fc_w = ptr<const float>(addr(d, "fc_w"));
    L.fc_b = ptr<const float>(addr(d, "fc_b"));
    L.out_w = ptr<const float>(addr(d, "out_w"));
    L.out_b = ptr<const float>(addr(d, "out_b"));
    L.k_cache = ptr<float>(addr(d, "k_cache"));
    L.v_cache = ptr<float>(addr(d, "v_cache"));
    layers.push_back(L);
  }
  DecodeArgs a;
  a.layers = layers.data();
  a.n_layer = static_cast<int64_t>(layers.size());
  a.D = num("D");
  a.H = num("H");
  a.F = num("F");
  a.K = num("K");
  a.tok_emb = ptr<const float>(addr(m, "tok_emb"));
  a.pos_emb = ptr<const float>(addr(m, "pos_emb"));
  a.max_pos = num("max_pos");
  a.lnf_w = ptr<const float>(addr(m, "lnf_w"));
  a.lnf_b = ptr<const float>(addr(m, "lnf_b"));
  a.head_w = ptr<const float>(addr(m, "head_w"));
  a.R = num("R");
  a.B = num("B");
  a.cap = num("cap");
  a.n_past = num("n_past");
  a.pos = num("pos");
  a.row_emb = ptr<const float>(addr(m, "row_emb"));
  a.key_mask = ptr<const uint8_t>(addr(m, "key_mask"));
  a.logits = ptr<float>(addr(m, "logits"));
  return a;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyfacelang C++/CUDA kernels (see csrc/)";
  m.def("built_with_cuda", &built_with_cuda, "True when the extension was compiled with CUDA kernels.");
  m.def("cuda_device_count", &cuda_device_count,
        "Number of usable CUDA devices (0 when built without CUDA or no driver/device).");
  m.def(
      "blend",
      [](std::uintptr_t out, std::uintptr_t tmpl, std::uintptr_t basis, std::uintptr_t coeffs,
         std::uintptr_t rot, std::uintptr_t trans, std::uintptr_t scale, int64_t B, int64_t V,
         int64_t K, bool on_cuda, int num_threads, std::uintptr_t stream) {
        BlendArgs a;
        a.out = ptr<float>(out);
        a.tmpl = ptr<const float>(tmpl);
        a.basis = ptr<const float>(basis);
        a.coeffs = ptr<const float>(coeffs);
        a.rot = ptr<const float>(rot);
        a.trans = ptr<const float>(trans);
        a.scale = ptr<const float>(scale);
        a.B = B;
        a.V = V;
        a.K = K;
        a.num_threads = num_threads;
        a.stream = reinterpret_cast<void*>(stream);
        run_nogil("blend", [&] { return blend(a, on_cuda); });
      },
      py::arg("out"), py::arg("tmpl"), py::arg("basis"), py::arg("coeffs"), py::arg("rot"),
      py::arg("trans"), py::arg("scale"), py::arg("B"), py::arg("V"), py::arg("K"),
      py::arg("on_cuda"), py::arg("num_threads") = 0, py::arg("stream") = 0,
      "Blendshapes + similarity transform on raw float32 buffers (see csrc/blend/blend.h). "
      "Pass 0 for rot/trans/scale to skip them.");
  m.def(
      "fit",
      [](py::dict model, std::uintptr_t obs, std::uintptr_t w, std::uintptr_t rot, std::uintptr_t scale,
         std::uintptr_t trans, std::uintptr_t cost, std::uintptr_t iters, int64_t N, int64_t V, int64_t K,
         int max_iters, int max_trials, float mu0, float tol, int chain, int num_threads, bool on_cuda,
         std::uintptr_t stream, std::uintptr_t scratch) {
        FitArgs a;
        auto addr = [&](const char* key) { return model[key].cast<std::uintptr_t>(); };
        a.tmpl = ptr<const float>(addr("tmpl"));
        a.basis = ptr<const float>(addr("basis"));
        a.weights = ptr<const float>(addr("weights"));
        a.lo = ptr<const float>(addr("lo"));
        a.hi = ptr<const float>(addr("hi"));
        a.prior = ptr<const float>(addr("prior"));
        a.l1 = ptr<const float>(addr("l1"));
        a.gram = ptr<const double>(addr("gram"));
        a.cross = ptr<const double>(addr("cross"));
        a.bsum = ptr<const double>(addr("bsum"));
        a.gram_t = ptr<const double>(addr("gram_t"));
        a.cross_t = ptr<const double>(addr("cross_t"));
        auto pivot = model["pivot"].cast<std::vector<float>>();
        if (pivot.size() != 3) throw std::invalid_argument("fit: pivot must have 3 values");
        for (int c = 0; c < 3; ++c) a.pivot[c] = pivot[c];
        a.obs = ptr<const float>(obs);
        a.w = ptr<float>(w);
        a.rot = ptr<float>(rot);
        a.scale = ptr<float>(scale);
        a.trans = ptr<float>(trans);
        a.cost = ptr<float>(cost);
        a.iters = ptr<int32_t>(iters);
        a.N = N;
        a.V = V;
        a.K = K;
        a.max_iters = max_iters;
        a.max_trials = max_trials;
        a.mu0 = mu0;
        a.tol = tol;
        a.chain = chain;
        a.num_threads = num_threads;
        a.stream = reinterpret_cast<void*>(stream);
        a.scratch = ptr<double>(scratch);
        run_nogil("fit", [&] { return fit(a, on_cuda); });
      },
      "Bounded Levenberg-Marquardt face fit for N frames (see csrc/fit/fit.h). `model` maps "
      "tmpl/basis/weights/lo/hi/prior/l1/gram/cross/bsum/gram_t/cross_t to addresses and pivot to 3 floats.");
  m.def("fit_cuda_scratch_doubles", &fit_cuda_scratch_doubles, "Doubles of CUDA scratch fit() needs.");
  m.def(
      "vq",
      [](std::uintptr_t x, std::uintptr_t codebook, std::uintptr_t idx, std::uintptr_t dist, int64_t N, int64_t K,
         int64_t D, bool exact, bool on_cuda, int num_threads, std::uintptr_t stream) {
        VqArgs a;
        a.x = ptr<const float>(x);
        a.codebook = ptr<const float>(codebook);
        a.idx = ptr<int32_t>(idx);
        a.dist = ptr<float>(dist);
        a.N = N;
        a.K = K;
        a.D = D;
        a.exact = exact;
        a.num_threads = num_threads;
        a.stream = reinterpret_cast<void*>(stream);
        run_nogil("vq", [&] { return vq(a, on_cuda); });
      },
      py::arg("x"), py::arg("codebook"), py::arg("idx"), py::arg("dist"), py::arg("N"), py::arg("K"), py::arg("D"),
      py::arg("exact"), py::arg("on_cuda"), py::arg("num_threads") = 0, py::arg("stream") = 0,
      "Nearest code (squared L2) of N float32 queries among K codes: int32 idx and float32 dist "
      "(see csrc/vq/vq.h).");
  m.def(
      "decode_step",
      [](py::dict model, std::uintptr_t ids) {
        std::vector<DecodeLayer> layers;
        DecodeArgs a = decode_args(model, layers);
        run_nogil("decode_step", [&] { return decode_step_cpu(a, ptr<const int64_t>(ids)); });
      },
      py::arg("model"), py::arg("ids"),
      "One decoding step of the transformer for R rows: int64 ids (R,) -> logits (see csrc/decode/decode.h).");
  m.def(
      "decode",
      [](py::dict model, int64_t n_tokens, float cfg_scale, float temperature, int64_t top_k,
         std::uintptr_t rng_state, std::uintptr_t out, int64_t stop_id) {
        std::vector<DecodeLayer> layers;
        DecodeArgs a = decode_args(model, layers);
        a.n_tokens = n_tokens;
        a.stop_id = stop_id;
        a.cfg_scale = cfg_scale;
        a.temperature = temperature;
        a.top_k = top_k;
        a.rng_state = ptr<uint64_t>(rng_state);
        a.out = ptr<int64_t>(out);
        run_nogil("decode", [&] { return decode_cpu(a); });
      },
      py::arg("model"), py::arg("n_tokens"), py::arg("cfg_scale"), py::arg("temperature"), py::arg("top_k"),
      py::arg("rng_state"), py::arg("out"), py::arg("stop_id") = -1,
      "The decoding loop on the CPU: n_tokens int64 tokens per prompt into out (B, n_tokens), ending early once "
      "every prompt has picked stop_id (>= 0) (see csrc/decode/decode.h).");
  m.def(
      "mlp",
      [](const std::vector<std::tuple<std::uintptr_t, std::uintptr_t, int64_t, int64_t>>& layers, int activation,
         std::uintptr_t x, std::uintptr_t y, int64_t N, int num_threads) {
        std::vector<MlpLayer> ls;
        ls.reserve(layers.size());
        for (const auto& [W, b, in, out] : layers) {
          MlpLayer L;
          L.W = ptr<const float>(W);
          L.b = ptr<const float>(b);
          L.in = in;
          L.out = out;
          ls.push_back(L);
        }
        MlpArgs a;
        a.layers = ls.data();
        a.n_layer = static_cast<int64_t>(ls.size());
        a.activation = activation;
        a.x = ptr<const float>(x);
        a.y = ptr<float>(y);
        a.N = N;
        a.num_threads = num_threads;
        run_nogil("mlp", [&] { return mlp_cpu(a); });
      },
      py::arg("layers"), py::arg("activation"), py::arg("x"), py::arg("y"), py::arg("N"), py::arg("num_threads") = 0,
      "Forward of a small MLP on the CPU: layers [(W (out, in), b or 0, in, out)], GELU (0 exact, 1 tanh) between "
      "them, N float32 rows x -> y (see csrc/mlp/mlp.h).");
  m.def(
      "track_step",
      [](std::uintptr_t w, std::uintptr_t rot, float scale, std::uintptr_t trans, std::uintptr_t obs,
         std::uintptr_t observed, std::uintptr_t neutral, std::uintptr_t basis, std::tuple<double, double, double> pivot,
         int64_t V, int64_t K, double time, std::uintptr_t f_x, std::uintptr_t f_dx, std::uintptr_t f_time,
         std::uintptr_t f_scale, double min_cutoff, double beta, double d_cutoff, bool filter_enabled,
         std::uintptr_t out, std::uintptr_t fitted, std::uintptr_t residual) {
        TrackStepArgs a;
        a.w = ptr<const float>(w);
        a.rot = ptr<const float>(rot);
        a.scale = scale;
        a.trans = ptr<const float>(trans);
        a.obs = ptr<const float>(obs);
        a.observed = ptr<const uint8_t>(observed);
        a.neutral = ptr<const float>(neutral);
        a.basis = ptr<const float>(basis);
        a.pivot[0] = std::get<0>(pivot);
        a.pivot[1] = std::get<1>(pivot);
        a.pivot[2] = std::get<2>(pivot);
        a.V = V;
        a.K = K;
        a.time = time;
        a.f_x = ptr<double>(f_x);
        a.f_dx = ptr<double>(f_dx);
        a.f_time = ptr<double>(f_time);
        a.f_scale = ptr<const double>(f_scale);
        a.min_cutoff = min_cutoff;
        a.beta = beta;
        a.d_cutoff = d_cutoff;
        a.filter_enabled = filter_enabled ? 1 : 0;
        a.out = ptr<double>(out);
        a.fitted = ptr<float>(fitted);
        a.residual = ptr<double>(residual);
        run_nogil("track_step", [&] { return track_step_cpu(a); });
      },
      "One frame's One Euro filter, fitted landmarks and residual after a fit, on raw host buffers "
      "(see csrc/track/track.h).");
  m.def(
      "all_finite",
      [](std::uintptr_t data, int64_t n) {
        py::gil_scoped_release nogil;
        return vq_all_finite(ptr<const float>(data), n);
      },
      py::arg("data"), py::arg("n"), "True when n float32 values in host memory are all finite.");
}
