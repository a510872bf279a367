// Minimal CPU parallel-for over [0, n) with std::thread (no OpenMP dependency,
// so the extension builds with any compiler setuptools/CMake picks).
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace facelang {

// Number of worker threads to use when the caller passes num_threads <= 0.
inline int default_num_threads() {
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

// Calls fn(begin, end) on contiguous chunks of [0, n) from up to num_threads
// threads (the calling thread takes the first chunk). Chunks are at least
// min_grain items so tiny problems stay on one thread.
template <typename Fn>
void parallel_for(int64_t n, int num_threads, int64_t min_grain, Fn fn) {
  if (n <= 0) return;
  if (num_threads <= 0) num_threads = default_num_threads();
  int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, min_grain));
  int64_t chunks = std::min<int64_t>(num_threads, max_chunks);
  if (chunks <= 1) {
    fn(int64_t(0), n);
    return;
  }
  int64_t step = (n + chunks - 1) / chunks;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(chunks - 1));
  for (int64_t c = 1; c < chunks; ++c) {
    int64_t b = c * step, e = std::min(n, b + step);
    if (b < e) workers.emplace_back([=] { fn(b, e); });
  }
  fn(int64_t(0), std::min(n, step));
  for (auto& w : workers) w.join();
}

}  // namespace facelang
