// CPU decoding loop of the text-to-motion transformer and the captioner (see decode.h).
// Single-threaded: a step is ~2 M multiply-adds over ~3 MB of weights, and
// each weight row is read once for all rows (the guided twins share it).
#include "decode.h"

#include "../common/dense.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace facelang {
namespace {

void layer_norm(const float* x, const float* g, const float* b, float* y, int64_t D) {
  float mean = 0.0f;
#pragma omp simd reduction(+ : mean)
  for (int64_t i = 0; i < D; ++i) mean += x[i];
  mean /= float(D);
  float var = 0.0f;
#pragma omp simd reduction(+ : var)
  for (int64_t i = 0; i < D; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / std::sqrt(var / float(D) + 1e-5f);  // nn.LayerNorm's eps
  for (int64_t i = 0; i < D; ++i) y[i] = (x[i] - mean) * inv * g[i] + b[i];
}

inline uint64_t splitmix64(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits.
inline double uniform(uint64_t* s) { return double(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }

struct Work {
  std::vector<float> x, h, qkv, y, f, att, comb, prob;
  std::vector<int64_t> idx, ids;
  Work(const DecodeArgs& a)
      : x(a.R * a.D), h(a.R * a.D), qkv(a.R * 3 * a.D), y(a.R * a.D), f(a.R * a.F), att(a.cap), comb(a.K),
        prob(a.K), idx(a.K), ids(a.R) {}
};

int step(const DecodeArgs& a, const int64_t* ids, Work& w) {
  const int64_t D = a.D, H = a.H, Dh = D / H, R = a.R, S = a.n_past + 1;
  if (a.pos >= a.max_pos || S > a.cap) return kInvalidArgument;
  for (int64_t r = 0; r < R; ++r) {
    if (ids[r] < 0 || ids[r] > a.K) return kInvalidArgument;
    const float* te = a.tok_emb + ids[r] * D;
    const float* pe = a.pos_emb + a.pos * D;
    float* x = w.x.data() + r * D;
    for (int64_t i = 0; i < D; ++i) x[i] = te[i] + pe[i] + (a.row_emb ? a.row_emb[r * D + i] : 0.0f);
  }
  const float scale = 1.0f / std::sqrt(float(Dh));
  for (int64_t l = 0; l < a.n_layer; ++l) {
    const DecodeLayer& L = a.layers[l];
    for (int64_t r = 0; r < R; ++r) layer_norm(w.x.data() + r * D, L.ln1_w, L.ln1_b, w.h.data() + r * D, D);
    linear(L.qkv_w, L.qkv_b, w.h.data(), w.qkv.data(), R, D, 3 * D, D, 3 * D);
    for (int64_t r = 0; r < R; ++r) {
      const float* q = w.qkv.data() + r * 3 * D;
      const uint8_t* mask = a.key_mask ? a.key_mask + r * a.cap : nullptr;
      for (int64_t hd = 0; hd < H; ++hd) {
        float* kc = L.k_cache + ((r * H + hd) * a.cap) * Dh;   // (cap, Dh)
        float* vc = L.v_cache + ((r * H + hd) * a.cap) * Dh;
        std::copy(q + D + hd * Dh, q + D + (hd + 1) * Dh, kc + a.n_past * Dh);
        std::copy(q + 2 * D + hd * Dh, q + 2 * D + (hd + 1) * Dh, vc + a.n_past * Dh);
        const float* qh = q + hd * Dh;
        float mx = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          float s = (mask && !mask[j]) ? -INFINITY : dot(qh, kc + j * Dh, Dh) * scale;
          w.att[j] = s;
          mx = std::max(mx, s);
        }
        float* yh = w.y.data() + r * D + hd * Dh;
        std::fill(yh, yh + Dh, 0.0f);
        if (mx == -INFINITY) continue;   // every key masked: torch gives NaN; cannot happen with the newest key unmasked
        float den = 0.0f;
        for (int64_t j = 0; j < S; ++j) {
          float p = w.att[j] == -INFINITY ? 0.0f : std::exp(w.att[j] - mx);
          den += p;
          if (p == 0.0f) continue;
          const float* vj = vc + j * Dh;
#pragma omp simd
          for (int64_t i = 0; i < Dh; ++i) yh[i] += p * vj[i];
        }
        const float inv = 1.0f / den;
        for (int64_t i = 0; i < Dh; ++i) yh[i] *= inv;
      }
    }
    // x += proj(y)
    linear(L.proj_w, L.proj_b, w.y.data(), w.h.data(), R, D, D, D, D);
    for (int64_t i = 0; i < R * D; ++i) w.x[i] += w.h[i];
    for (int64_t r = 0; r < R; ++r) layer_norm(w.x.data() + r * D, L.ln2_w, L.ln2_b, w.h.data() + r * D, D);
    linear(L.fc_w, L.fc_b, w.h.data(), w.f.data(), R, D, a.F, D, a.F);
    for (auto& v : w.f) v = gelu_erf(v);
    linear(L.out_w, L.out_b, w.f.data(), w.h.data(), R, a.F, D, a.F, D);
    for (int64_t i = 0; i < R * D; ++i) w.x[i] += w.h[i];
  }
  for (int64_t r = 0; r < R; ++r) layer_norm(w.x.data() + r * D, a.lnf_w, a.lnf_b, w.h.data() + r * D, D);
  linear(a.head_w, nullptr, w.h.data(), a.logits, R, D, a.K, D, a.K);
  return kOk;
}

// One token for prompt b from the (guided) logits.
int64_t pick(const DecodeArgs& a, int64_t b, Work& w) {
  const int64_t K = a.K;
  const float* c = a.logits + b * K;
  float* l = w.comb.data();
  if (a.R == 2 * a.B) {
    const float* u = a.logits + (a.B + b) * K;
    for (int64_t k = 0; k < K; ++k) l[k] = u[k] + a.cfg_scale * (c[k] - u[k]);
  } else {
    std::copy(c, c + K, l);
  }
  if (a.temperature == 0.0f) return std::max_element(l, l + K) - l;   // first maximum, like torch.argmax
  int64_t n = K;
  for (int64_t k = 0; k < K; ++k) w.idx[k] = k;
  if (a.top_k > 0 && a.top_k < K) {
    n = a.top_k;
    std::nth_element(w.idx.begin(), w.idx.begin() + (n - 1), w.idx.end(),
                     [&](int64_t i, int64_t j) { return l[i] > l[j] || (l[i] == l[j] && i < j); });
    std::sort(w.idx.begin(), w.idx.begin() + n);
  }
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, l[w.idx[i]]);
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    w.prob[i] = std::exp((l[w.idx[i]] - mx) / a.temperature);
    total += w.prob[i];
  }
  double target = uniform(a.rng_state) * total, acc = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    acc += w.prob[i];
    if (target < acc) return w.idx[i];
  }
  return w.idx[n - 1];   // rounding at the very top
}

}  // namespace

int decode_step_cpu(const DecodeArgs& a, const int64_t* ids) {
  int st = decode_validate(a);
  if (st != kOk) return st;
  if (!ids) return kInvalidArgument;
  Work w(a);
  return step(a, ids, w);
}

int decode_cpu(const DecodeArgs& a) {
  int st = decode_validate(a);
  if (st != kOk) return st;
  if (a.n_tokens < 0 || !a.out || !a.rng_state || a.temperature < 0.0f || a.top_k < 0 || a.stop_id < -1 ||
      a.stop_id >= a.K ||
      a.n_past + a.n_tokens - 1 > a.cap || a.pos + a.n_tokens - 1 > a.max_pos) {
    return kInvalidArgument;
  }
  Work w(a);
  DecodeArgs s = a;
  std::vector<uint8_t> done(a.B, 0);
  int64_t n_done = 0;
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    for (int64_t b = 0; b < a.B; ++b) {
      int64_t id = done[b] ? a.stop_id : pick(a, b, w);
      a.out[b * a.n_tokens + t] = id;
      if (!done[b] && a.stop_id >= 0 && id == a.stop_id) {
        done[b] = 1;
        ++n_done;
      }
    }
    if (t + 1 == a.n_tokens) break;
    if (n_done == a.B) {   // every prompt finished: the rest is stop_id
      for (int64_t b = 0; b < a.B; ++b) std::fill(a.out + b * a.n_tokens + t + 1, a.out + (b + 1) * a.n_tokens,
                                                  a.stop_id);
      break;
    }
    for (int64_t r = 0; r < a.R; ++r) w.ids[r] = a.out[(r % a.B) * a.n_tokens + t];
    st = step(s, w.ids.data(), w);
    if (st != kOk) return st;
    ++s.n_past;
    ++s.pos;
  }
  return kOk;
}

}  // namespace facelang
