// detrt plugins/tensorrt/msDeformAttnPlugin/msDeformAttnPlugin.h: TensorRT IPluginV3 `MSDeformAttn`
// (namespace detrt, version 1). Inputs, shapes and dtypes: README.md beside this file.
#ifndef DETRT_TENSORRT_MS_DEFORM_ATTN_PLUGIN_H
#define DETRT_TENSORRT_MS_DEFORM_ATTN_PLUGIN_H

#include "detrtPlugin.h"

#include <array>

namespace detrt::trt {

//! MSDeformAttn has no attributes: its whole configuration is in its input shapes.
struct MsDeformAttnParams
{
    static std::array<Attribute<MsDeformAttnParams>, 0> const& attributes()
    {
        static std::array<Attribute<MsDeformAttnParams>, 0> const kATTRIBUTES{};
        return kATTRIBUTES;
    }

    void validate() const {}
};

//! The op behind Plugin<MsDeformAttnOp> (see Plugin's comment for the contract of each function).
struct MsDeformAttnOp
{
    using Params = MsDeformAttnParams;
    static constexpr char const* kNAME{"MSDeformAttn"};
    static constexpr char const* kVERSION{"1"};
    static constexpr int32_t kNB_INPUTS{5};
    static constexpr int32_t kNB_OUTPUTS{1};

    static void outputDataTypes(nvinfer1::DataType const* in, nvinfer1::DataType* out);
    static void outputShapes(Params const& params, nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out,
        nvinfer1::IExprBuilder& exprBuilder);
    static bool supportsFormat(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut);
    static void checkInputs(nvinfer1::Dims const* in);
    static void enqueue(Params const& params, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* const* outputs, cudaStream_t stream);
};

using MsDeformAttnPlugin = Plugin<MsDeformAttnOp>;
using MsDeformAttnPluginCreator = PluginCreator<MsDeformAttnOp>;

} // namespace detrt::trt

#endif // DETRT_TENSORRT_MS_DEFORM_ATTN_PLUGIN_H
