// AVX-512 internals of vq_cpu.cpp (included there only): codebook packing,
// the bf16 / fp32 register tiles, the shortlist and the exact re-rank. The
// design and the error bound are described at the top of vq_cpu.cpp.
#pragma once

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(FACELANG_VQ_PORTABLE)
#define FACELANG_VQ_AVX512 1

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on _mm512_undefined_*.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "vq.h"

// Fast paths are compiled for these ISAs whatever -march says and chosen at
// run time (cpu_has), so portable builds still use them.
#define VQ_TARGET_F __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define VQ_TARGET_BF __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace facelang {
namespace vq_avx512 {
namespace {  // internal linkage: this header is included by vq_cpu.cpp only

constexpr int kMR = 6;              // query rows per register tile
constexpr int kNT = 4;              // 16-code vectors per register tile (a "group" of 64 codes)
static_assert(kNT == 4, "search_rows handles remainder groups of 1-3 tiles");
constexpr int kMaxCand = 32;        // shortlist size before an exact full scan
constexpr float kMaxNorm2 = 1e36f;  // beyond: fp32 scores may overflow -> exact scans
constexpr float kInf = std::numeric_limits<float>::infinity();

// 64-byte aligned buffer (zeroed on request).
template <typename T>
struct Buf {
  std::unique_ptr<T[]> v;
  T* p = nullptr;
  void resize(size_t n, bool zero = true) {
    v.reset(new T[n + 64 / sizeof(T)]);
    const auto a = reinterpret_cast<std::uintptr_t>(v.get());
    p = v.get() + ((64 - a % 64) % 64) / sizeof(T);
    if (zero) std::memset(p, 0, n * sizeof(T));
  }
};

// Codebook prepared for the fast pass, packed in order of norm (sorted
// position j holds code perm[j]) so that the codes of a group have similar
// error bounds and one bound per group is nearly as tight as one per code.
struct Packed {
  int64_t P = 0;        // packed steps per code: ceil(D/2) bf16 pairs or D fp32 dims
  int64_t tiles = 0;    // ceil(K / 16)
  int64_t Kp = 0;       // tiles * 16 (padding codes score +inf)
  int64_t groups = 0;   // ceil(tiles / kNT)
  Buf<float> mu;        // (D,) codebook mean
  Buf<uint32_t> codes;  // -2 c' as [group][step][tile in group][16 lanes]
  Buf<int32_t> perm;    // (Kp,) code index of each sorted position
  Buf<float> nc2;       // (Kp,) ||c'||^2, +inf for padding
  Buf<float> ea, eb;    // (Kp,) A ||c'|| and B ||c'||^2 + tiny (1 + ||c'||)
  Buf<float> gea, geb;  // (groups,) maxima of ea and eb over each group
  float B = 0, tiny = 0;
};

// Error-bound constants of the header comment for dimension D.
inline void bound_constants(int64_t D, bool bf16, float* A, float* B, float* tiny) {
  const double u = bf16 ? std::ldexp(1.0, -8) : 0.0;
  const double g = double(D + 8) * std::ldexp(1.0, -24);
  *A = float((2 * (2 * u + u * u) + 2.2 * g) * (1 + 4 * g));
  *B = float((2 * g + 4.1 * std::ldexp(1.0, -24)) * (1 + 4 * g));
  *tiny = float(double(D + 1) * std::ldexp(1.0, -120));
}

inline __mmask16 head_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// x' = x - mu into xr[0, D) (padding past D is left alone); returns ||x'||^2.
VQ_TARGET_F inline float centre_row(const float* x, const float* mu, int64_t D, float* xr) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; d += 16) {
    const __mmask16 m = head_mask(D - d);
    const __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + d), _mm512_maskz_loadu_ps(m, mu + d));
    _mm512_mask_storeu_ps(xr + d, m, v);
    s = _mm512_fmadd_ps(v, v, s);
  }
  return _mm512_reduce_add_ps(s);
}

// n words of scale * c: fp32 bits, or bf16 pairs (round to nearest even; c
// holds 2n floats) with dim 2p in the low half of word p, as dpbf16 reads them.
VQ_TARGET_F inline void to_words(const float* c, int64_t n, bool bf16, float scale, uint32_t* w) {
  const __m512 sc = _mm512_set1_ps(scale);
  if (!bf16) {
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = head_mask(n - j);
      _mm512_mask_storeu_ps(w + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, c + j), sc));
    }
    return;
  }
  for (int64_t j = 0; j < n; j += 8) {
    const int64_t left = std::min<int64_t>(8, n - j);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(head_mask(2 * left), c + 2 * j), sc);
    const __m512i b = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd));
    const __m512i pair = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi64(r, 16), _mm512_set1_epi64(0xFFFF)),
                                         _mm512_and_si512(_mm512_srli_epi64(r, 32), _mm512_set1_epi64(0xFFFF0000)));
    _mm256_mask_storeu_epi32(w + j, __mmask8((1u << left) - 1), _mm512_cvtepi64_epi32(pair));
  }
}

// Centre, sort, pack and bound the codebook. False when a norm is too large
// for fp32 scores (callers then scan exactly).
VQ_TARGET_F inline bool pack(const VqArgs& a, bool bf16, Packed& pk) {
  const int64_t K = a.K, D = a.D, P = bf16 ? (D + 1) / 2 : D;
  pk.P = P;
  pk.tiles = (K + 15) / 16;
  pk.Kp = pk.tiles * 16;
  pk.groups = (pk.tiles + kNT - 1) / kNT;
  float A;
  bound_constants(D, bf16, &A, &pk.B, &pk.tiny);
  pk.mu.resize(D);  // any shift keeps the search exact; the mean keeps the norms small
  for (int64_t d = 0; d < D; d += 16) {
    const __mmask16 m = head_mask(D - d);
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t k = 0; k < K; ++k)
      s[k & 3] = _mm512_add_ps(s[k & 3], _mm512_maskz_loadu_ps(m, a.codebook + k * D + d));
    const __m512 t = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
    _mm512_mask_storeu_ps(pk.mu.p + d, m, _mm512_div_ps(t, _mm512_set1_ps(float(K))));
  }
  Buf<float> row;
  Buf<uint32_t> w;
  row.resize(2 * P + 16);
  w.resize(P + 16);
  std::vector<uint64_t> key(K);  // (||c'||^2 bits, index): sorts by norm, ties by index
  for (int64_t k = 0; k < K; ++k) {
    const float s = centre_row(a.codebook + k * D, pk.mu.p, D, row.p);
    if (!(s <= kMaxNorm2)) return false;
    uint32_t bits;
    std::memcpy(&bits, &s, 4);
    key[k] = (uint64_t(bits) << 32) | uint64_t(k);
  }
  std::sort(key.begin(), key.end());
  pk.codes.resize(pk.Kp * P, false);
  pk.perm.resize(pk.Kp, false);
  pk.nc2.resize(pk.Kp, false);
  pk.ea.resize(pk.Kp, false);
  pk.eb.resize(pk.Kp, false);
  pk.gea.resize(pk.groups);
  pk.geb.resize(pk.groups);
  for (int64_t j = 0; j < pk.Kp; ++j) {
    const int64_t tile = j / 16, group = tile / kNT;
    const int64_t nt = std::min<int64_t>(kNT, pk.tiles - group * kNT);  // tiles in this group
    if (j < K) {
      const int32_t k = int32_t(key[j] & 0xFFFFFFFFu);
      const float s = centre_row(a.codebook + k * D, pk.mu.p, D, row.p), n = std::sqrt(s);
      to_words(row.p, P, bf16, -2.0f, w.p);
      pk.perm.p[j] = k;
      pk.nc2.p[j] = s;
      pk.ea.p[j] = A * n;
      pk.eb.p[j] = pk.B * s + pk.tiny * (1 + n);
      pk.gea.p[group] = std::max(pk.gea.p[group], pk.ea.p[j]);
      pk.geb.p[group] = std::max(pk.geb.p[group], pk.eb.p[j]);
    } else {  // padding: zero code, infinite score
      std::memset(w.p, 0, P * sizeof(uint32_t));
      pk.perm.p[j] = 0;
      pk.nc2.p[j] = kInf;
      pk.ea.p[j] = pk.eb.p[j] = 0.0f;
    }
    uint32_t* dst = pk.codes.p + group * kNT * 16 * P + (tile % kNT) * 16 + j % 16;
    for (int64_t p = 0; p < P; ++p) dst[p * nt * 16] = w.p[p];
  }
  return true;
}

VQ_TARGET_F inline float sqdist(const float* x, const float* c, int64_t D) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t d = 0;
  for (; d + 32 <= D; d += 32) {
    const __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(x + d), _mm512_loadu_ps(c + d));
    const __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(x + d + 16), _mm512_loadu_ps(c + d + 16));
    s0 = _mm512_fmadd_ps(t0, t0, s0);
    s1 = _mm512_fmadd_ps(t1, t1, s1);
  }
  for (; d < D; d += 16) {
    const __mmask16 m = head_mask(D - d);
    const __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + d), _mm512_maskz_loadu_ps(m, c + d));
    s0 = _mm512_fmadd_ps(t, t, s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// Exact scan of the codes in list (or all K when list is null); ties -> lowest index.
VQ_TARGET_F inline void rank_row(const VqArgs& a, int64_t n, const int32_t* list, int64_t count) {
  const float* x = a.x + n * a.D;
  int32_t best = list ? list[0] : 0;
  float bd = sqdist(x, a.codebook + int64_t(best) * a.D, a.D);
  for (int64_t i = 1; i < count; ++i) {
    const int32_t k = list ? list[i] : int32_t(i);
    const float d = sqdist(x, a.codebook + int64_t(k) * a.D, a.D);
    if (d < bd || (d == bd && k < best)) bd = d, best = k;
  }
  a.idx[n] = best;
  a.dist[n] = bd;
}

// Epilogue shared by both tiles: store the scores s, and per row their
// lane-wise minimum over the group (which lets the shortlist scan skip the
// group). min over the group of (s_k + E_k) <= that minimum + the group's
// largest E (without the per-row B ||x'||^2 term): fold it into minub.
#define VQ_EPILOGUE()                                                              \
  _Pragma("GCC unroll 8") for (int r = 0; r < kMR; ++r) {                          \
    __m512 m = acc[r][0];                                                          \
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {                        \
      _mm512_store_ps(sbuf + r * pk.Kp + k0 + 16 * t, acc[r][t]);                  \
      if (t) m = _mm512_min_ps(m, acc[r][t]);                                      \
    }                                                                              \
    _mm512_store_ps(gbuf + (r * pk.groups + g) * 16, m);                           \
    const float e = nx[r] * pk.gea.p[g] + pk.geb.p[g];                             \
    minub[r] = _mm512_min_ps(minub[r], _mm512_add_ps(m, _mm512_set1_ps(e)));       \
  }

// Register tiles of kMR rows x NT*16 codes for groups [g0, g1) (xq: kMR rows
// of P bf16 pairs); scores into sbuf (kMR x Kp), group minima into gbuf.
// noinline keeps the 24 accumulators' register allocation independent of
// the (large) caller.
template <int NT>
VQ_TARGET_BF __attribute__((noinline)) void tiles_bf16(const Packed& pk, const uint32_t* xq, int64_t g0, int64_t g1,
                                                       const float* nx, float* sbuf, float* gbuf, __m512* minub) {
  const int64_t P = pk.P;
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t k0 = g * kNT * 16;
    const uint32_t* cp = pk.codes.p + k0 * P;
    __m512 acc[kMR][NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m512 base = _mm512_load_ps(pk.nc2.p + k0 + 16 * t);
#pragma GCC unroll 8
      for (int r = 0; r < kMR; ++r) acc[r][t] = base;
    }
    for (int64_t p = 0; p < P; ++p, cp += NT * 16) {
      __m512bh cv[NT];
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) cv[t] = (__m512bh)_mm512_load_si512(cp + 16 * t);
#pragma GCC unroll 8
      for (int r = 0; r < kMR; ++r) {
        const __m512bh xv = (__m512bh)_mm512_set1_epi32(int(xq[r * P + p]));
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], xv, cv[t]);
      }
    }
    VQ_EPILOGUE()
  }
}

// Same tiles in fp32 (xq: kMR rows of P = D floats).
template <int NT>
VQ_TARGET_F __attribute__((noinline)) void tiles_f32(const Packed& pk, const float* xq, int64_t g0, int64_t g1,
                                                     const float* nx, float* sbuf, float* gbuf, __m512* minub) {
  const int64_t P = pk.P;
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t k0 = g * kNT * 16;
    const float* cp = reinterpret_cast<const float*>(pk.codes.p) + k0 * P;
    __m512 acc[kMR][NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m512 base = _mm512_load_ps(pk.nc2.p + k0 + 16 * t);
#pragma GCC unroll 8
      for (int r = 0; r < kMR; ++r) acc[r][t] = base;
    }
    for (int64_t p = 0; p < P; ++p, cp += NT * 16) {
      __m512 cv[NT];
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) cv[t] = _mm512_load_ps(cp + 16 * t);
#pragma GCC unroll 8
      for (int r = 0; r < kMR; ++r) {
        const __m512 xv = _mm512_set1_ps(xq[r * P + p]);
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_fmadd_ps(xv, cv[t], acc[r][t]);
      }
    }
    VQ_EPILOGUE()
  }
}
#undef VQ_EPILOGUE

template <int NT>
VQ_TARGET_F void tiles(bool bf16, const Packed& pk, const void* xq, int64_t g0, int64_t g1, const float* nx,
                       float* sbuf, float* gbuf, __m512* minub) {
  if (bf16)
    tiles_bf16<NT>(pk, static_cast<const uint32_t*>(xq), g0, g1, nx, sbuf, gbuf, minub);
  else
    tiles_f32<NT>(pk, static_cast<const float*>(xq), g0, g1, nx, sbuf, gbuf, minub);
}

// Rows [r0, r1) through the fast pass, shortlist and exact re-rank.
VQ_TARGET_F inline void search_rows(const VqArgs& a, const Packed& pk, bool bf16, int64_t r0, int64_t r1) {
  const int64_t D = a.D, P = pk.P, Dp = bf16 ? 2 * P : P, Kp = pk.Kp, G = pk.groups;
  Buf<float> xc, sbuf, gbuf;
  Buf<uint32_t> xb;
  xc.resize(kMR * Dp);
  sbuf.resize(kMR * Kp, false);
  gbuf.resize(kMR * G * 16, false);
  if (bf16) xb.resize(kMR * P);
  const void* xq = bf16 ? static_cast<const void*>(xb.p) : static_cast<const void*>(xc.p);
  const int64_t full = pk.tiles / kNT, rest = pk.tiles % kNT;
  int32_t cand[kMaxCand];
  for (int64_t rb = r0; rb < r1; rb += kMR) {
    const int nr = int(std::min<int64_t>(kMR, r1 - rb));
    float nx[kMR], ex[kMR];
    for (int r = 0; r < kMR; ++r) {
      float s = 0.0f;
      if (r < nr)
        s = centre_row(a.x + (rb + r) * D, pk.mu.p, D, xc.p + r * Dp);
      else
        std::memset(xc.p + r * Dp, 0, D * sizeof(float));
      nx[r] = std::sqrt(s);
      ex[r] = s <= kMaxNorm2 ? pk.B * s + pk.tiny * nx[r] : kInf;
      if (bf16) to_words(xc.p + r * Dp, P, true, 1.0f, xb.p + r * P);
    }
    __m512 minub[kMR];
    for (int r = 0; r < kMR; ++r) minub[r] = _mm512_set1_ps(kInf);
    tiles<kNT>(bf16, pk, xq, 0, full, nx, sbuf.p, gbuf.p, minub);
    if (rest == 1) tiles<1>(bf16, pk, xq, full, full + 1, nx, sbuf.p, gbuf.p, minub);
    if (rest == 2) tiles<2>(bf16, pk, xq, full, full + 1, nx, sbuf.p, gbuf.p, minub);
    if (rest == 3) tiles<3>(bf16, pk, xq, full, full + 1, nx, sbuf.p, gbuf.p, minub);
    for (int r = 0; r < nr; ++r) {
      // shortlist: s_k - E_k <= min_j (s_j + E_j); a group is skipped when
      // even its largest E_k cannot bring its minimum score under that.
      const float thr = _mm512_reduce_min_ps(minub[r]) + 2 * ex[r];
      int count = 0;
      bool overflow = !std::isfinite(thr);
      const __m512 thrv = _mm512_set1_ps(thr), nxv = _mm512_set1_ps(nx[r]);
      const float* sr = sbuf.p + r * Kp;
      const float* gm = gbuf.p + r * G * 16;
      for (int64_t g0 = 0; g0 < G && !overflow; g0 += 64) {
        uint64_t pass = 0;  // groups whose minimum can reach the threshold, found branch-free
        const int64_t g1 = std::min(G, g0 + 64);
        for (int64_t g = g0; g < g1; ++g) {
          const __m512 glim = _mm512_set1_ps(thr + nx[r] * pk.gea.p[g] + pk.geb.p[g]);
          pass |= uint64_t(_mm512_cmp_ps_mask(_mm512_load_ps(gm + 16 * g), glim, _CMP_LE_OQ) != 0) << (g - g0);
        }
        for (; pass && !overflow; pass &= pass - 1) {
          const int64_t g = g0 + __builtin_ctzll(pass), k1 = std::min(Kp, (g + 1) * kNT * 16);
          for (int64_t k0 = g * kNT * 16; k0 < k1 && !overflow; k0 += 16) {
            const __m512 lim = _mm512_fmadd_ps(nxv, _mm512_load_ps(pk.ea.p + k0),
                                               _mm512_add_ps(_mm512_load_ps(pk.eb.p + k0), thrv));
            uint32_t m = _mm512_cmp_ps_mask(_mm512_load_ps(sr + k0), lim, _CMP_LE_OQ);
            for (; m; m &= m - 1) {
              if (count == kMaxCand) {
                overflow = true;
                break;
              }
              cand[count++] = pk.perm.p[k0 + __builtin_ctz(m)];
            }
          }
        }
      }
      if (overflow || count == 0)
        rank_row(a, rb + r, nullptr, a.K);
      else
        rank_row(a, rb + r, cand, count);
    }
  }
}

inline bool cpu_has(bool bf16) {
  __builtin_cpu_init();
  const bool f = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return f && (!bf16 || __builtin_cpu_supports("avx512bf16"));
}

}  // namespace
}  // namespace vq_avx512
}  // namespace facelang

#endif  // x86-64 with GCC or Clang
