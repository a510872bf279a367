// Integer status codes shared by every kernel entry point (and, later, the C API).
#pragma once

#include <string>

namespace facelang {

enum Status : int {
  kOk = 0,              // success
  kInvalidArgument = 1, // null pointer, non-positive size, ...
  kCudaUnavailable = 2, // CUDA requested but the extension was built without it
  kCudaError = 3,       // a CUDA runtime call or kernel launch failed (see last_error())
};

inline const char* status_string(int s) {
  switch (s) {
    case kOk: return "ok";
    case kInvalidArgument: return "invalid argument";
    case kCudaUnavailable: return "pyfacelang was built without CUDA";
    case kCudaError: return "CUDA error";
    default: return "unknown status";
  }
}

// Detail of the last failure on this thread (e.g. cudaGetErrorString), or "".
inline std::string& last_error() {
  thread_local std::string msg;
  return msg;
}

}  // namespace facelang
