// detrt plugins/cuda/msDeformAttn.h: CUDA multi-scale deformable attention launcher (docs/ops.md).
//
// Raw device pointers, sizes and a stream; no TensorRT type. Layouts are those of plugins/common/msda_core.h:
//   value [N, S, M, D], spatialShapes [L, 2] (H, W) int32, levelStartIndex [L] int32,
//   samplingLocations [N, Lq, M, L, P, 2] normalized (x, y), attentionWeights [N, Lq, M, L, P],
//   output [N, Lq, M * D]; all row-major and contiguous. value, attentionWeights and output share one dtype
//   (float32 or float16); samplingLocations are float32 for both (float16 would move a location on a
//   100-pixel map by up to 0.03 pixel).
// Arithmetic: msda::point_corners (the core the CPU kernel runs), float32 accumulation for both dtypes;
// with float16 I/O and even D, each thread reads two channels with one half2 load. Offsets are 32-bit
// where every tensor has at most 2^30 elements, else 64-bit.
// One kernel launch on `stream`; no allocation, no synchronization. Returns cudaSuccess or the error
// of the launch (cudaErrorInvalidValue for negative sizes, a grid too large, or null pointers).
// Levels whose start + H*W does not fit in S are skipped, so inconsistent shapes read no memory
// outside `value` (they give zeros for that level instead of garbage).
#ifndef DETRT_CUDA_MS_DEFORM_ATTN_H
#define DETRT_CUDA_MS_DEFORM_ATTN_H

#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "msda_core.h"

namespace detrt::gpu {

cudaError_t msDeformAttn(msda::Dims const& dims, float const* value, int32_t const* spatialShapes,
    int32_t const* levelStartIndex, float const* samplingLocations, float const* attentionWeights, float* output,
    cudaStream_t stream) noexcept;

cudaError_t msDeformAttn(msda::Dims const& dims, __half const* value, int32_t const* spatialShapes,
    int32_t const* levelStartIndex, float const* samplingLocations, __half const* attentionWeights, __half* output,
    cudaStream_t stream) noexcept;

} // namespace detrt::gpu

#endif // DETRT_CUDA_MS_DEFORM_ATTN_H
