// detrt plugins/common/msda_core.h: multi-scale deformable attention arithmetic (docs/ops.md),
// shared verbatim by the CPU kernel (plugins/cpu) and the CUDA kernel (plugins/cuda).
//
// Layouts (row-major, contiguous):
//   value               [N, S, M, D]            T (float, detrt::half_t on the host, __half on device)
//   spatial_shapes      [L, 2] as (H, W)        int32
//   level_start_index   [L]                     int32
//   sampling_locations  [N, Lq, M, L, P, 2]     T, normalized (x, y); any value is legal
//   attention_weights   [N, Lq, M, L, P]        T
//   output              [N, Lq, M * D]          T
// out[n, q, m*D + d] = sum_{l, p} a[n,q,m,l,p] * bilinear(value[n, level l, :, m, d], x*W_l - 0.5, y*H_l - 0.5)
// with zero padding (F.grid_sample bilinear, padding_mode="zeros", align_corners=False); float32 math.
//
// API (all DETRT_INLINE = __host__ __device__ forceinline; no allocation, no exceptions):
//   struct Dims { int N, S, M, D, L, P, Lq; }
//   struct Corners { int count; int row[4]; float weight[4]; }
//       the in-map bilinear taps of one sampling point: row = spatial index into S (level start + y*W + x),
//       weight = bilinear weight * attention weight; taps outside the map are left out (count 0..4).
//   bilinear_corners(x, y, H, W, level_start, attn, Corners&)        taps of one normalized location
//   point_corners<TS>(loc, attn, shapes, starts, dims, n, q, m, l, p, Corners&)   same, read from tensors
//   accumulate_corners<T>(value_nm, row_stride, corners, d0, d1, acc)
//       acc[d - d0] += sum_taps weight * value_nm[row * row_stride + d] for d in [d0, d1);
//       value_nm = value + (n*S*M + m) * D, row_stride = M*D. The CPU loop over d is vectorizable.
//   sample_channel<T, TS>(value, loc, attn, shapes, starts, dims, n, q, m, d) -> float
//       the whole sum for one (n, q, m, d): the one-thread-per-output CUDA form.
//   query_head<T, TS, TO = T>(value, loc, attn, shapes, starts, dims, n, q, m, acc, out)
//       the whole output row out[n, q, m*D : (m+1)*D] for one (n, q, m): corners computed once per
//       (l, p) and reused across the D channels; acc is caller scratch of D floats. The CPU form.
#ifndef DETRT_COMMON_MSDA_CORE_H
#define DETRT_COMMON_MSDA_CORE_H

#include <cstdint>

#include "hd.h"
#include "io_types.h"

#if !defined(DETRT_DEVICE_CODE)
#include <cmath>
#endif

namespace detrt {
namespace msda {

struct Dims {
  int N, S, M, D, L, P, Lq;
};

struct Corners {
  int count;
  int row[4];
  float weight[4];
};

DETRT_INLINE float floor_f(float v) {
#if defined(DETRT_DEVICE_CODE)
  return floorf(v);
#else
  return std::floor(v);
#endif
}

// Taps of normalized location (x, y) on an H x W map whose rows start at level_start.
DETRT_INLINE void bilinear_corners(float x, float y, int h, int w, int level_start, float attn, Corners& c) {
  c.count = 0;
  const float ix = x * static_cast<float>(w) - 0.5f;
  const float iy = y * static_cast<float>(h) - 0.5f;
  // Written so that NaN and far-away locations (no tap inside) fail before any float->int conversion.
  if (!(ix > -1.0f && iy > -1.0f && ix < static_cast<float>(w) && iy < static_cast<float>(h))) return;
  const float fx0 = floor_f(ix), fy0 = floor_f(iy);
  const int x0 = static_cast<int>(fx0), y0 = static_cast<int>(fy0);
  const int x1 = x0 + 1, y1 = y0 + 1;
  // F.grid_sample's weights: nw = (x1 - ix)(y1 - iy), ne = (ix - x0)(y1 - iy), ...
  const float lx = ix - fx0, ly = iy - fy0;
  const float hx = (fx0 + 1.0f) - ix, hy = (fy0 + 1.0f) - iy;
  const bool x0_in = x0 >= 0, x1_in = x1 < w, y0_in = y0 >= 0, y1_in = y1 < h;
  if (y0_in && x0_in) { c.row[c.count] = level_start + y0 * w + x0; c.weight[c.count++] = hx * hy * attn; }
  if (y0_in && x1_in) { c.row[c.count] = level_start + y0 * w + x1; c.weight[c.count++] = lx * hy * attn; }
  if (y1_in && x0_in) { c.row[c.count] = level_start + y1 * w + x0; c.weight[c.count++] = hx * ly * attn; }
  if (y1_in && x1_in) { c.row[c.count] = level_start + y1 * w + x1; c.weight[c.count++] = lx * ly * attn; }
}

// Taps of sampling point (n, q, m, l, p).
template <typename TS>
DETRT_INLINE void point_corners(const TS* sampling_locations, const TS* attention_weights, const int* spatial_shapes,
                                const int* level_start_index, const Dims& dims, int n, int q, int m, int l, int p,
                                Corners& c) {
  const int64_t a_index = ((((static_cast<int64_t>(n) * dims.Lq + q) * dims.M + m) * dims.L + l) * dims.P + p);
  const float x = IoTraits<TS>::load(sampling_locations + 2 * a_index);
  const float y = IoTraits<TS>::load(sampling_locations + 2 * a_index + 1);
  const float a = IoTraits<TS>::load(attention_weights + a_index);
  bilinear_corners(x, y, spatial_shapes[2 * l], spatial_shapes[2 * l + 1], level_start_index[l], a, c);
}

// acc[d - d0] += sum over taps of weight * value_nm[row * row_stride + d], d in [d0, d1).
template <typename T>
DETRT_INLINE void accumulate_corners(const T* value_nm, int64_t row_stride, const Corners& c, int d0, int d1,
                                     float* acc) {
  if (c.count == 4) {  // interior point: one pass over the channels for all four taps
    const T* v0 = value_nm + c.row[0] * row_stride;
    const T* v1 = value_nm + c.row[1] * row_stride;
    const T* v2 = value_nm + c.row[2] * row_stride;
    const T* v3 = value_nm + c.row[3] * row_stride;
    const float w0 = c.weight[0], w1 = c.weight[1], w2 = c.weight[2], w3 = c.weight[3];
    for (int d = d0; d < d1; ++d) {
      acc[d - d0] += w0 * IoTraits<T>::load(v0 + d) + w1 * IoTraits<T>::load(v1 + d) +
                     w2 * IoTraits<T>::load(v2 + d) + w3 * IoTraits<T>::load(v3 + d);
    }
    return;
  }
  for (int k = 0; k < c.count; ++k) {
    const T* v = value_nm + c.row[k] * row_stride;
    const float w = c.weight[k];
    for (int d = d0; d < d1; ++d) acc[d - d0] += w * IoTraits<T>::load(v + d);
  }
}

// The whole sum for one output element (n, q, m, d).
template <typename T, typename TS>
DETRT_INLINE float sample_channel(const T* value, const TS* sampling_locations, const TS* attention_weights,
                                  const int* spatial_shapes, const int* level_start_index, const Dims& dims, int n,
                                  int q, int m, int d) {
  const int64_t row_stride = static_cast<int64_t>(dims.M) * dims.D;
  const T* value_nm = value + (static_cast<int64_t>(n) * dims.S * dims.M + m) * dims.D;
  float acc = 0.0f;
  for (int l = 0; l < dims.L; ++l) {
    for (int p = 0; p < dims.P; ++p) {
      Corners c;
      point_corners(sampling_locations, attention_weights, spatial_shapes, level_start_index, dims, n, q, m, l, p,
                    c);
      for (int k = 0; k < c.count; ++k) acc += c.weight[k] * IoTraits<T>::load(value_nm + c.row[k] * row_stride + d);
    }
  }
  return acc;
}

// One output row out[n, q, m*D : (m+1)*D]; acc is caller scratch of dims.D floats. TO (default T) lets
// a caller read a float32 copy of a float16 value tensor and still write float16.
template <typename T, typename TS, typename TO = T>
DETRT_INLINE void query_head(const T* value, const TS* sampling_locations, const TS* attention_weights,
                             const int* spatial_shapes, const int* level_start_index, const Dims& dims, int n, int q,
                             int m, float* acc, TO* out) {
  const int D = dims.D;
  const int64_t row_stride = static_cast<int64_t>(dims.M) * D;
  const T* value_nm = value + (static_cast<int64_t>(n) * dims.S * dims.M + m) * D;
  for (int d = 0; d < D; ++d) acc[d] = 0.0f;
  for (int l = 0; l < dims.L; ++l) {
    for (int p = 0; p < dims.P; ++p) {
      Corners c;
      point_corners(sampling_locations, attention_weights, spatial_shapes, level_start_index, dims, n, q, m, l, p,
                    c);
      accumulate_corners(value_nm, row_stride, c, 0, D, acc);
    }
  }
  TO* out_row = out + ((static_cast<int64_t>(n) * dims.Lq + q) * dims.M + m) * D;
  for (int d = 0; d < D; ++d) IoTraits<TO>::store(out_row + d, acc[d]);
}

}  // namespace msda
}  // namespace detrt

#endif  // DETRT_COMMON_MSDA_CORE_H
