// detrt plugins/cuda/dcgNeighbors.cu: the DCG neighbour kernel. Boxes, IoU, the neighbour test, the bounded
// top-k and the merge of kept lists are plugins/common/dcg_core.h (the CPU kernel's functions); this file only
// splits each query's candidates over lanes, tiles them through shared memory and merges the lanes' lists.
#include "dcgNeighbors.h"

#include "dcg_core.h"
#include "io_types.h"

namespace detrt::gpu {
namespace {

constexpr int32_t kBOXES_PER_THREAD = 4; // a tile stages this many candidates per thread

template <typename T>
__device__ __forceinline__ dcg::Box loadBox(T const* boxes, int64_t index)
{
    T const* b = boxes + 4 * index;
    return dcg::box_from_cxcywh(IoTraits<T>::load(b), IoTraits<T>::load(b + 1), IoTraits<T>::load(b + 2),
        IoTraits<T>::load(b + 3));
}

// Block (x, b) serves THREADS / LANES queries of batch element b, LANES consecutive threads (within one warp) per
// query. Lane l of a query tests the candidates j = l (mod LANES) and keeps their top-k; the LANES kept lists are
// then merged in shared memory by a tree of dcg::topk_merge (lane l takes lane l + h's list, h = LANES/2 ... 1).
// The (IoU desc, index asc) order is total, so the merged list is the one scanning every candidate would keep.
// All threads stage candidate tiles together; every thread runs every loop and barrier, active or not.
template <typename T, int32_t MAX_K, int32_t LANES, int32_t THREADS>
__global__ void __launch_bounds__(THREADS) dcgNeighborsKernel(int32_t const numBoxes, int32_t const k,
    float const iouThreshold, float const lowScore, T const* __restrict__ boxes, T const* __restrict__ scores,
    int32_t* __restrict__ indices, int32_t* __restrict__ valid)
{
    static_assert(32 % LANES == 0 && THREADS % 32 == 0, "a query's lanes must lie in one warp");
    int32_t constexpr kTILE = THREADS * kBOXES_PER_THREAD;
    __shared__ dcg::Box tileBox[kTILE];
    __shared__ float tileScore[kTILE];
    __shared__ float listKeys[THREADS][MAX_K + 1]; // + 1: lanes writing slot s hit different banks
    __shared__ int32_t listIdx[THREADS][MAX_K + 1];
    __shared__ int32_t listCount[THREADS];

    int32_t const lane = threadIdx.x % LANES;
    int64_t const base = static_cast<int64_t>(blockIdx.y) * numBoxes;
    int32_t const i = blockIdx.x * (THREADS / LANES) + threadIdx.x / LANES;
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
        for (int32_t t = threadIdx.x; t < kTILE && tileStart + t < numBoxes; t += THREADS)
        {
            tileBox[t] = loadBox(boxes, base + tileStart + t);
            tileScore[t] = IoTraits<T>::load(scores + base + tileStart + t);
        }
        __syncthreads();
        if (active)
        {
            int32_t const tileSize = min(kTILE, numBoxes - tileStart);
            for (int32_t t = lane; t < tileSize; t += LANES)
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

    for (int32_t s = 0; s < count; ++s)
    {
        listKeys[threadIdx.x][s] = keys[s];
        listIdx[threadIdx.x][s] = kept[s];
    }
    listCount[threadIdx.x] = count;
    __syncwarp();
    for (int32_t h = LANES / 2; h > 0; h /= 2)
    {
        if (lane < h)
        {
            int32_t const other = threadIdx.x + h;
            count = dcg::topk_merge(listKeys[threadIdx.x], listIdx[threadIdx.x], listCount[threadIdx.x],
                listKeys[other], listIdx[other], listCount[other], k, keys, kept);
            for (int32_t s = 0; s < count; ++s)
            {
                listKeys[threadIdx.x][s] = keys[s];
                listIdx[threadIdx.x][s] = kept[s];
            }
            listCount[threadIdx.x] = count;
        }
        __syncwarp();
    }
    if (active && lane == 0)
    {
        int64_t const slot = (base + i) * k;
        dcg::topk_write(kept, count, k, i, indices + slot, valid + slot);
    }
}

template <typename T, int32_t MAX_K, int32_t LANES, int32_t THREADS>
cudaError_t launch(int32_t batch, int32_t numBoxes, int32_t k, float iouThreshold, float lowScore, T const* boxes,
    T const* scores, int32_t* indices, int32_t* valid, cudaStream_t stream)
{
    int32_t constexpr queriesPerBlock = THREADS / LANES;
    dim3 const grid((numBoxes + queriesPerBlock - 1) / queriesPerBlock, batch);
    dcgNeighborsKernel<T, MAX_K, LANES, THREADS>
        <<<grid, THREADS, 0, stream>>>(numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid);
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
    // The common k (10, DH-DETR's) keeps a short list and splits a query's candidates over a warp; a larger k
    // keeps a longer list (more shared memory per lane) over 8 lanes. LANES: tests/plugins/dcg_split_check.cpp.
    if (k <= 16)
    {
        return launch<T, 16, 32, 128>(
            batch, numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid, stream);
    }
    return launch<T, kDCG_MAX_K, 8, 64>(
        batch, numBoxes, k, iouThreshold, lowScore, boxes, scores, indices, valid, stream);
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
