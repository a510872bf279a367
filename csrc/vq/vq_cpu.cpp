// CPU path of vq.h.
//
// Design (N queries, K codes, D dims, ~2NKD flops; the N x K distance matrix
// is never formed):
//  * Distances are translation invariant, so queries and codes are centred on
//    the codebook mean mu first (x' = x - mu, c' = c - mu, fp32). Offset data
//    (e.g. everything near +100) then has small norms, and the error bound
//    below, which scales with ||x'|| ||c'||, stays small.
//  * Fast pass: s_k = ||c'_k||^2 - 2 x'.c'_k orders codes like the distance
//    (||x' - c'_k||^2 = ||x'||^2 + s_k). A register tile of kMR = 6 query rows
//    x 4 * 16 = 64 codes (a "group"; 24 zmm accumulators) starts at ||c'_k||^2
//    and takes one _mm512_dpbf16_ps per (row, 16 codes, dim pair) against the
//    codes packed once per call as bf16(-2 c') pairs, [group][pair][64 codes],
//    so each step is 4 aligned loads + 6 broadcasts + 24 dpbf16 (measured at
//    the 1 dpbf16/cycle peak of Zen 4). `exact` (or no AVX512_BF16) runs the
//    same tile in fp32 with one FMA per dim. Per block of kMR rows the K
//    scores go to a kMR x K buffer (L1/L2); the codebook streams from L2.
//  * Rigorous shortlist: with bf16 unit roundoff u = 2^-8 (8-bit significand)
//    and fp32 accumulation over D terms (g ~ (D + 8) 2^-24),
//      |s_k - (||x - c_k||^2 - ||x'||^2)| <= E_k
//      E_k = A ||x'|| ||c'_k|| + B (||c'_k||^2 + ||x'||^2) + tiny,
//    A = 2 (2u + u^2) + 2.2 g (bf16 rounding of x' and c', accumulation),
//    B = 2 g + 4.1 * 2^-24 (norms, accumulation, fp32 centring of x and c),
//    tiny covers bf16 denormal flushing; the slack in g covers the few
//    roundings of the comparisons themselves. The true winner w satisfies
//    s_w - E_w <= min_j (s_j + E_j), so the shortlist {k : s_k - E_k <= min_j
//    (s_j + E_j)} contains it. Codes are packed in order of norm, so one
//    bound per group (its largest E) is nearly as tight as per code: the
//    tile epilogue keeps min_j (s_j + E_j) and each group's lane-wise minimum
//    score, and the scan visits only groups whose minimum can qualify. The
//    shortlist (~1.5 codes for Gaussian data) is re-ranked exactly in fp32 on
//    the original coordinates (sum (x - c)^2, ties -> lowest index); rows with
//    more than kMaxCand members, or non-finite bounds, get an exact full scan.
//  * Few rows (N < kDirectRows, the live single-frame case): no packing, an
//    exact full scan per row, no thread start. Threads: parallel_for over row
//    blocks, chunks of >= ~4e7 multiply-adds.
//  * The AVX-512 code (target attributes, chosen at run time, so portable
//    builds use it too) lives in vq_avx512.h; without AVX-512 every row is
//    scanned exactly by the portable loop below.
#include <algorithm>
#include <cstdint>

#include "../common/parallel.h"
#include "vq.h"
#include "vq_avx512.h"

namespace facelang {

namespace {

constexpr int64_t kDirectRows = 16;  // fewer rows: skip packing, exact scans

// Portable exact pieces (the whole search when AVX-512 is missing).
inline float sqdist_ref(const float* x, const float* c, int64_t D) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t d = 0; d < D; ++d) {
    const float t = x[d] - c[d];
    s += t * t;
  }
  return s;
}

void scan_row_ref(const VqArgs& a, int64_t n) {
  const float* x = a.x + n * a.D;
  int32_t best = 0;
  float bd = sqdist_ref(x, a.codebook, a.D);
  for (int64_t k = 1; k < a.K; ++k) {
    const float d = sqdist_ref(x, a.codebook + k * a.D, a.D);
    if (d < bd) bd = d, best = int32_t(k);
  }
  a.idx[n] = best;
  a.dist[n] = bd;
}

// parallel_for, but a problem of at most one chunk runs inline: that skips
// the thread-count query (a /sys read, ~6 us) on the single-frame path.
template <typename Fn>
void run_chunks(int64_t n, int num_threads, int64_t grain, Fn fn) {
  if (n <= grain || num_threads == 1)
    fn(int64_t(0), n);
  else
    parallel_for(n, num_threads, grain, fn);
}

}  // namespace

int vq_cpu(const VqArgs& a) {
  int st = vq_validate(a);
  if (st != kOk) return st;
  if (a.N == 0) return kOk;
  const int64_t row_grain = std::max<int64_t>(1, 10000000 / (a.K * a.D));  // ~1e7 multiply-adds per chunk
#ifdef FACELANG_VQ_AVX512
  using namespace vq_avx512;
  static const bool has_f = cpu_has(false), has_bf = cpu_has(true);
  const bool bf16 = has_bf && !a.exact;
  Packed pk;  // (beyond D ~ 1e5 the accumulation bound g grows too large to be useful)
  if (has_f && a.N >= kDirectRows && a.D <= 100000 && pack(a, bf16, pk)) {
    // Chunks of >= ~4e7 multiply-adds (~0.3 ms): small N stays on the calling thread.
    const int64_t grain = std::max<int64_t>(1, 40000000 / (kMR * pk.Kp * a.D));
    run_chunks((a.N + kMR - 1) / kMR, a.num_threads, grain, [&](int64_t lo, int64_t hi) {
      search_rows(a, pk, bf16, lo * kMR, std::min(a.N, hi * kMR));
    });
    return kOk;
  }
  if (has_f) {
    run_chunks(a.N, a.num_threads, row_grain, [&](int64_t lo, int64_t hi) {
      for (int64_t n = lo; n < hi; ++n) rank_row(a, n, nullptr, a.K);
    });
    return kOk;
  }
#endif
  run_chunks(a.N, a.num_threads, row_grain, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) scan_row_ref(a, n);
  });
  return kOk;
}

}  // namespace facelang
