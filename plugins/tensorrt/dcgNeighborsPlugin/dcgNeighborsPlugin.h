// detrt plugins/tensorrt/dcgNeighborsPlugin/dcgNeighborsPlugin.h: TensorRT IPluginV3 `DCGNeighbors`
// (namespace detrt, version 1). Inputs, attributes and dtypes: README.md beside this file.
#ifndef DETRT_TENSORRT_DCG_NEIGHBORS_PLUGIN_H
#define DETRT_TENSORRT_DCG_NEIGHBORS_PLUGIN_H

#include "detrtPlugin.h"

#include <array>

namespace detrt::trt {

//! The attributes, with the op's defaults from docs/ops.md (used where an ONNX node omits one).
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

//! The op behind Plugin<DcgNeighborsOp> (see Plugin's comment for the contract of each function).
struct DcgNeighborsOp
{
    using Params = DcgNeighborsParams;
    static constexpr char const* kNAME{"DCGNeighbors"};
    static constexpr char const* kVERSION{"1"};
    static constexpr int32_t kNB_INPUTS{2};
    static constexpr int32_t kNB_OUTPUTS{2};

    static void outputDataTypes(nvinfer1::DataType const* in, nvinfer1::DataType* out);
    static void outputShapes(Params const& params, nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out,
        nvinfer1::IExprBuilder& exprBuilder);
    static bool supportsFormat(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut);
    static void checkInputs(nvinfer1::Dims const* in);
    static void enqueue(Params const& params, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* const* outputs, cudaStream_t stream);
};

using DcgNeighborsPlugin = Plugin<DcgNeighborsOp>;
using DcgNeighborsPluginCreator = PluginCreator<DcgNeighborsOp>;

} // namespace detrt::trt

#endif // DETRT_TENSORRT_DCG_NEIGHBORS_PLUGIN_H
