// detrt plugins/openvino/detrt_ov_extension.cpp: the extension library's entry point for
// ov::Core::add_extension: the ops for OpenVINO IR, and their ONNX spelling (domain `detrt`) for read_model.
// detrt_openvino_version() says which OpenVINO the library was compiled against (an extension must be loaded
// by that OpenVINO: detrt checks it before add_extension).
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/core/version.hpp>
#include <openvino/frontend/onnx/extension/op.hpp>

#include "detrt_ov_ops.h"

#define DETRT_STR2(x) #x
#define DETRT_STR(x) DETRT_STR2(x)

extern "C" OPENVINO_EXTENSION_C_API const char* detrt_openvino_version() {
  return DETRT_STR(OPENVINO_VERSION_MAJOR) "." DETRT_STR(OPENVINO_VERSION_MINOR) "." DETRT_STR(OPENVINO_VERSION_PATCH);
}

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<detrt::ov_ops::MSDeformAttn>>(),
    std::make_shared<ov::OpExtension<detrt::ov_ops::DCGNeighbors>>(),
    std::make_shared<ov::frontend::onnx::OpExtension<detrt::ov_ops::MSDeformAttn>>("MSDeformAttn", "detrt"),
    std::make_shared<ov::frontend::onnx::OpExtension<detrt::ov_ops::DCGNeighbors>>("DCGNeighbors", "detrt"),
}));
