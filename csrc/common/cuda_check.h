// Status of the last kernel launch, for the CUDA halves of the kernel families
// (include only from .cu files).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "status.h"

namespace facelang {

// kOk, or kCudaError with last_error() set to "<what>: <CUDA's message>".
inline int launch_status(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return kOk;
  last_error() = std::string(what) + ": " + cudaGetErrorString(err);
  return kCudaError;
}

}  // namespace facelang
