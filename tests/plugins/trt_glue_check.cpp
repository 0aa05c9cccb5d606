// Host-side checks of the TensorRT glue (plugins/tensorrt) against TensorRT's public headers, without
// libnvinfer or a GPU: tests/plugins/test_cuda_compile.py compiles this file with the glue and kernel objects
// and runs it. It drives the plugin interfaces exactly as TensorRT would (getCreators, createPlugin with
// fields, capability lookup, output types, format negotiation, configurePlugin, serialization round trip).
// Not covered here: getOutputShapes (needs TensorRT's IExprBuilder implementation) and enqueue (needs a GPU):
// benchmarks/gpu_validate.py runs those through real engines.
#include "NvInferRuntime.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace nvinfer1;

// The one libnvinfer symbol the plugin library uses (initLibDetrtPlugins): here no registry exists.
extern "C" IPluginRegistry* getPluginRegistry() noexcept
{
    return nullptr;
}

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" void setLoggerFinder(ILoggerFinder* finder);
extern "C" bool initLibDetrtPlugins(void* logger, char const* libNamespace);

namespace {

int gFailures = 0;

#define EXPECT(cond)                                                                                                   \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            std::printf("FAILED line %d: %s\n", __LINE__, #cond);                                                     \
            ++gFailures;                                                                                               \
        }                                                                                                              \
    } while (0)

class CapturingLogger : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity == Severity::kERROR)
        {
            last = msg;
            ++errors;
        }
    }
    std::string last;
    int errors{0};
};

class Finder : public ILoggerFinder
{
public:
    ILogger* findLogger() override
    {
        return &logger;
    }
    CapturingLogger logger;
};

IPluginCreatorV3One* creatorNamed(char const* name)
{
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    for (int32_t i = 0; i < n; ++i)
    {
        auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
        if (std::strcmp(c->getPluginName(), name) == 0)
        {
            return c;
        }
    }
    return nullptr;
}

IPluginV3* create(IPluginCreatorV3One* creator, std::vector<PluginField> const& fields)
{
    PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    return creator->createPlugin("node", &fc, TensorRTPhase::kBUILD);
}

DynamicPluginTensorDesc desc(DataType type, std::vector<int64_t> const& dims, TensorFormat format = TensorFormat::kLINEAR)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = format;
    d.desc.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
    {
        d.desc.dims.d[i] = dims[i];
    }
    d.min = d.max = d.opt = d.desc.dims;
    return d;
}

void checkRegistration()
{
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    EXPECT(n == 2 && creators != nullptr);
    for (int32_t i = 0; i < n; ++i)
    {
        EXPECT(std::strcmp(creators[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
        auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
        EXPECT(std::strcmp(c->getPluginVersion(), "1") == 0);
        EXPECT(std::strcmp(c->getPluginNamespace(), "detrt") == 0);
    }
    EXPECT(creatorNamed("MSDeformAttn") != nullptr);
    EXPECT(creatorNamed("DCGNeighbors") != nullptr);
    EXPECT(!initLibDetrtPlugins(nullptr, nullptr)); // no registry in this process: a clean false
}

void checkDcgAttributes(Finder& finder)
{
    IPluginCreatorV3One* creator = creatorNamed("DCGNeighbors");
    PluginFieldCollection const* names = creator->getFieldNames();
    EXPECT(names != nullptr && names->nbFields == 3);
    EXPECT(std::strcmp(names->fields[0].name, "k") == 0 && names->fields[0].type == PluginFieldType::kINT32);
    EXPECT(std::strcmp(names->fields[1].name, "iou_threshold") == 0
        && names->fields[1].type == PluginFieldType::kFLOAT32);
    EXPECT(std::strcmp(names->fields[2].name, "low_score") == 0 && names->fields[2].type == PluginFieldType::kFLOAT32);

    int32_t const k = 5;
    float const thr = 0.5F;
    float const low = 0.25F;
    IPluginV3* plugin = create(creator,
        {{"k", &k, PluginFieldType::kINT32, 1}, {"iou_threshold", &thr, PluginFieldType::kFLOAT32, 1},
            {"low_score", &low, PluginFieldType::kFLOAT32, 1}});
    EXPECT(plugin != nullptr);
    if (plugin == nullptr)
    {
        return;
    }
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    EXPECT(core != nullptr && build != nullptr && runtime != nullptr);
    EXPECT(std::strcmp(core->getPluginName(), "DCGNeighbors") == 0);
    EXPECT(std::strcmp(core->getPluginNamespace(), "detrt") == 0);

    // Serialization is the attribute list: same names, the parsed values, and it parses back.
    PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    EXPECT(saved != nullptr && saved->nbFields == 3);
    EXPECT(*static_cast<int32_t const*>(saved->fields[0].data) == 5);
    EXPECT(*static_cast<float const*>(saved->fields[1].data) == 0.5F);
    EXPECT(*static_cast<float const*>(saved->fields[2].data) == 0.25F);
    IPluginV3* restored = creator->createPlugin("node", saved, TensorRTPhase::kRUNTIME);
    EXPECT(restored != nullptr);
    delete restored;

    // Outputs: two int32 tensors (kBOOL is not allowed from getOutputDataTypes).
    EXPECT(build->getNbOutputs() == 2);
    DataType in[2]{DataType::kHALF, DataType::kHALF};
    DataType out[2]{};
    EXPECT(build->getOutputDataTypes(out, 2, in, 2) == 0 && out[0] == DataType::kINT32 && out[1] == DataType::kINT32);

    // Formats: boxes float/half linear, scores = boxes' type, outputs int32 linear.
    std::vector<DynamicPluginTensorDesc> io{desc(DataType::kHALF, {2, 100, 4}), desc(DataType::kHALF, {2, 100}),
        desc(DataType::kINT32, {2, 100, 5}), desc(DataType::kINT32, {2, 100, 5})};
    EXPECT(build->supportsFormatCombination(0, io.data(), 2, 2));
    EXPECT(build->supportsFormatCombination(1, io.data(), 2, 2));
    EXPECT(build->supportsFormatCombination(2, io.data(), 2, 2));
    EXPECT(build->supportsFormatCombination(3, io.data(), 2, 2));
    io[1].desc.type = DataType::kFLOAT;
    EXPECT(!build->supportsFormatCombination(1, io.data(), 2, 2));
    io[3].desc.type = DataType::kBOOL;
    EXPECT(!build->supportsFormatCombination(3, io.data(), 2, 2));
    io[0] = desc(DataType::kHALF, {2, 100, 4}, TensorFormat::kCHW32);
    EXPECT(!build->supportsFormatCombination(0, io.data(), 2, 2));

    // configurePlugin: consistent dims (with a -1 wildcard) pass, N disagreeing fails with a message.
    std::vector<DynamicPluginTensorDesc> ins{desc(DataType::kFLOAT, {-1, 100, 4}), desc(DataType::kFLOAT, {2, 100})};
    std::vector<DynamicPluginTensorDesc> outs{desc(DataType::kINT32, {2, 100, 5}), desc(DataType::kINT32, {2, 100, 5})};
    EXPECT(build->configurePlugin(ins.data(), 2, outs.data(), 2) == 0);
    ins[1] = desc(DataType::kFLOAT, {2, 99});
    finder.logger.errors = 0;
    EXPECT(build->configurePlugin(ins.data(), 2, outs.data(), 2) != 0);
    EXPECT(finder.logger.errors == 1 && finder.logger.last.find("scores has 99") != std::string::npos);

    IPluginV3* copy = plugin->clone();
    EXPECT(copy != nullptr);
    delete copy;
    delete plugin;
}

void checkDcgRejects(Finder& finder)
{
    IPluginCreatorV3One* creator = creatorNamed("DCGNeighbors");
    int32_t const zero = 0;
    int32_t const tooMany = 65;
    int32_t const pair[2]{10, 10};
    float const kAsFloat = 10.0F;
    int32_t const k = 10;
    struct Case
    {
        std::vector<PluginField> fields;
        char const* message;
    };
    std::vector<Case> const cases{
        {{{"kk", &k, PluginFieldType::kINT32, 1}}, "unknown attribute 'kk'"},
        {{{"k", &kAsFloat, PluginFieldType::kFLOAT32, 1}}, "'k' must be int32"},
        {{{"k", pair, PluginFieldType::kINT32, 2}}, "one scalar"},
        {{{"k", &zero, PluginFieldType::kINT32, 1}}, "k must be in [1, 64]"},
        {{{"k", &tooMany, PluginFieldType::kINT32, 1}}, "k must be in [1, 64]"},
    };
    for (Case const& c : cases)
    {
        finder.logger.errors = 0;
        IPluginV3* plugin = create(creator, c.fields);
        EXPECT(plugin == nullptr);
        EXPECT(finder.logger.errors == 1 && finder.logger.last.find(c.message) != std::string::npos);
        if (finder.logger.last.find(c.message) == std::string::npos)
        {
            std::printf("  message was: %s\n", finder.logger.last.c_str());
        }
        delete plugin;
    }
    // Omitted attributes take the op's defaults (docs/ops.md): the ONNX parser skips attributes a node lacks.
    IPluginV3* plugin = create(creator, {});
    EXPECT(plugin != nullptr);
    if (plugin != nullptr)
    {
        auto* runtime
            = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
        EXPECT(*static_cast<int32_t const*>(saved->fields[0].data) == 10);
        EXPECT(*static_cast<float const*>(saved->fields[1].data) == 0.4F);
        EXPECT(*static_cast<float const*>(saved->fields[2].data) == 0.1F);
        delete plugin;
    }
}

void checkMsDeformAttn(Finder& finder)
{
    IPluginCreatorV3One* creator = creatorNamed("MSDeformAttn");
    EXPECT(creator->getFieldNames()->nbFields == 0);
    int32_t const one = 1;
    finder.logger.errors = 0;
    EXPECT(create(creator, {{"im2col_step", &one, PluginFieldType::kINT32, 1}}) == nullptr);
    EXPECT(finder.logger.last.find("takes no attributes") != std::string::npos);

    IPluginV3* plugin = create(creator, {});
    EXPECT(plugin != nullptr);
    if (plugin == nullptr)
    {
        return;
    }
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    EXPECT(runtime->getFieldsToSerialize() != nullptr && runtime->getFieldsToSerialize()->nbFields == 0);
    EXPECT(build->getNbOutputs() == 1);
    DataType in[5]{DataType::kHALF, DataType::kINT32, DataType::kINT32, DataType::kFLOAT, DataType::kHALF};
    DataType out[1]{};
    EXPECT(build->getOutputDataTypes(out, 1, in, 5) == 0 && out[0] == DataType::kHALF);
    in[0] = DataType::kINT32;
    EXPECT(build->getOutputDataTypes(out, 1, in, 5) != 0);

    // [N, S, M, D], [L, 2], [L], [N, Lq, M, L, P, 2], [N, Lq, M, L, P] -> [N, Lq, M*D]
    std::vector<DynamicPluginTensorDesc> io{desc(DataType::kFLOAT, {2, 1360, 8, 32}), desc(DataType::kINT32, {4, 2}),
        desc(DataType::kINT32, {4}), desc(DataType::kFLOAT, {2, 300, 8, 4, 4, 2}),
        desc(DataType::kFLOAT, {2, 300, 8, 4, 4}), desc(DataType::kFLOAT, {2, 300, 256})};
    for (int32_t pos = 0; pos < 6; ++pos)
    {
        EXPECT(build->supportsFormatCombination(pos, io.data(), 5, 1));
    }
    io[3].desc.type = DataType::kHALF; // locations are float32 whatever value's dtype
    EXPECT(!build->supportsFormatCombination(3, io.data(), 5, 1));
    io[0].desc.type = DataType::kHALF;
    EXPECT(!build->supportsFormatCombination(3, io.data(), 5, 1));
    io[3].desc.type = DataType::kFLOAT; // a float16 engine: half value and weights, float32 locations
    io[4].desc.type = DataType::kHALF;
    io[5].desc.type = DataType::kHALF;
    for (int32_t pos = 0; pos < 6; ++pos)
    {
        EXPECT(build->supportsFormatCombination(pos, io.data(), 5, 1));
    }
    io[4].desc.type = DataType::kFLOAT; // weights follow value
    EXPECT(!build->supportsFormatCombination(4, io.data(), 5, 1));
    io[0].desc.type = DataType::kFLOAT;
    io[5].desc.type = DataType::kFLOAT;
    io[1].desc.type = DataType::kINT64; // shape tensors are int32 in the plugin form
    EXPECT(!build->supportsFormatCombination(1, io.data(), 5, 1));
    io[1].desc.type = DataType::kINT32;
    io[3].desc.type = DataType::kFLOAT;

    EXPECT(build->configurePlugin(io.data(), 5, io.data() + 5, 1) == 0);
    io[4] = desc(DataType::kFLOAT, {2, 300, 4, 4, 4}); // M = 4 vs value's 8
    finder.logger.errors = 0;
    EXPECT(build->configurePlugin(io.data(), 5, io.data() + 5, 1) != 0);
    EXPECT(finder.logger.last.find("M of value and attention_weights") != std::string::npos);
    EXPECT(build->configurePlugin(io.data(), 4, io.data() + 5, 1) != 0);
    delete plugin;
}

} // namespace

int main()
{
    Finder finder;
    setLoggerFinder(&finder);
    checkRegistration();
    checkDcgAttributes(finder);
    checkDcgRejects(finder);
    checkMsDeformAttn(finder);
    std::printf("%s: %d failure(s)\n", gFailures == 0 ? "OK" : "FAILED", gFailures);
    return gFailures == 0 ? 0 : 1;
}
