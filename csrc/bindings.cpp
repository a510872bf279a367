// The single Python module pyfacelang._C. Kernels take raw addresses
// (tensor.data_ptr()) plus sizes; pyfacelang/_kernels.py validates tensors
// (dtype, contiguity, device, shapes) before calling in here, so this layer
// stays free of torch headers.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "blend/blend.h"
#include "fit/fit.h"
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
        int st;
        {
          py::gil_scoped_release nogil;
          st = blend(a, on_cuda);
        }
        check(st, "blend");
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
        int st;
        {
          py::gil_scoped_release nogil;
          st = fit(a, on_cuda);
        }
        check(st, "fit");
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
        int st;
        {
          py::gil_scoped_release nogil;
          st = vq(a, on_cuda);
        }
        check(st, "vq");
      },
      py::arg("x"), py::arg("codebook"), py::arg("idx"), py::arg("dist"), py::arg("N"), py::arg("K"), py::arg("D"),
      py::arg("exact"), py::arg("on_cuda"), py::arg("num_threads") = 0, py::arg("stream") = 0,
      "Nearest code (squared L2) of N float32 queries among K codes: int32 idx and float32 dist "
      "(see csrc/vq/vq.h).");
  m.def(
      "all_finite",
      [](std::uintptr_t data, int64_t n) {
        py::gil_scoped_release nogil;
        return vq_all_finite(ptr<const float>(data), n);
      },
      py::arg("data"), py::arg("n"), "True when n float32 values in host memory are all finite.");
}
