// detrt plugins/cpu/dcg_cpu.h: exact sub-quadratic DCG neighbour selection on the CPU (semantics:
// plugins/common/dcg_core.h, docs/ops.md).
#ifndef DETRT_CPU_DCG_CPU_H
#define DETRT_CPU_DCG_CPU_H

#include <cstdint>

namespace detrt {
namespace cpu {

// boxes [B, N, 4] cxcywh float32, scores [B, N] float32 -> indices [B, N, k] (int32 or int64) and
// valid [B, N, k] (uint8 0/1). Identical valid-neighbour sets to the dense reference; O(N log N + N*k)
// memory per batch element; iou_threshold <= 0 (every pair qualifies on IoU) scans all pairs.
// num_threads <= 0: OpenMP's default.
template <typename I>
void dcg_neighbors(const float* boxes, const float* scores, int B, int N, int k, float iou_threshold,
                   float low_score, I* indices, uint8_t* valid, int num_threads);

}  // namespace cpu
}  // namespace detrt

#endif  // DETRT_CPU_DCG_CPU_H
