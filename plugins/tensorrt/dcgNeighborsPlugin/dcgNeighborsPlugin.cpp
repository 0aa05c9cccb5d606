// detrt plugins/tensorrt/dcgNeighborsPlugin/dcgNeighborsPlugin.cpp: shapes, formats and enqueue of DCGNeighbors.
// The arithmetic is detrt::gpu::dcgNeighbors (plugins/cuda), itself plugins/common/dcg_core.h.
#include "dcgNeighborsPlugin.h"

#include "dcgNeighbors.h"

#include <cmath>

using namespace nvinfer1;

namespace detrt::trt {
namespace {

enum Tensor : int32_t
{
    kBOXES = 0,   // [B, N, 4] cxcywh
    kSCORES = 1,  // [B, N]
    kINDICES = 2, // output 0: [B, N, k] int32
    kVALID = 3    // output 1: [B, N, k] int32 0/1 (getOutputDataTypes may not return kBOOL)
};

} // namespace

void DcgNeighborsParams::validate() const
{
    DETRT_CHECK(k >= 1 && k <= gpu::kDCG_MAX_K, "DCGNeighbors: k must be in [1, ", gpu::kDCG_MAX_K, "], got ", k);
    DETRT_CHECK(std::isfinite(iouThreshold), "DCGNeighbors: iou_threshold must be finite, got ", iouThreshold);
    DETRT_CHECK(!std::isnan(lowScore), "DCGNeighbors: low_score must not be NaN");
}

void DcgNeighborsOp::outputDataTypes(DataType const* /* in */, DataType* out)
{
    out[0] = DataType::kINT32;
    out[1] = DataType::kINT32;
}

void DcgNeighborsOp::outputShapes(Params const& params, DimsExprs const* in, DimsExprs* out, IExprBuilder& exprBuilder)
{
    DETRT_CHECK(in[kBOXES].nbDims == 3, "DCGNeighbors: boxes must be [B, N, 4]");
    for (int32_t o = 0; o < kNB_OUTPUTS; ++o) // [B, N, k] twice
    {
        out[o].nbDims = 3;
        out[o].d[0] = in[kBOXES].d[0];
        out[o].d[1] = in[kBOXES].d[1];
        out[o].d[2] = exprBuilder.constant(params.k);
    }
}

bool DcgNeighborsOp::supportsFormat(int32_t pos, DynamicPluginTensorDesc const* inOut)
{
    PluginTensorDesc const& desc = inOut[pos].desc;
    switch (pos)
    {
    case kBOXES: return isLinearOf(desc, {DataType::kFLOAT, DataType::kHALF});
    case kSCORES: return isLinearOf(desc, {inOut[kBOXES].desc.type});
    default: return isLinearOf(desc, {DataType::kINT32}); // indices, valid
    }
}

void DcgNeighborsOp::checkInputs(Dims const* in)
{
    Dims const& boxes = in[kBOXES];
    Dims const& scores = in[kSCORES];
    DETRT_CHECK(boxes.nbDims == 3, "DCGNeighbors: boxes must be [B, N, 4], got rank ", boxes.nbDims);
    DETRT_CHECK(scores.nbDims == 2, "DCGNeighbors: scores must be [B, N], got rank ", scores.nbDims);
    DETRT_CHECK(boxes.d[2] < 0 || boxes.d[2] == 4, "DCGNeighbors: boxes' last dimension must be 4, got ", boxes.d[2]);
    for (int32_t i = 0; i < 2; ++i)
    {
        DETRT_CHECK(boxes.d[i] < 0 || scores.d[i] < 0 || boxes.d[i] == scores.d[i], "DCGNeighbors: boxes ",
            i == 0 ? "B" : "N", " = ", boxes.d[i], " but scores has ", scores.d[i]);
    }
}

void DcgNeighborsOp::enqueue(Params const& params, PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* const* outputs, cudaStream_t stream)
{
    int32_t const batch = toInt32(inputDesc[kBOXES].dims.d[0], "B");
    int32_t const numBoxes = toInt32(inputDesc[kBOXES].dims.d[1], "N");
    auto* indices = static_cast<int32_t*>(outputs[0]);
    auto* valid = static_cast<int32_t*>(outputs[1]);
    if (inputDesc[kBOXES].type == DataType::kHALF)
    {
        DETRT_CHECK_CUDA(gpu::dcgNeighbors(batch, numBoxes, params.k, params.iouThreshold, params.lowScore,
            static_cast<__half const*>(inputs[kBOXES]), static_cast<__half const*>(inputs[kSCORES]), indices, valid,
            stream));
        return;
    }
    DETRT_CHECK(inputDesc[kBOXES].type == DataType::kFLOAT, "DCGNeighbors: boxes must be float32 or float16");
    DETRT_CHECK_CUDA(gpu::dcgNeighbors(batch, numBoxes, params.k, params.iouThreshold, params.lowScore,
        static_cast<float const*>(inputs[kBOXES]), static_cast<float const*>(inputs[kSCORES]), indices, valid,
        stream));
}

} // namespace detrt::trt
