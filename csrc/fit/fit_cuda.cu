#include "fit.h"
namespace facelang {
int fit_cuda(const FitArgs& a) { return kCudaUnavailable; }  // placeholder while the kernel is written
}
