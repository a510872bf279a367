// Per-frame filter, pose and residual after a live fit (see track.h).
#include "track.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace facelang {
namespace {

constexpr double kTwoPi = 6.283185307179586;

// pyfacelang/face/rotation.py::log_rotation_np (angle < pi).
void log_rotation(const double* R, double* v) {
  const double c = std::min(1.0, std::max(-1.0, (R[0] + R[4] + R[8] - 1.0) * 0.5));
  const double theta = std::acos(c), s = std::sin(theta);
  const double f = std::fabs(s) < 1e-6 ? 0.5 + theta * theta / 12.0 : theta / (2.0 * s);
  v[0] = (R[7] - R[5]) * f;
  v[1] = (R[2] - R[6]) * f;
  v[2] = (R[3] - R[1]) * f;
}

// pyfacelang/face/rotation.py::rodrigues_np: R = I + a K + b K^2, K^2 = v v^T - |v|^2 I.
void rodrigues(const double* v, double* R) {
  const double x = v[0], y = v[1], z = v[2], t2 = x * x + y * y + z * z;
  double a, b;
  if (t2 < 1e-8) {
    a = 1.0 - t2 / 6.0;
    b = 0.5 - t2 / 24.0;
  } else {
    const double t = std::sqrt(t2);
    a = std::sin(t) / t;
    b = (1.0 - std::cos(t)) / t2;
  }
  R[0] = 1.0 + b * (x * x - t2); R[1] = b * x * y - a * z;        R[2] = b * x * z + a * y;
  R[3] = b * x * y + a * z;        R[4] = 1.0 + b * (y * y - t2); R[5] = b * y * z - a * x;
  R[6] = b * x * z - a * y;        R[7] = b * y * z + a * x;        R[8] = 1.0 + b * (z * z - t2);
}

double alpha(double cutoff, double dt) { return 1.0 / (1.0 + 1.0 / (kTwoPi * cutoff) / dt); }

// pyfacelang/track/filters.py::OneEuroFilter.__call__ on n values: raw -> out, state updated.
// The same arithmetic; equal to rounding (the compiler may fuse a multiply and an add).
void one_euro(const TrackStepArgs& a, const double* raw, double* out, int64_t n) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) finite = finite && std::isfinite(raw[i]);
  if (!a.filter_enabled || std::isnan(a.f_time[0]) || !finite) {
    if (a.filter_enabled && finite) {  // the first frame starts the history
      std::copy(raw, raw + n, a.f_x);
      std::fill(a.f_dx, a.f_dx + n, 0.0);
      a.f_time[0] = a.time;
    }
    std::copy(raw, raw + n, out);
    return;
  }
  double dt = a.time - a.f_time[0];
  if (dt <= 0) dt = 1e-3;
  const double a_d = alpha(a.d_cutoff, dt);
  for (int64_t i = 0; i < n; ++i) {
    const double dx = (raw[i] - a.f_x[i]) / dt;
    a.f_dx[i] = a_d * dx + (1.0 - a_d) * a.f_dx[i];
    const double cutoff = a.min_cutoff + a.beta * (std::fabs(a.f_dx[i]) / a.f_scale[i]);
    const double k = alpha(cutoff, dt);
    a.f_x[i] = k * raw[i] + (1.0 - k) * a.f_x[i];
    out[i] = a.f_x[i];
  }
  a.f_time[0] = a.time;
}

// Pixels of one vertex X (mm) under rotation R about the pivot and camera (s, t).
inline void to_pixels(const double* X, const double* R, const double* p, const double* cam, double* y) {
  const double d0 = X[0] - p[0], d1 = X[1] - p[1], d2 = X[2] - p[2];
  const double y0 = R[0] * d0 + R[1] * d1 + R[2] * d2 + p[0];
  const double y1 = R[3] * d0 + R[4] * d1 + R[5] * d2 + p[1];
  const double y2 = R[6] * d0 + R[7] * d1 + R[8] * d2 + p[2];
  y[0] = cam[0] * y0 + cam[1];
  y[1] = -cam[0] * y1 + cam[2];
  y[2] = -cam[0] * y2 + cam[3];
}

}  // namespace

int track_step_cpu(const TrackStepArgs& a) {
  if (!a.w || !a.rot || !a.trans || !a.obs || !a.neutral || !a.basis || !a.f_x || !a.f_dx || !a.f_time ||
      !a.f_scale || !a.out || !a.fitted || !a.residual || a.V < 1 || a.K < 1)
    return kInvalidArgument;
  const int64_t K = a.K, V = a.V, n = K + 7;
  // raw = [w, log R, s, t]
  std::vector<double> raw(n);
  double Rs[9];
  for (int j = 0; j < 9; ++j) Rs[j] = a.rot[j];
  for (int64_t k = 0; k < K; ++k) raw[k] = a.w[k];
  log_rotation(Rs, raw.data() + K);
  raw[K + 3] = a.scale;
  for (int j = 0; j < 3; ++j) raw[K + 4 + j] = a.trans[j];

  one_euro(a, raw.data(), a.out, n);
  for (int64_t k = 0; k < K; ++k) a.out[k] = std::min(1.0, std::max(0.0, a.out[k]));

  // Both poses' vertices in one pass over the basis: the filtered (wf, for
  // the output landmarks) and the unfiltered (w, for the residual).
  std::vector<float> wf(K), Xf(a.neutral, a.neutral + 3 * V), Xs(a.neutral, a.neutral + 3 * V);
  for (int64_t k = 0; k < K; ++k) wf[k] = static_cast<float>(a.out[k]);
  for (int64_t k = 0; k < K; ++k) {
    const float* B = a.basis + k * 3 * V;
    const float cf = wf[k], cs = a.w[k];
    float* xf = Xf.data();
    float* xs = Xs.data();
#pragma omp simd
    for (int64_t i = 0; i < 3 * V; ++i) {
      xf[i] += cf * B[i];
      xs[i] += cs * B[i];
    }
  }
  double Rf[9];
  rodrigues(a.out + K, Rf);
  const double* camf = a.out + K + 3;
  const double cams[4] = {raw[K + 3], raw[K + 4], raw[K + 5], raw[K + 6]};
  double sum = 0.0;
  int64_t m = 0;
  for (int64_t i = 0; i < V; ++i) {
    double X[3] = {Xf[3 * i], Xf[3 * i + 1], Xf[3 * i + 2]}, y[3];
    to_pixels(X, Rf, a.pivot, camf, y);
    for (int j = 0; j < 3; ++j) a.fitted[3 * i + j] = static_cast<float>(y[j]);
    if (a.observed && !a.observed[i]) continue;
    double S[3] = {Xs[3 * i], Xs[3 * i + 1], Xs[3 * i + 2]};
    to_pixels(S, Rs, a.pivot, cams, y);
    const double dx = static_cast<float>(y[0]) - a.obs[3 * i], dy = static_cast<float>(y[1]) - a.obs[3 * i + 1];
    sum += std::sqrt(dx * dx + dy * dy);
    ++m;
  }
  a.residual[0] = m > 0 ? sum / double(m) : std::nan("");
  return kOk;
}

}  // namespace facelang
