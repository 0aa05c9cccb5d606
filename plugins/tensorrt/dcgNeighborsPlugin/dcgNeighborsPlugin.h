// detrt plugins/tensorrt/dcgNeighborsPlugin/dcgNeighborsPlugin.h: TensorRT IPluginV3 `DCGNeighbors`
// (namespace detrt, version 1). Inputs, attributes and dtypes: README.md beside this file.
#ifndef DETRT_TENSORRT_DCG_NEIGHBORS_PLUGIN_H
#define DETRT_TENSORRT_DCG_NEIGHBORS_PLUGIN_H

#include "detrtPlugin.h"

#include <array>

namespace detrt::trt {

//! The attributes, with SPEC.md's defaults (used where an ONNX node omits one).
struct DcgNeighborsParams
{
    int32_t k{10};
    float iouThreshold{0.4F};
    float lowScore{0.1F};

    //! The one attribute table: field names, parsing and serialization all come from it.
    static std::array<Attribute<DcgNeighborsParams>, 3> const& attributes()
    {
        static std::array<Attribute<DcgNeighborsParams>, 3> const kATTRIBUTES{{
            {"k", &DcgNeighborsParams::k},
            {"iou_threshold", &DcgNeighborsParams::iouThreshold},
            {"low_score", &DcgNeighborsParams::lowScore},
        }};
        return kATTRIBUTES;
    }

    void validate() const;
};

struct DcgNeighborsTraits
{
    using Params = DcgNeighborsParams;
    static constexpr char const* kNAME{"DCGNeighbors"};
    static constexpr char const* kVERSION{"1"};
};

class DcgNeighborsPlugin : public PluginV3<DcgNeighborsPlugin, DcgNeighborsTraits>
{
public:
    using Traits = DcgNeighborsTraits;
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

using DcgNeighborsPluginCreator = PluginCreatorV3<DcgNeighborsPlugin>;

} // namespace detrt::trt

#endif // DETRT_TENSORRT_DCG_NEIGHBORS_PLUGIN_H
