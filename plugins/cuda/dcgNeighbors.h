// detrt plugins/cuda/dcgNeighbors.h: CUDA DCG neighbour selection launcher (`dcg_neighbors`, docs/ops.md).
//
// Raw device pointers, sizes and a stream; no TensorRT type.
//   boxes [B, N, 4] cxcywh, scores [B, N] (float32 or float16, one dtype)
//   indices [B, N, k] int32, valid [B, N, k] int32 (1 valid, 0 padding; padding slots hold index i)
// j is a neighbour of i iff s_i < s_j, s_j > lowScore and IoU(i, j) >= iouThreshold; the k of largest IoU are
// kept (ties: smaller index), in that order. Every test and the ordering are dcg::box_from_cxcywh, dcg::iou,
// dcg::is_neighbor and dcg::topk_insert of plugins/common/dcg_core.h, the functions the CPU kernel calls, with
// the same rounding on host and device; so the neighbour sets (and slots) equal the CPU kernel's.
// Each query's candidates are split over 32 lanes of a warp (8 lanes for k > 16), each lane keeping the top-k of
// its share; the lanes' lists are merged by dcg::topk_merge, and as the (IoU desc, index asc) order is total the
// result is that of one scan over all candidates (tests/plugins/test_dcg_split.py runs this split on the CPU).
// Candidates are staged in shared memory by tiles: O(N^2) pair tests, O(B*N*k) memory, nothing else allocated.
// One kernel launch on `stream`; no allocation, no synchronization. Returns cudaSuccess or the launch
// error (cudaErrorInvalidValue for k outside [1, kDCG_MAX_K], negative sizes, B > 65535, null pointers).
#ifndef DETRT_CUDA_DCG_NEIGHBORS_H
#define DETRT_CUDA_DCG_NEIGHBORS_H

#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace detrt::gpu {

//! Largest k the kernel keeps per query (a per-thread list).
inline constexpr int32_t kDCG_MAX_K{64};

cudaError_t dcgNeighbors(int32_t batch, int32_t numBoxes, int32_t k, float iouThreshold, float lowScore,
    float const* boxes, float const* scores, int32_t* indices, int32_t* valid, cudaStream_t stream) noexcept;

cudaError_t dcgNeighbors(int32_t batch, int32_t numBoxes, int32_t k, float iouThreshold, float lowScore,
    __half const* boxes, __half const* scores, int32_t* indices, int32_t* valid, cudaStream_t stream) noexcept;

} // namespace detrt::gpu

#endif // DETRT_CUDA_DCG_NEIGHBORS_H
