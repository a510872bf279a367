// The single Python module pyfacelang._C. Kernels take raw addresses
// (tensor.data_ptr()) plus sizes; pyfacelang/_kernels.py validates tensors
// (dtype, contiguity, device, shapes) before calling in here, so this layer
// stays free of torch headers.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "blend/blend.h"
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
}
