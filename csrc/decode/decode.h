// Token-by-token decoding of a small pre-LayerNorm decoder-only transformer
// on the CPU, with its sampling loop: classifier-free guidance, temperature,
// top-k, and an optional stop token. Two models use it: the text-to-motion
// transformer (pyfacelang/l2m/model.py::MotionGPT, output classes = face
// codes) and the built-in captioner (pyfacelang/m2l/gpt.py::GPT, greedy,
// output classes = its text tokens, stopping at <eos>); their blocks are the
// same.
//
// Why a kernel: one decoding step of the shipped model is ~2 M multiply-adds,
// which torch spends ~1 ms on (about 60 operator calls of ~15 us overhead
// each); here a step is one pass over the weights. The prompt (the text
// prefix and the first tokens) still goes through torch in one batched
// forward that fills the key/value caches this kernel continues.
// Torch twins: MotionGPT.step (one step) and TextToMotion.generate with
// backend="torch" (the loop); tests compare them on random weights.
//
// On a GPU, decoding a model this narrow one token at a time is bound by
// kernel launches either way, so there is no CUDA path: CUDA models decode
// through torch.
#pragma once

#include <cstdint>

#include "../common/status.h"

namespace facelang {

// One block: x += proj(attn(ln1(x))); x += out(gelu(fc(ln2(x)))).
// Linear weights in PyTorch's nn.Linear layout (out_features, in_features),
// float32, C-contiguous host memory.
struct DecodeLayer {
  const float* ln1_w = nullptr;   // (D,) LayerNorm before attention
  const float* ln1_b = nullptr;   // (D,)
  const float* qkv_w = nullptr;   // (3D, D) query, key, value projections stacked
  const float* qkv_b = nullptr;   // (3D,)
  const float* proj_w = nullptr;  // (D, D) attention output projection
  const float* proj_b = nullptr;  // (D,)
  const float* ln2_w = nullptr;   // (D,) LayerNorm before the MLP
  const float* ln2_b = nullptr;   // (D,)
  const float* fc_w = nullptr;    // (F, D) MLP in (exact erf GELU after it)
  const float* fc_b = nullptr;    // (F,)
  const float* out_w = nullptr;   // (D, F) MLP out
  const float* out_b = nullptr;   // (D,)
  float* k_cache = nullptr;       // (R, H, cap, D / H) keys so far; the step writes position n_past
  float* v_cache = nullptr;       // (R, H, cap, D / H) values, same layout
};

struct DecodeArgs {
  // ---- the network
  const DecodeLayer* layers = nullptr;  // (n_layer,) blocks in order
  int64_t n_layer = 0;
  int64_t D = 0;                        // model width
  int64_t H = 0;                        // attention heads (D % H == 0)
  int64_t F = 0;                        // MLP width
  int64_t K = 0;                        // face codes (output classes); input ids are < K + 1 (K = <bos>)
  const float* tok_emb = nullptr;       // (K + 1, D) input token embeddings
  const float* pos_emb = nullptr;       // (max_pos, D) motion position embeddings
  int64_t max_pos = 0;
  const float* lnf_w = nullptr;         // (D,) final LayerNorm
  const float* lnf_b = nullptr;         // (D,)
  const float* head_w = nullptr;        // (K, D) output projection (no bias)
  // ---- the decoding state
  int64_t R = 0;                        // rows: B prompts, or 2B with guidance (rows B.. are the
                                        // unconditional twins of rows 0..B-1)
  int64_t B = 0;                        // prompts
  int64_t cap = 0;                      // cache capacity in positions
  int64_t n_past = 0;                   // positions already in the caches (prefix + earlier tokens)
  int64_t pos = 0;                      // motion position of the next input token (< max_pos)
  const float* row_emb = nullptr;       // (R, D) added to every input token of a row (the length bin); null = 0
  const uint8_t* key_mask = nullptr;    // (R, cap) 1 = the key may be attended (prefix padding is 0); null = all
  float* logits = nullptr;              // (R, K) in: logits for the first token to pick; then overwritten
  // ---- sampling (decode_cpu only)
  int64_t n_tokens = 0;                 // tokens to pick per prompt (the caches must hold n_past + n_tokens - 1)
  float cfg_scale = 1.0f;               // guidance: u + cfg_scale * (c - u) when R == 2B
  float temperature = 1.0f;             // 0 = greedy (argmax, first maximum)
  int64_t top_k = 0;                    // sample among the k most likely codes; 0 = all
  uint64_t* rng_state = nullptr;        // in/out: splitmix64 state, so a continued call continues the stream
  int64_t stop_id = -1;                 // a prompt that picks this token is finished: the rest of its row of
                                        // `out` is stop_id, and the loop ends once every prompt is; -1 = none
  int64_t* out = nullptr;               // (B, n_tokens) picked tokens, row-major
};

// One step for every row: ids (R,) at position `pos`, keys/values appended at
// `n_past` -> logits (R, K). Does not advance n_past/pos (the caller does).
int decode_step_cpu(const DecodeArgs& a, const int64_t* ids);

// The sampling loop: pick a token per prompt from `logits`, feed it to all of
// that prompt's rows, step; n_tokens times (the last pick is not fed back).
// With stop_id >= 0 it ends early once every prompt has picked stop_id (the
// rest of `out` is filled with it; a finished prompt's rows are still fed
// stop_id while others go on, as a batched torch loop would, but it draws
// no more random numbers, so a sampled batch's stream differs from one
// without stop_id once a prompt has finished).
int decode_cpu(const DecodeArgs& a);

inline int decode_validate(const DecodeArgs& a) {
  if (!a.layers || a.n_layer <= 0 || a.D <= 0 || a.H <= 0 || a.D % a.H != 0 || a.F <= 0 || a.K <= 0) {
    return kInvalidArgument;
  }
  if (!a.tok_emb || !a.pos_emb || !a.lnf_w || !a.lnf_b || !a.head_w || !a.logits) {
    return kInvalidArgument;
  }
  if (a.R <= 0 || a.B <= 0 || (a.R != a.B && a.R != 2 * a.B)) return kInvalidArgument;
  if (a.n_past < 0 || a.pos < 0 || a.cap <= 0) return kInvalidArgument;
  for (int64_t l = 0; l < a.n_layer; ++l) {
    const DecodeLayer& L = a.layers[l];
    if (!L.ln1_w || !L.ln1_b || !L.qkv_w || !L.qkv_b || !L.proj_w || !L.proj_b || !L.ln2_w || !L.ln2_b ||
        !L.fc_w || !L.fc_b || !L.out_w || !L.out_b || !L.k_cache || !L.v_cache) {
      return kInvalidArgument;
    }
  }
  return kOk;
}

}  // namespace facelang
