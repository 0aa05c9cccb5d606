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

struct MsDeformAttnTraits
{
    using Params = MsDeformAttnParams;
    static constexpr char const* kNAME{"MSDeformAttn"};
    static constexpr char const* kVERSION{"1"};
};

class MsDeformAttnPlugin : public PluginV3<MsDeformAttnPlugin, MsDeformAttnTraits>
{
public:
    using Traits = MsDeformAttnTraits;
    using PluginV3::PluginV3;

    //! Throws unless the input dims (-1: unknown at build time) fit the op; run by configurePlugin and onShapeChange.
    static void checkInputs(nvinfer1::Dims const* in, int32_t nbInputs, int32_t nbOutputs);

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
};

using MsDeformAttnPluginCreator = PluginCreatorV3<MsDeformAttnPlugin>;

} // namespace detrt::trt

#endif // DETRT_TENSORRT_MS_DEFORM_ATTN_PLUGIN_H
