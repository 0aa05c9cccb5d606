// detrt plugins/tensorrt/msDeformAttnPlugin/msDeformAttnPlugin.cpp: shapes, formats and enqueue of MSDeformAttn.
// The arithmetic is detrt::gpu::msDeformAttn (plugins/cuda), itself plugins/common/msda_core.h.
#include "msDeformAttnPlugin.h"

#include "msDeformAttn.h"

using namespace nvinfer1;

namespace detrt::trt {
namespace {

enum Tensor : int32_t
{
    kVALUE = 0,              // [N, S, M, D]
    kSPATIAL_SHAPES = 1,     // [L, 2] int32
    kLEVEL_START_INDEX = 2,  // [L] int32
    kSAMPLING_LOCATIONS = 3, // [N, Lq, M, L, P, 2]
    kATTENTION_WEIGHTS = 4,  // [N, Lq, M, L, P]
    kOUTPUT = 5              // [N, Lq, M * D]
};

//! Two dimensions that must agree, checked where both are known (-1 is a build-time wildcard).
void checkSame(int64_t a, int64_t b, char const* what)
{
    DETRT_CHECK(a < 0 || b < 0 || a == b, "MSDeformAttn: ", what, " disagree (", a, " vs ", b, ")");
}

} // namespace

void MsDeformAttnOp::outputDataTypes(DataType const* in, DataType* out)
{
    DETRT_CHECK(in[kVALUE] == DataType::kFLOAT || in[kVALUE] == DataType::kHALF,
        "MSDeformAttn: value must be float32 or float16");
    out[0] = in[kVALUE];
}

void MsDeformAttnOp::outputShapes(
    Params const& /* params */, DimsExprs const* in, DimsExprs* out, IExprBuilder& exprBuilder)
{
    DimsExprs const& value = in[kVALUE];
    DETRT_CHECK(value.nbDims == 4 && in[kSAMPLING_LOCATIONS].nbDims == 6,
        "MSDeformAttn: value must be rank 4 and sampling_locations rank 6");
    out[0].nbDims = 3;
    out[0].d[0] = value.d[0];
    out[0].d[1] = in[kSAMPLING_LOCATIONS].d[1];
    out[0].d[2] = exprBuilder.operation(DimensionOperation::kPROD, *value.d[2], *value.d[3]);
}

bool MsDeformAttnOp::supportsFormat(int32_t pos, DynamicPluginTensorDesc const* inOut)
{
    PluginTensorDesc const& desc = inOut[pos].desc;
    switch (pos)
    {
    case kVALUE: return isLinearOf(desc, {DataType::kFLOAT, DataType::kHALF});
    case kSPATIAL_SHAPES:
    case kLEVEL_START_INDEX: return isLinearOf(desc, {DataType::kINT32});
    // float32 in float16 engines too: a half location on a 100-pixel map is off by up to 0.03 pixel.
    case kSAMPLING_LOCATIONS: return isLinearOf(desc, {DataType::kFLOAT});
    default: return isLinearOf(desc, {inOut[kVALUE].desc.type}); // weights, output: value's dtype
    }
}

void MsDeformAttnOp::checkInputs(Dims const* in)
{
    Dims const& value = in[kVALUE];
    Dims const& shapes = in[kSPATIAL_SHAPES];
    Dims const& starts = in[kLEVEL_START_INDEX];
    Dims const& loc = in[kSAMPLING_LOCATIONS];
    Dims const& attn = in[kATTENTION_WEIGHTS];
    DETRT_CHECK(value.nbDims == 4, "MSDeformAttn: value must be [N, S, M, D], got rank ", value.nbDims);
    DETRT_CHECK(shapes.nbDims == 2, "MSDeformAttn: spatial_shapes must be [L, 2], got rank ", shapes.nbDims);
    DETRT_CHECK(starts.nbDims == 1, "MSDeformAttn: level_start_index must be [L], got rank ", starts.nbDims);
    DETRT_CHECK(loc.nbDims == 6, "MSDeformAttn: sampling_locations must be [N, Lq, M, L, P, 2], got rank ", loc.nbDims);
    DETRT_CHECK(attn.nbDims == 5, "MSDeformAttn: attention_weights must be [N, Lq, M, L, P], got rank ", attn.nbDims);
    checkSame(shapes.d[1], 2, "spatial_shapes' last dimension and 2");
    checkSame(loc.d[5], 2, "sampling_locations' last dimension and 2");
    checkSame(value.d[0], loc.d[0], "N of value and sampling_locations");
    checkSame(value.d[0], attn.d[0], "N of value and attention_weights");
    checkSame(value.d[2], loc.d[2], "M of value and sampling_locations");
    checkSame(value.d[2], attn.d[2], "M of value and attention_weights");
    checkSame(shapes.d[0], starts.d[0], "L of spatial_shapes and level_start_index");
    checkSame(shapes.d[0], loc.d[3], "L of spatial_shapes and sampling_locations");
    checkSame(shapes.d[0], attn.d[3], "L of spatial_shapes and attention_weights");
    checkSame(loc.d[1], attn.d[1], "Lq of sampling_locations and attention_weights");
    checkSame(loc.d[4], attn.d[4], "P of sampling_locations and attention_weights");
}

void MsDeformAttnOp::enqueue(Params const& /* params */, PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* const* outputs, cudaStream_t stream)
{
    Dims const& value = inputDesc[kVALUE].dims;
    Dims const& loc = inputDesc[kSAMPLING_LOCATIONS].dims;
    msda::Dims const dims{toInt32(value.d[0], "N"), toInt32(value.d[1], "S"), toInt32(value.d[2], "M"),
        toInt32(value.d[3], "D"), toInt32(loc.d[3], "L"), toInt32(loc.d[4], "P"), toInt32(loc.d[1], "Lq")};
    auto const* shapes = static_cast<int32_t const*>(inputs[kSPATIAL_SHAPES]);
    auto const* starts = static_cast<int32_t const*>(inputs[kLEVEL_START_INDEX]);
    if (inputDesc[kVALUE].type == DataType::kHALF)
    {
        DETRT_CHECK_CUDA(gpu::msDeformAttn(dims, static_cast<__half const*>(inputs[kVALUE]), shapes, starts,
            static_cast<float const*>(inputs[kSAMPLING_LOCATIONS]),
            static_cast<__half const*>(inputs[kATTENTION_WEIGHTS]), static_cast<__half*>(outputs[0]), stream));
        return;
    }
    DETRT_CHECK(inputDesc[kVALUE].type == DataType::kFLOAT, "MSDeformAttn: value must be float32 or float16");
    DETRT_CHECK_CUDA(gpu::msDeformAttn(dims, static_cast<float const*>(inputs[kVALUE]), shapes, starts,
        static_cast<float const*>(inputs[kSAMPLING_LOCATIONS]), static_cast<float const*>(inputs[kATTENTION_WEIGHTS]),
        static_cast<float*>(outputs[0]), stream));
}

} // namespace detrt::trt
