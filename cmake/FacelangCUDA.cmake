# Decide whether to build the CUDA kernels.
#   FACELANG_CUDA=auto (default): build them when a CUDA compiler is found.
#   FACELANG_CUDA=on: require CUDA (configure fails without nvcc).
#   FACELANG_CUDA=off: C++ only.
# Architectures come from FACELANG_CUDA_ARCHS (CMake list or ';'/','-separated),
# default "80;90" (A100 and H100/H200).
# Sets FACELANG_WITH_CUDA to ON/OFF.

set(FACELANG_CUDA "auto" CACHE STRING "Build CUDA kernels: auto, on or off")
set_property(CACHE FACELANG_CUDA PROPERTY STRINGS auto on off)
set(FACELANG_CUDA_ARCHS "80;90" CACHE STRING "CUDA architectures to compile for")

string(TOLOWER "${FACELANG_CUDA}" _fl_cuda)
set(FACELANG_WITH_CUDA OFF)
if(_fl_cuda STREQUAL "off" OR _fl_cuda STREQUAL "0" OR _fl_cuda STREQUAL "false")
  message(STATUS "facelang: CUDA disabled (FACELANG_CUDA=${FACELANG_CUDA})")
else()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    string(REPLACE "," ";" _fl_archs "${FACELANG_CUDA_ARCHS}")
    set(CMAKE_CUDA_ARCHITECTURES "${_fl_archs}")
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(FACELANG_WITH_CUDA ON)
    message(STATUS "facelang: CUDA kernels ON (${CMAKE_CUDA_COMPILER}, archs ${_fl_archs})")
  elseif(_fl_cuda STREQUAL "on" OR _fl_cuda STREQUAL "1" OR _fl_cuda STREQUAL "true")
    message(FATAL_ERROR "facelang: FACELANG_CUDA=on but no CUDA compiler (nvcc) was found")
  else()
    message(STATUS "facelang: no CUDA compiler found, building C++ kernels only")
  endif()
endif()
