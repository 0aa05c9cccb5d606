// detrt plugins/cuda/detrtCudaApi.cpp: a C ABI over the two launchers, built into libdetrt_cuda.so so that
// Python (ctypes + cuda-python device buffers) can run the kernels without TensorRT:
// detrt/bench/gpu_validate.py compares them with the CPU kernels there.
//
//   int detrt_cuda_ms_deform_attn(int dtype, int N, int S, int M, int D, int L, int P, int Lq,
//       const void* value, const void* spatial_shapes, const void* level_start_index,
//       const void* sampling_locations, const void* attention_weights, void* output, void* stream)
//   int detrt_cuda_dcg_neighbors(int dtype, int B, int N, int k, float iou_threshold, float low_score,
//       const void* boxes, const void* scores, void* indices, void* valid, void* stream)
//   const char* detrt_cuda_error_string(int status)
//
// dtype: 0 float32, 1 float16 (for MSDA: value, attention weights and output; sampling locations are float32
// for both, as the launcher takes them). Pointers are device pointers, layouts those of the launchers' headers.
// Return value: a cudaError_t (0 = success); the call only enqueues work on `stream`.
#include "dcgNeighbors.h"
#include "msDeformAttn.h"

#include <cuda_runtime_api.h>

namespace {
constexpr int kFLOAT32 = 0;
constexpr int kFLOAT16 = 1;
} // namespace

extern "C" {

__attribute__((visibility("default"))) int detrt_cuda_ms_deform_attn(int dtype, int N, int S, int M, int D, int L,
    int P, int Lq, void const* value, void const* spatialShapes, void const* levelStartIndex,
    void const* samplingLocations, void const* attentionWeights, void* output, void* stream)
{
    detrt::msda::Dims const dims{N, S, M, D, L, P, Lq};
    auto const* shapes = static_cast<int32_t const*>(spatialShapes);
    auto const* starts = static_cast<int32_t const*>(levelStartIndex);
    auto* cudaStream = static_cast<cudaStream_t>(stream);
    if (dtype == kFLOAT32)
    {
        return detrt::gpu::msDeformAttn(dims, static_cast<float const*>(value), shapes, starts,
            static_cast<float const*>(samplingLocations), static_cast<float const*>(attentionWeights),
            static_cast<float*>(output), cudaStream);
    }
    if (dtype == kFLOAT16)
    {
        return detrt::gpu::msDeformAttn(dims, static_cast<__half const*>(value), shapes, starts,
            static_cast<float const*>(samplingLocations), static_cast<__half const*>(attentionWeights),
            static_cast<__half*>(output), cudaStream);
    }
    return cudaErrorInvalidValue;
}

__attribute__((visibility("default"))) int detrt_cuda_dcg_neighbors(int dtype, int B, int N, int k,
    float iouThreshold, float lowScore, void const* boxes, void const* scores, void* indices, void* valid,
    void* stream)
{
    auto* outIndices = static_cast<int32_t*>(indices);
    auto* outValid = static_cast<int32_t*>(valid);
    auto* cudaStream = static_cast<cudaStream_t>(stream);
    if (dtype == kFLOAT32)
    {
        return detrt::gpu::dcgNeighbors(B, N, k, iouThreshold, lowScore, static_cast<float const*>(boxes),
            static_cast<float const*>(scores), outIndices, outValid, cudaStream);
    }
    if (dtype == kFLOAT16)
    {
        return detrt::gpu::dcgNeighbors(B, N, k, iouThreshold, lowScore, static_cast<__half const*>(boxes),
            static_cast<__half const*>(scores), outIndices, outValid, cudaStream);
    }
    return cudaErrorInvalidValue;
}

__attribute__((visibility("default"))) char const* detrt_cuda_error_string(int status)
{
    return cudaGetErrorString(static_cast<cudaError_t>(status));
}

} // extern "C"
