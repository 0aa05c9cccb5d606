// detrt plugins/common/msda_core.h: multi-scale deformable attention arithmetic (docs/ops.md),
// shared verbatim by the CPU kernel (plugins/cpu) and the CUDA kernel (plugins/cuda).
//
// Layouts (row-major, contiguous):
//   value               [N, S, M, D]            T (float, detrt::half_t on the host, __half on device)
//   spatial_shapes      [L, 2] as (H, W)        int32
//   level_start_index   [L]                     int32
//   sampling_locations  [N, Lq, M, L, P, 2]     TL (T, or float with a float16 T), normalized (x, y); any value
//                                               is legal
//   attention_weights   [N, Lq, M, L, P]        TW (T)
//   output              [N, Lq, M * D]          T
// out[n, q, m*D + d] = sum_{l, p} a[n,q,m,l,p] * bilinear(value[n, level l, :, m, d], x*W_l - 0.5, y*H_l - 0.5)
// with zero padding (F.grid_sample bilinear, padding_mode="zeros", align_corners=False); float32 math.
//
// API (all DETRT_INLINE = __host__ __device__ forceinline; no allocation, no exceptions):
//   struct Dims { int N, S, M, D, L, P, Lq; }
//   struct Corners { unsigned mask; int row[4]; float weight[4]; }
//       the four bilinear taps of one sampling point in fixed slots (0 top-left, 1 top-right, 2 bottom-left,
//       3 bottom-right): row = spatial index into S (level start + y*W + x), weight = bilinear weight *
//       attention weight; bit k of mask is set iff tap k lies inside the map (the others must not be read).
//       Fixed slots, not a compacted list: indexed only by unrolled constants, the taps stay in registers.
//   bilinear_corners(x, y, H, W, level_start, attn, Corners&)        taps of one normalized location
//   point_corners<I>(loc, attn, shapes, starts, dims, n, q, m, l, p, Corners&)   same, read from tensors;
//       I (default int64_t) is the index type of the tensor offsets: a caller whose tensors have fewer than
//       2^31 elements may use int32_t. loc and attn may have different element types (float32 locations
//       with float16 weights: float16 engines keep the locations float32).
//   accumulate_corners<T>(value_nm, row_stride, corners, d0, d1, acc)
//       acc[d - d0] += sum_taps weight * value_nm[row * row_stride + d] for d in [d0, d1);
//       value_nm = value + (n*S*M + m) * D, row_stride = M*D. The CPU loop over d is vectorizable.
//   query_head<T, TL, TW, TO = T>(value, loc, attn, shapes, starts, dims, n, q, m, acc, out)
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
  unsigned mask;
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
  c.mask = 0;
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
  c.row[0] = level_start + y0 * w + x0;  // x0, y0 >= -1 and x1, y1 <= W, H here: no overflow
  c.row[1] = c.row[0] + 1;
  c.row[2] = c.row[0] + w;
  c.row[3] = c.row[2] + 1;
  c.weight[0] = hx * hy * attn;
  c.weight[1] = lx * hy * attn;
  c.weight[2] = hx * ly * attn;
  c.weight[3] = lx * ly * attn;
  c.mask = (y0_in && x0_in ? 1u : 0u) | (y0_in && x1_in ? 2u : 0u) | (y1_in && x0_in ? 4u : 0u) |
           (y1_in && x1_in ? 8u : 0u);
}

// Taps of sampling point (n, q, m, l, p); I is the index type of the offsets into loc and attn.
template <typename I = int64_t, typename TL, typename TW>
DETRT_INLINE void point_corners(const TL* sampling_locations, const TW* attention_weights, const int* spatial_shapes,
                                const int* level_start_index, const Dims& dims, int n, int q, int m, int l, int p,
                                Corners& c) {
  const I a_index = ((((static_cast<I>(n) * dims.Lq + q) * dims.M + m) * dims.L + l) * dims.P + p);
  const float x = IoTraits<TL>::load(sampling_locations + 2 * a_index);
  const float y = IoTraits<TL>::load(sampling_locations + 2 * a_index + 1);
  const float a = IoTraits<TW>::load(attention_weights + a_index);
  bilinear_corners(x, y, spatial_shapes[2 * l], spatial_shapes[2 * l + 1], level_start_index[l], a, c);
}

// acc[d - d0] += sum over taps of weight * value_nm[row * row_stride + d], d in [d0, d1).
template <typename T>
DETRT_INLINE void accumulate_corners(const T* value_nm, int64_t row_stride, const Corners& c, int d0, int d1,
                                     float* acc) {
  if (c.mask == 15u) {  // interior point: one pass over the channels for all four taps
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
  for (int k = 0; k < 4; ++k) {  // an edge point: its taps inside the map, in slot order
    if (!(c.mask & (1u << k))) continue;
    const T* v = value_nm + c.row[k] * row_stride;
    const float w = c.weight[k];
    for (int d = d0; d < d1; ++d) acc[d - d0] += w * IoTraits<T>::load(v + d);
  }
}

// One output row out[n, q, m*D : (m+1)*D]; acc is caller scratch of dims.D floats. TO (default T) lets
// a caller read a float32 copy of a float16 value tensor and still write float16.
template <typename T, typename TL, typename TW, typename TO = T>
DETRT_INLINE void query_head(const T* value, const TL* sampling_locations, const TW* attention_weights,
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
