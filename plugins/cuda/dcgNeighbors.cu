// detrt plugins/cuda/dcgNeighbors.cu: the DCG neighbour kernel. Boxes, IoU, the neighbour test and the
// bounded top-k are plugins/common/dcg_core.h (the CPU kernel's functions); this file only tiles the
// candidate loop through shared memory.
#include "dcgNeighbors.h"

#include "dcg_core.h"
#include "io_types.h"

namespace detrt::gpu {
namespace {

constexpr int32_t kTILE = 128; // threads per block = candidates staged per tile

template <typename T>
__device__ __forceinline__ dcg::Box loadBox(T const* boxes, int64_t index)
{
    T const* b = boxes + 4 * index;
    return dcg::box_from_cxcywh(IoTraits<T>::load(b), IoTraits<T>::load(b + 1), IoTraits<T>::load(b + 2),
        IoTraits<T>::load(b + 3));
}

// Block (x, b) serves queries [x * kTILE, (x + 1) * kTILE) of batch element b, one per thread; all its
// threads stage candidate tiles j in [t, t + kTILE) together.
template <typename T, int32_t MAX_K>
__global__ void __launch_bounds__(kTILE) dcgNeighborsKernel(int32_t const numBoxes, int32_t const k,
    float const iouThreshold, float const lowScore, T const* __restrict__ boxes, T const* __restrict__ scores,
    int32_t* __restrict__ indices, int32_t* __restrict__ valid)
{
    __shared__ dcg::Box tileBox[kTILE];
    __shared__ float tileScore[kTILE];

    int64_t const base = static_cast<int64_t>(blockIdx.y) * numBoxes;
    int32_t const i = blockIdx.x * kTILE + threadIdx.x;
    bool const active = i < numBoxes;

    dcg::Box boxI{};
    float scoreI = 0.0F;
    if (active)
    {
        boxI = loadBox(boxes, base + i);
        scoreI = IoTraits<T>::load(scores + base + i);
    }
    float keys[MAX_K];
    int32_t kept[MAX_K];
    int32_t count = 0;

    for (int32_t tileStart = 0; tileStart < numBoxes; tileStart += kTILE)
    {
        int32_t const j = tileStart + threadIdx.x;
        if (j < numBoxes)
        {
            tileBox[threadIdx.x] = loadBox(boxes, base + j);
            tileScore[threadIdx.x] = IoTraits<T>::load(scores + base + j);
        }
        __syncthreads();
        if (active)
        {
            int32_t const tileSize = min(kTILE, numBoxes - tileStart);
            for (int32_t t = 0; t < tileSize; ++t)
            {
                float const iou = dcg::iou(boxI, tileBox[t]);
                if (dcg::is_neighbor(scoreI, tileScore[t], iou, iouThreshold, lowScore))
                {
                    dcg::topk_insert(keys, kept, count, k, iou, tileStart + t);
                }
            }
        }
        __syncthreads();
    }
    if (active)
    {
        int64_t const slot = (base + i) * k;
        dcg::topk_write(kept, count, k, i, indices + slot, valid + slot);
    }
}

template <typename T, int32_t MAX_K>
cudaError_t launch(int32_t batch, int32_t numBoxes, int32_t k, float iouThreshold, float lowScore, T const* boxes,
    T const* scores, int32_t* indices, int32_t* valid, cudaStream_t stream)
{
    dim3 const grid((numBoxes + kTILE - 1) / kTILE, batch);
    dcgNeighborsKernel<T, MAX_K>
        <<<grid, kTILE, 0, stream>>>(numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid);
    return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch(int32_t batch, int32_t numBoxes, int32_t k, float iouThreshold, float lowScore, T const* boxes,
    T const* scores, int32_t* indices, int32_t* valid, cudaStream_t stream)
{
    if (batch < 0 || numBoxes < 0 || k < 1 || k > kDCG_MAX_K || batch > 65535)
    {
        return cudaErrorInvalidValue;
    }
    if (batch == 0 || numBoxes == 0)
    {
        return cudaSuccess;
    }
    if (boxes == nullptr || scores == nullptr || indices == nullptr || valid == nullptr)
    {
        return cudaErrorInvalidValue;
    }
    // The common k (10, DH-DETR's) keeps a short list; larger k a longer one.
    if (k <= 16)
    {
        return launch<T, 16>(batch, numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid, stream);
    }
    return launch<T, kDCG_MAX_K>(batch, numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid, stream);
}

} // namespace

cudaError_t dcgNeighbors(int32_t batch, int32_t numBoxes, int32_t k, float iouThreshold, float lowScore,
    float const* boxes, float const* scores, int32_t* indices, int32_t* valid, cudaStream_t stream) noexcept
{
    return dispatch(batch, numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid, stream);
}

cudaError_t dcgNeighbors(int32_t batch, int32_t numBoxes, int32_t k, float iouThreshold, float lowScore,
    __half const* boxes, __half const* scores, int32_t* indices, int32_t* valid, cudaStream_t stream) noexcept
{
    return dispatch(batch, numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid, stream);
}

} // namespace detrt::gpu
