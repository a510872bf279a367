// The per-frame tail of live tracking, after the fit (csrc/fit) has solved
// a frame: One Euro filtering of the solution, the fitted landmarks of the
// filtered pose, and the fit's residual against this frame's landmarks.
// pyfacelang/track/fitter.py::FaceFitter calls it once per frame; the
// filter's state lives in FaceFitter's buffers and is updated in place.
//
//   raw  = [w (K), log R (3), s, t (3)]                    the solve, unfiltered
//   out  = OneEuro(raw, t_frame), then w clipped to [0, 1]  (pyfacelang/track/filters.py)
//   fitted_i   = s F (R (X_i - pivot) + pivot) + t         X = neutral + sum_k w_k basis_k,
//                of the filtered w, R = exp(out rotation), camera out[K+3:]; F = diag(1, -1, -1)
//   residual   = mean over observed i of |(fitted_i - obs_i).xy| for the unfiltered solve
//
// Why a kernel: the same steps in NumPy were ~25 small array operations,
// ~0.17 ms a frame against the fit's own ~0.08 ms; here they are one pass.
// Torch twin: pyfacelang/_reference.py::track_step_ref.
//
// One frame at a time on the calling thread: a live stream has no batch to
// spread, and offline tracking is per frame too (its filter is sequential).
// No CUDA path for the same reason.
#pragma once

#include <cstdint>

#include "../common/status.h"

namespace facelang {

struct TrackStepArgs {
  // ---- this frame's solve (float32, from csrc/fit)
  const float* w = nullptr;          // (K,) expression weights
  const float* rot = nullptr;        // (3, 3) row-major head rotation
  float scale = 0.0f;                // camera scale, pixels per mm
  const float* trans = nullptr;      // (3,) camera translation, pixels
  const float* obs = nullptr;        // (V, 3) this frame's landmarks, pixels
  const uint8_t* observed = nullptr; // (V,) 1: the landmark counts in the residual; null: all do
  // ---- the rig on this track (float32)
  const float* neutral = nullptr;    // (V, 3) personalised neutral, mm
  const float* basis = nullptr;      // (K, V, 3) blendshape displacements, mm
  double pivot[3] = {0, 0, 0};       // head rotation centre, mm
  int64_t V = 0;                     // vertices (= landmarks)
  int64_t K = 0;                     // blendshapes
  // ---- One Euro filter over the K + 7 raw values (state in/out, float64)
  double time = 0.0;                 // this frame's time, seconds
  double* f_x = nullptr;             // (K + 7) last filtered values
  double* f_dx = nullptr;            // (K + 7) last filtered speeds
  double* f_time = nullptr;          // (1,) time of the last filtered frame; NaN: no history yet
  const double* f_scale = nullptr;   // (K + 7) units dividing the speed before it adapts the cutoff
  double min_cutoff = 0.5;           // Hz, cutoff at rest
  double beta = 1.0;                 // cutoff rise per unit of (scaled) speed
  double d_cutoff = 1.0;             // Hz, cutoff of the speed estimate
  int filter_enabled = 1;            // 0: values pass through (the state is left alone)
  // ---- outputs
  double* out = nullptr;             // (K + 7) filtered: w in [0, 1], axis-angle rotation, s, t
  float* fitted = nullptr;           // (V, 3) landmarks of the filtered pose, pixels
  double* residual = nullptr;        // (1,) mean 2-D pixel distance of the unfiltered solve to obs
};

// Returns kOk, or kInvalidArgument for a null pointer or a size < 1.
int track_step_cpu(const TrackStepArgs& a);

}  // namespace facelang
