// detrt plugins/cuda/msDeformAttn.cu: the MSDA kernel. The taps and their weights come from
// msda::point_corners in plugins/common/msda_core.h, the same function the CPU kernel calls; this file
// only maps threads to outputs and loads values (two channels per half2 load where possible).
#include "msDeformAttn.h"

#include "io_types.h"
#include "msda_core.h"

#include <climits>
#include <cstdint>
#include <type_traits>

namespace detrt::gpu {
namespace {

constexpr int32_t kTHREADS = 256;

// VEC consecutive channels of one value row as float32.
template <typename T, int32_t VEC>
__device__ __forceinline__ void loadChannels(T const* p, float (&v)[VEC])
{
    if constexpr (VEC == 2)
    {
        IoTraits<T>::load2(p, v[0], v[1]);
    }
    else
    {
        v[0] = IoTraits<T>::load(p);
    }
}

// True if level l's rows [start, start + H*W) lie inside [0, S): only such levels are sampled.
__device__ __forceinline__ bool levelInside(int32_t const* spatialShapes, int32_t const* levelStartIndex, int32_t l,
    int32_t spatialSize)
{
    int64_t const h = spatialShapes[2 * l];
    int64_t const w = spatialShapes[2 * l + 1];
    int64_t const start = levelStartIndex[l];
    return h > 0 && w > 0 && start >= 0 && start + h * w <= spatialSize;
}

// One thread per (n, q, m, group of VEC channels); consecutive threads take consecutive channel groups of
// one (n, q, m), so location/weight reads are shared within a warp and value reads are coalesced.
// I is the index type of every tensor offset: int32_t when all of them fit (fast division and address math),
// else int64_t. The four taps of a point sit in fixed slots read with constant indices, so they stay in registers.
template <typename T, typename TL, int32_t VEC, typename I>
__global__ void __launch_bounds__(kTHREADS) msDeformAttnKernel(msda::Dims const dims, T const* __restrict__ value,
    int32_t const* __restrict__ spatialShapes, int32_t const* __restrict__ levelStartIndex,
    TL const* __restrict__ samplingLocations, T const* __restrict__ attentionWeights, T* __restrict__ output,
    I const total)
{
    I const groups = dims.D / VEC;
    I const rowStride = static_cast<I>(dims.M) * dims.D;
    for (I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
         t += static_cast<I>(gridDim.x) * blockDim.x)
    {
        int32_t const d = static_cast<int32_t>(t % groups) * VEC;
        I rest = t / groups;
        int32_t const m = static_cast<int32_t>(rest % dims.M);
        rest /= dims.M;
        int32_t const q = static_cast<int32_t>(rest % dims.Lq);
        int32_t const n = static_cast<int32_t>(rest / dims.Lq);

        T const* valueNm = value + (static_cast<I>(n) * dims.S * dims.M + m) * dims.D + d;
        float acc[VEC] = {};
        for (int32_t l = 0; l < dims.L; ++l)
        {
            if (!levelInside(spatialShapes, levelStartIndex, l, dims.S))
            {
                continue;
            }
            for (int32_t p = 0; p < dims.P; ++p)
            {
                msda::Corners c;
                msda::point_corners<I>(samplingLocations, attentionWeights, spatialShapes, levelStartIndex, dims, n,
                    q, m, l, p, c);
#pragma unroll
                for (int32_t k = 0; k < 4; ++k)
                {
                    if (c.mask & (1U << k))
                    {
                        float v[VEC];
                        loadChannels<T, VEC>(valueNm + c.row[k] * rowStride, v);
#pragma unroll
                        for (int32_t i = 0; i < VEC; ++i)
                        {
                            acc[i] += c.weight[k] * v[i];
                        }
                    }
                }
            }
        }
        T* out = output + ((static_cast<I>(n) * dims.Lq + q) * dims.M + m) * dims.D + d;
#pragma unroll
        for (int32_t i = 0; i < VEC; ++i)
        {
            IoTraits<T>::store(out + i, acc[i]);
        }
    }
}

template <typename T, typename TL, int32_t VEC, typename I>
cudaError_t launch(msda::Dims const& dims, T const* value, int32_t const* spatialShapes,
    int32_t const* levelStartIndex, TL const* samplingLocations, T const* attentionWeights, T* output,
    cudaStream_t stream)
{
    int64_t const total = static_cast<int64_t>(dims.N) * dims.Lq * dims.M * (dims.D / VEC); // > 0 (dispatch)
    int64_t const blocks = (total + kTHREADS - 1) / kTHREADS;
    // The grid-stride loop covers any total; cap the grid at what every architecture accepts.
    unsigned int const grid = static_cast<unsigned int>(blocks < INT_MAX ? blocks : INT_MAX);
    msDeformAttnKernel<T, TL, VEC, I><<<grid, kTHREADS, 0, stream>>>(dims, value, spatialShapes, levelStartIndex,
        samplingLocations, attentionWeights, output, static_cast<I>(total));
    return cudaGetLastError();
}

// 32-bit offsets where every tensor has at most 2^30 elements: then no offset, and no grid-stride index (below
// total + grid * threads <= 2 * total + kTHREADS), can pass INT32_MAX.
bool fitsInt32(msda::Dims const& dims)
{
    int64_t constexpr kLIMIT = int64_t{1} << 30;
    int64_t const rows = static_cast<int64_t>(dims.N) * dims.Lq * dims.M;
    return static_cast<int64_t>(dims.N) * dims.S * dims.M * dims.D <= kLIMIT && rows * dims.D <= kLIMIT
        && rows * dims.L * dims.P * 2 <= kLIMIT;
}

template <typename T, typename TL, int32_t VEC>
cudaError_t launchIndexed(msda::Dims const& dims, T const* value, int32_t const* spatialShapes,
    int32_t const* levelStartIndex, TL const* samplingLocations, T const* attentionWeights, T* output,
    cudaStream_t stream)
{
    if (fitsInt32(dims))
    {
        return launch<T, TL, VEC, int32_t>(
            dims, value, spatialShapes, levelStartIndex, samplingLocations, attentionWeights, output, stream);
    }
    return launch<T, TL, VEC, int64_t>(
        dims, value, spatialShapes, levelStartIndex, samplingLocations, attentionWeights, output, stream);
}

template <typename T, typename TL>
cudaError_t dispatch(msda::Dims const& dims, T const* value, int32_t const* spatialShapes,
    int32_t const* levelStartIndex, TL const* samplingLocations, T const* attentionWeights, T* output,
    cudaStream_t stream)
{
    if (dims.N < 0 || dims.S < 0 || dims.M < 0 || dims.D < 0 || dims.L < 0 || dims.P < 0 || dims.Lq < 0)
    {
        return cudaErrorInvalidValue;
    }
    if (static_cast<int64_t>(dims.N) * dims.Lq * dims.M * dims.D == 0)
    {
        return cudaSuccess; // no output element: nothing to launch
    }
    if (value == nullptr || spatialShapes == nullptr || levelStartIndex == nullptr || samplingLocations == nullptr
        || attentionWeights == nullptr || output == nullptr)
    {
        return cudaErrorInvalidValue;
    }
    if constexpr (std::is_same_v<T, __half>)
    {
        // half2 loads need every (row, even channel) address 4-byte aligned: even D and an aligned base.
        if (dims.D % 2 == 0 && reinterpret_cast<uintptr_t>(value) % 4 == 0)
        {
            return launchIndexed<T, TL, 2>(
                dims, value, spatialShapes, levelStartIndex, samplingLocations, attentionWeights, output, stream);
        }
    }
    return launchIndexed<T, TL, 1>(
        dims, value, spatialShapes, levelStartIndex, samplingLocations, attentionWeights, output, stream);
}

} // namespace

cudaError_t msDeformAttn(msda::Dims const& dims, float const* value, int32_t const* spatialShapes,
    int32_t const* levelStartIndex, float const* samplingLocations, float const* attentionWeights, float* output,
    cudaStream_t stream) noexcept
{
    return dispatch(dims, value, spatialShapes, levelStartIndex, samplingLocations, attentionWeights, output, stream);
}

cudaError_t msDeformAttn(msda::Dims const& dims, __half const* value, int32_t const* spatialShapes,
    int32_t const* levelStartIndex, float const* samplingLocations, __half const* attentionWeights, __half* output,
    cudaStream_t stream) noexcept
{
    return dispatch(dims, value, spatialShapes, levelStartIndex, samplingLocations, attentionWeights, output, stream);
}

} // namespace detrt::gpu
