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
    kVALID = 3,   // output 1: [B, N, k] int32 (TensorRT plugins cannot output bool)
    kNB_INPUTS = 2,
    kNB_OUTPUTS = 2
};

} // namespace

void DcgNeighborsPlugin::checkInputs(Dims const* in, int32_t nbInputs, int32_t nbOutputs)
{
    DETRT_CHECK(in != nullptr && nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS,
        "DCGNeighbors takes 2 inputs and 2 outputs, got ", nbInputs, " and ", nbOutputs);
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

void DcgNeighborsParams::validate() const
{
    DETRT_CHECK(k >= 1 && k <= gpu::kDCG_MAX_K, "DCGNeighbors: k must be in [1, ", gpu::kDCG_MAX_K, "], got ", k);
    DETRT_CHECK(std::isfinite(iouThreshold), "DCGNeighbors: iou_threshold must be finite, got ", iouThreshold);
    DETRT_CHECK(!std::isnan(lowScore), "DCGNeighbors: low_score must not be NaN");
}

int32_t DcgNeighborsPlugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t DcgNeighborsPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        DETRT_CHECK(outputTypes != nullptr && inputTypes != nullptr && nbInputs == kNB_INPUTS
                && nbOutputs == kNB_OUTPUTS,
            "DCGNeighbors takes 2 inputs and 2 outputs");
        // getOutputDataTypes may not return kBOOL (NvInferRuntime.h), so the mask is int32 0/1.
        outputTypes[0] = DataType::kINT32;
        outputTypes[1] = DataType::kINT32;
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

int32_t DcgNeighborsPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
    DimsExprs const* /* shapeInputs */, int32_t /* nbShapeInputs */, DimsExprs* outputs, int32_t nbOutputs,
    IExprBuilder& exprBuilder) noexcept
{
    try
    {
        DETRT_CHECK(inputs != nullptr && outputs != nullptr && nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS,
            "DCGNeighbors takes 2 inputs and 2 outputs");
        DETRT_CHECK(inputs[kBOXES].nbDims == 3, "DCGNeighbors: boxes must be [B, N, 4]");
        // [B, N, k] twice
        for (int32_t o = 0; o < kNB_OUTPUTS; ++o)
        {
            outputs[o].nbDims = 3;
            outputs[o].d[0] = inputs[kBOXES].d[0];
            outputs[o].d[1] = inputs[kBOXES].d[1];
            outputs[o].d[2] = exprBuilder.constant(mParams.k);
        }
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

bool DcgNeighborsPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        DETRT_CHECK(inOut != nullptr && nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS && pos >= 0 && pos < 4,
            "DCGNeighbors takes 2 inputs and 2 outputs");
        PluginTensorDesc const& desc = inOut[pos].desc;
        switch (pos)
        {
        case kBOXES: return isLinearOf(desc, {DataType::kFLOAT, DataType::kHALF});
        case kSCORES: return isLinearOf(desc, {inOut[kBOXES].desc.type});
        default: return isLinearOf(desc, {DataType::kINT32}); // indices, valid
        }
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return false;
}

int32_t DcgNeighborsPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /* outputDesc */,
    void const* const* inputs, void* const* outputs, void* /* workspace */, cudaStream_t stream) noexcept
{
    try
    {
        DETRT_CHECK(inputDesc != nullptr && inputs != nullptr && outputs != nullptr, "DCGNeighbors: null tensors");
        Dims const& boxes = inputDesc[kBOXES].dims;
        int32_t const batch = toInt32(boxes.d[0], "B");
        int32_t const numBoxes = toInt32(boxes.d[1], "N");
        auto* indices = static_cast<int32_t*>(outputs[0]);
        auto* valid = static_cast<int32_t*>(outputs[1]);
        if (inputDesc[kBOXES].type == DataType::kHALF)
        {
            DETRT_CHECK_CUDA(gpu::dcgNeighbors(batch, numBoxes, mParams.k, mParams.iouThreshold, mParams.lowScore,
                static_cast<__half const*>(inputs[kBOXES]), static_cast<__half const*>(inputs[kSCORES]), indices,
                valid, stream));
        }
        else
        {
            DETRT_CHECK(inputDesc[kBOXES].type == DataType::kFLOAT, "DCGNeighbors: boxes must be float32 or float16");
            DETRT_CHECK_CUDA(gpu::dcgNeighbors(batch, numBoxes, mParams.k, mParams.iouThreshold, mParams.lowScore,
                static_cast<float const*>(inputs[kBOXES]), static_cast<float const*>(inputs[kSCORES]), indices,
                valid, stream));
        }
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

} // namespace detrt::trt
