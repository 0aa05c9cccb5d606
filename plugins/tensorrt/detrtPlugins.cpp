// detrt plugins/tensorrt/detrtPlugins.cpp: the one registration file of libdetrt_plugins.so.
//
// Entry points (extern "C"; the only symbols the library exports, see detrtPlugins.map):
//   getCreators(int32_t& n)     the creators of MSDeformAttn and DCGNeighbors (namespace "detrt", version "1").
//                               TensorRT's plugin-library entry point: IPluginRegistry::loadLibrary,
//                               trtexec --dynamicPlugins (and --setPluginsToSerialize), Python
//                               `trt.get_plugin_registry().load_library(path)`.
//   setLoggerFinder(finder)     TensorRT hands over its logger; errors are logged through it.
//   initLibDetrtPlugins(logger, libNamespace)
//                               registers the same creators with the global getPluginRegistry(), for hosts
//                               that load the library without loadLibrary: Python ctypes
//                               (`ctypes.CDLL(path).initLibDetrtPlugins(None, None)`) or a C++ program linking
//                               it. Both arguments are ignored (the namespace is always "detrt"); it may be
//                               called more than once. Returns true when both creators are registered.
// There is deliberately no load-time (static initializer) registration: a library that registers itself
// in dlopen makes loadLibrary's own registration fail ("creator ... exists already"), which breaks
// --dynamicPlugins and engines serialized with their plugin library. trtexec --staticPlugins, which only
// dlopens, therefore does not register these plugins; use --dynamicPlugins.
#include "dcgNeighborsPlugin.h"
#include "detrtPlugin.h"
#include "msDeformAttnPlugin.h"

#include <cstdio>
#include <iterator>
#include <mutex>

// Exported whatever -fvisibility says (TensorRT's own TENSORRTAPI is empty outside its build).
#define DETRT_EXPORT __attribute__((visibility("default")))

using namespace nvinfer1;

namespace detrt::trt {
namespace {

std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder{nullptr};

MsDeformAttnPluginCreator gMsDeformAttnCreator;
DcgNeighborsPluginCreator gDcgNeighborsCreator;
IPluginCreatorInterface* const kCREATORS[] = {&gMsDeformAttnCreator, &gDcgNeighborsCreator};

} // namespace

void reportError(char const* message) noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    if (logger != nullptr)
    {
        logger->log(ILogger::Severity::kERROR, message);
    }
    else
    {
        std::fprintf(stderr, "[detrt plugins] error: %s\n", message);
    }
}

} // namespace detrt::trt

extern "C" DETRT_EXPORT IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    nbCreators = static_cast<int32_t>(std::size(detrt::trt::kCREATORS));
    return detrt::trt::kCREATORS;
}

extern "C" DETRT_EXPORT void setLoggerFinder(ILoggerFinder* finder)
{
    std::lock_guard<std::mutex> lock(detrt::trt::gLoggerMutex);
    detrt::trt::gLoggerFinder = finder;
}

extern "C" DETRT_EXPORT bool initLibDetrtPlugins(void* /* logger */, char const* /* libNamespace */)
{
    IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr)
    {
        return false;
    }
    bool ok = true;
    for (IPluginCreatorInterface* creator : detrt::trt::kCREATORS)
    {
        auto* v3 = static_cast<IPluginCreatorV3One*>(creator);
        // Already registered (a second call, or loadLibrary earlier) counts as success.
        bool const present = registry->getCreator(v3->getPluginName(), v3->getPluginVersion(),
                                 v3->getPluginNamespace()) != nullptr;
        ok = (present || registry->registerCreator(*creator, detrt::trt::kPLUGIN_NAMESPACE)) && ok;
    }
    return ok;
}
