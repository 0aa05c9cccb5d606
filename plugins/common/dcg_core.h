// detrt plugins/common/dcg_core.h: DCG neighbour selection arithmetic (docs/ops.md, `dcg_neighbors`),
// shared verbatim by the CPU kernel (plugins/cpu) and the CUDA kernel (plugins/cuda).
//
// j is a neighbour of i iff s_i < s_j (strict), s_j > low_score and IoU(i, j) >= iou_threshold; the k
// neighbours of largest IoU are kept (ties: smaller index first). Padding slots: valid = false, index = i.
//
// IoU is computed EXACTLY as detrt/ops/dcg.py's dense reference does it in float32 (cxcywh -> xyxy as
// cx - 0.5*w ..., then min/max, clamp, products, (area_i + area_j) - inter, one division), one rounding
// per operation and no fused multiply-add, so a pair sitting on the threshold gets the same answer:
// on the device the operations are the _rn intrinsics (never contracted whatever --fmad says); host
// code that includes this header must be compiled with -ffp-contract=off (CMake does this).
//
// API (all DETRT_INLINE = __host__ __device__ forceinline):
//   struct Box { float x0, y0, x1, y1, area; }
//   box_from_cxcywh(cx, cy, w, h) -> Box                 the reference's xyxy corners and area
//   iou(const Box& a, const Box& b) -> float             symmetric bit for bit: iou(a, b) == iou(b, a)
//   inter_union(a, b, inter&, uni&)                      its numerator and denominator
//   can_qualify(box) -> bool        finite corners and area, x1 > x0, y1 > y0: a box failing this has IoU
//                                   0, -0 or NaN with every box, so it has no neighbour when threshold > 0
//   is_neighbor(s_i, s_j, iou, iou_threshold, low_score) -> bool
//   topk_better(key_a, idx_a, key_b, idx_b) -> bool      (key desc, index asc) order of the kept list
//   topk_insert(keys, idx, count, k, key, j)             bounded insertion into keys/idx[k], kept sorted
//                                                        by topk_better; count in [0, k] is updated
//   topk_merge(keys_a, idx_a, count_a, keys_b, idx_b, count_b, k, keys_out, idx_out) -> count
//                                                        the first min(k, count_a + count_b) of two kept lists
//                                                        in topk_better order, into out (aliasing neither). The
//                                                        order is total, so merging the kept lists of any split
//                                                        of the candidates gives the kept list of all of them
//   topk_write<I, B>(idx, count, k, self, out_index, out_valid)     slots [0, count) valid, the rest
//                                                        padding (index = self, valid = 0)
#ifndef DETRT_COMMON_DCG_CORE_H
#define DETRT_COMMON_DCG_CORE_H

#include <cstdint>

#include "hd.h"

namespace detrt {
namespace dcg {

// One rounding per operation, never fused (see the header comment).
DETRT_INLINE float mul_rn(float a, float b) {
#if defined(DETRT_DEVICE_CODE)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
DETRT_INLINE float add_rn(float a, float b) {
#if defined(DETRT_DEVICE_CODE)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
DETRT_INLINE float sub_rn(float a, float b) {
#if defined(DETRT_DEVICE_CODE)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
DETRT_INLINE float div_rn(float a, float b) {
#if defined(DETRT_DEVICE_CODE)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
// torch.minimum / maximum propagate NaN; any NaN coordinate makes the area NaN and so the IoU NaN,
// which fails every threshold, so NaN handling here cannot change an answer.
DETRT_INLINE float min_f(float a, float b) { return b < a ? b : a; }
DETRT_INLINE float max_f(float a, float b) { return a < b ? b : a; }

struct Box {
  float x0, y0, x1, y1, area;
};

DETRT_INLINE Box box_from_cxcywh(float cx, float cy, float w, float h) {
  Box b;
  const float hw = mul_rn(0.5f, w), hh = mul_rn(0.5f, h);
  b.x0 = sub_rn(cx, hw);
  b.y0 = sub_rn(cy, hh);
  b.x1 = add_rn(cx, hw);
  b.y1 = add_rn(cy, hh);
  b.area = mul_rn(sub_rn(b.x1, b.x0), sub_rn(b.y1, b.y0));
  return b;
}

// The intersection and the union IoU divides (iou = inter / uni).
DETRT_INLINE void inter_union(const Box& a, const Box& b, float& inter, float& uni) {
  float iw = sub_rn(min_f(a.x1, b.x1), max_f(a.x0, b.x0));
  float ih = sub_rn(min_f(a.y1, b.y1), max_f(a.y0, b.y0));
  iw = iw < 0.0f ? 0.0f : iw;  // clamp(min=0)
  ih = ih < 0.0f ? 0.0f : ih;
  inter = mul_rn(iw, ih);
  uni = sub_rn(add_rn(a.area, b.area), inter);
}

DETRT_INLINE float iou(const Box& a, const Box& b) {
  float inter, uni;
  inter_union(a, b, inter, uni);
  return div_rn(inter, uni);
}

DETRT_INLINE bool is_finite_f(float v) { return v - v == 0.0f; }  // false for inf and NaN

DETRT_INLINE bool can_qualify(const Box& b) {
  return is_finite_f(b.x0) && is_finite_f(b.x1) && is_finite_f(b.y0) && is_finite_f(b.y1) && is_finite_f(b.area) &&
         b.x1 > b.x0 && b.y1 > b.y0;
}

DETRT_INLINE bool is_neighbor(float score_i, float score_j, float iou_ij, float iou_threshold, float low_score) {
  return score_i < score_j && score_j > low_score && iou_ij >= iou_threshold;
}

DETRT_INLINE bool topk_better(float key_a, int idx_a, float key_b, int idx_b) {
  return key_a > key_b || (key_a == key_b && idx_a < idx_b);
}

DETRT_INLINE void topk_insert(float* keys, int* idx, int& count, int k, float key, int j) {
  int pos;
  if (count < k) {
    pos = count++;
  } else {
    if (k <= 0 || !topk_better(key, j, keys[k - 1], idx[k - 1])) return;
    pos = k - 1;
  }
  while (pos > 0 && topk_better(key, j, keys[pos - 1], idx[pos - 1])) {
    keys[pos] = keys[pos - 1];
    idx[pos] = idx[pos - 1];
    --pos;
  }
  keys[pos] = key;
  idx[pos] = j;
}

DETRT_INLINE int topk_merge(const float* keys_a, const int* idx_a, int count_a, const float* keys_b, const int* idx_b,
                           int count_b, int k, float* keys_out, int* idx_out) {
  int a = 0, b = 0, o = 0;
  for (; o < k && (a < count_a || b < count_b); ++o) {
    if (b >= count_b || (a < count_a && topk_better(keys_a[a], idx_a[a], keys_b[b], idx_b[b]))) {
      keys_out[o] = keys_a[a];
      idx_out[o] = idx_a[a++];
    } else {
      keys_out[o] = keys_b[b];
      idx_out[o] = idx_b[b++];
    }
  }
  return o;
}

template <typename I, typename B>
DETRT_INLINE void topk_write(const int* idx, int count, int k, int self, I* out_index, B* out_valid) {
  for (int s = 0; s < k; ++s) {
    const bool valid = s < count;
    out_index[s] = static_cast<I>(valid ? idx[s] : self);
    out_valid[s] = static_cast<B>(valid ? 1 : 0);
  }
}

}  // namespace dcg
}  // namespace detrt

#endif  // DETRT_COMMON_DCG_CORE_H
