// detrt plugins/tensorrt/detrtPlugin.h: what the two IPluginV3 plugins share, written once.
//
//   kPLUGIN_NAMESPACE              "detrt", the namespace every creator and plugin reports.
//   reportError(message)           logs through the ILogger TensorRT hands over in setLoggerFinder
//                                  (detrtPlugins.cpp), stderr before that.
//   Attribute<Params>, AttributeTable<Params>
//                                  a plugin's attributes declared once as {name, &Params::member};
//                                  the creator's field list, createPlugin's parsing (unknown names,
//                                  wrong types and lengths rejected) and getFieldsToSerialize all
//                                  derive from that one table.
//   Plugin<Op>                     IPluginV3 + OneCore/OneBuild/OneRuntime: every TensorRT method and its
//                                  error boundary. Op (one struct per plugin folder) supplies only static
//                                  functions: output types and shapes, formats, the shape check, enqueue.
//   PluginCreator<Op>              its IPluginCreatorV3One.
//
// Errors: every noexcept method of TensorRT's interfaces runs its body in guarded(), which catches
// std::exception (detrt::Error from DETRT_CHECK / DETRT_CHECK_CUDA in plugins/common/check.h), reports it and
// returns a failure status: nothing throws through TensorRT, nothing aborts.
#ifndef DETRT_TENSORRT_DETRT_PLUGIN_H
#define DETRT_TENSORRT_DETRT_PLUGIN_H

#include "NvInferRuntime.h"

#include "check.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace detrt::trt {

inline constexpr char const* kPLUGIN_NAMESPACE{"detrt"};

//! Logs an error message (detrtPlugins.cpp owns the logger).
void reportError(char const* message) noexcept;

//! The one catch clause of every noexcept TensorRT entry point.
inline void caughtError(std::exception const& e) noexcept
{
    reportError(e.what());
}

//! A scalar plugin attribute: its ONNX/PluginField name and the Params member it fills.
template <typename Params>
struct Attribute
{
    char const* name;
    std::variant<int32_t Params::*, float Params::*> member;
};

//! Field type TensorRT uses for a member type (the ONNX parser maps INT -> kINT32, FLOAT -> kFLOAT32).
template <typename T>
constexpr nvinfer1::PluginFieldType fieldTypeOf()
{
    static_assert(std::is_same_v<T, int32_t> || std::is_same_v<T, float>, "int32 or float attributes only");
    return std::is_same_v<T, int32_t> ? nvinfer1::PluginFieldType::kINT32 : nvinfer1::PluginFieldType::kFLOAT32;
}

//! The value type of a pointer to member: MemberType<int32_t Params::*> is int32_t.
template <typename M>
struct MemberTypeOf;
template <typename C, typename T>
struct MemberTypeOf<T C::*>
{
    using type = T;
};
template <typename M>
using MemberType = typename MemberTypeOf<M>::type;

//! Field list, parsing and serialization of one Params struct, all from Params::attributes().
//! Params provides: default member values, `static auto const& attributes()` (a std::array of
//! Attribute<Params>) and `void validate() const` (throws detrt::Error).
template <typename Params>
class AttributeTable
{
public:
    //! The creator's getFieldNames(): names and types, no data.
    static nvinfer1::PluginFieldCollection const* fieldNames()
    {
        static std::vector<nvinfer1::PluginField> const fields = [] {
            std::vector<nvinfer1::PluginField> out;
            for (auto const& attribute : Params::attributes())
            {
                std::visit(
                    [&](auto member) {
                        using T = MemberType<decltype(member)>;
                        out.emplace_back(attribute.name, nullptr, fieldTypeOf<T>(), 1);
                    },
                    attribute.member);
            }
            return out;
        }();
        static nvinfer1::PluginFieldCollection const collection{static_cast<int32_t>(fields.size()), fields.data()};
        return &collection;
    }

    //! createPlugin's parsing: defaults, overwritten by each field; unknown names, wrong types or lengths throw.
    static Params parse(nvinfer1::PluginFieldCollection const* fc)
    {
        Params params{};
        int32_t const nbFields = fc == nullptr ? 0 : fc->nbFields;
        DETRT_CHECK(
            nbFields == 0 || fc->fields != nullptr, "PluginFieldCollection has ", nbFields, " fields and no data");
        for (int32_t i = 0; i < nbFields; ++i)
        {
            nvinfer1::PluginField const& field = fc->fields[i];
            DETRT_CHECK(field.name != nullptr, "plugin field ", i, " has no name");
            Attribute<Params> const* attribute = find(field.name);
            DETRT_CHECK(attribute != nullptr, "unknown attribute '", field.name, "'", knownNames());
            std::visit(
                [&](auto member) {
                    using T = MemberType<decltype(member)>;
                    DETRT_CHECK(field.type == fieldTypeOf<T>(), "attribute '", field.name, "' must be ",
                        std::is_same_v<T, int32_t> ? "int32" : "float32", ", got PluginFieldType ",
                        static_cast<int32_t>(field.type));
                    DETRT_CHECK(field.length == 1 && field.data != nullptr, "attribute '", field.name,
                        "' must be one scalar, got length ", field.length);
                    std::memcpy(&(params.*member), field.data, sizeof(T));
                },
                attribute->member);
        }
        params.validate();
        return params;
    }

    //! getFieldsToSerialize: the same names, pointing at `params` (storage must outlive the use).
    static nvinfer1::PluginFieldCollection const* serialize(
        Params const& params, std::vector<nvinfer1::PluginField>& storage, nvinfer1::PluginFieldCollection& collection)
    {
        storage.clear();
        for (auto const& attribute : Params::attributes())
        {
            std::visit(
                [&](auto member) {
                    using T = MemberType<decltype(member)>;
                    storage.emplace_back(attribute.name, &(params.*member), fieldTypeOf<T>(), 1);
                },
                attribute.member);
        }
        collection.nbFields = static_cast<int32_t>(storage.size());
        collection.fields = storage.data();
        return &collection;
    }

private:
    static Attribute<Params> const* find(char const* name)
    {
        for (auto const& attribute : Params::attributes())
        {
            if (std::strcmp(attribute.name, name) == 0)
            {
                return &attribute;
            }
        }
        return nullptr;
    }

    static std::string knownNames()
    {
        std::string names;
        for (auto const& attribute : Params::attributes())
        {
            names += names.empty() ? " (known: " : ", ";
            names += attribute.name;
        }
        return names.empty() ? " (this plugin takes no attributes)" : names + ")";
    }
};

//! Runs `body` at a noexcept TensorRT entry point: 0 on success; a thrown error is reported and gives -1.
template <typename Body>
int32_t guarded(Body&& body) noexcept
{
    try
    {
        body();
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    catch (...)
    {
        reportError("unknown exception");
    }
    return -1;
}

//! An IPluginV3 (OneCore + OneBuild + OneRuntime) whose whole state is `Op::Params`. Every TensorRT method is
//! here, with its error boundary; the op supplies only static functions that throw detrt::Error on bad input:
//!   kNAME, kVERSION, kNB_INPUTS, kNB_OUTPUTS, Params
//!   outputDataTypes(DataType const* in, DataType* out)
//!   outputShapes(Params const&, DimsExprs const* in, DimsExprs* out, IExprBuilder&)
//!   supportsFormat(int32_t pos, DynamicPluginTensorDesc const* inOut) -> bool   (decides on inOut[0..pos])
//!   checkInputs(Dims const* in)                      dims of the inputs; -1 = unknown at build time
//!   enqueue(Params const&, PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
//!           cudaStream_t)
template <typename Op>
class Plugin final : public nvinfer1::IPluginV3,
                     public nvinfer1::IPluginV3OneCore,
                     public nvinfer1::IPluginV3OneBuild,
                     public nvinfer1::IPluginV3OneRuntime
{
public:
    using Params = typename Op::Params;

    explicit Plugin(Params const& params)
        : mParams(params)
    {
    }

    Plugin(Plugin const& other)
        : mParams(other.mParams)
    {
    }

    Plugin& operator=(Plugin const&) = delete;
    ~Plugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        Plugin* copy{nullptr};
        guarded([&] { copy = new Plugin(*this); });
        return copy;
    }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override
    {
        return Op::kNAME;
    }

    char const* getPluginVersion() const noexcept override
    {
        return Op::kVERSION;
    }

    char const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override
    {
        return Op::kNB_OUTPUTS;
    }

    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override
    {
        return guarded([&] {
            checkCounts(inputTypes != nullptr && outputTypes != nullptr, nbInputs, nbOutputs);
            Op::outputDataTypes(inputTypes, outputTypes);
        });
    }

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* /* shapeInputs */, int32_t /* nbShapeInputs */, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override
    {
        return guarded([&] {
            checkCounts(inputs != nullptr && outputs != nullptr, nbInputs, nbOutputs);
            Op::outputShapes(mParams, inputs, outputs, exprBuilder);
        });
    }

    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override
    {
        bool supported{false};
        guarded([&] {
            checkCounts(inOut != nullptr && pos >= 0 && pos < nbInputs + nbOutputs, nbInputs, nbOutputs);
            supported = Op::supportsFormat(pos, inOut);
        });
        return supported;
    }

    // One shape check at build (configurePlugin, with -1 wildcards) and at run (onShapeChange).
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept override
    {
        return guarded([&] { checkInputDescs(in, nbInputs, nbOutputs); });
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept override
    {
        return guarded([&] { checkInputDescs(in, nbInputs, nbOutputs); });
    }

    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* /* outputDesc */,
        void const* const* inputs, void* const* outputs, void* /* workspace */, cudaStream_t stream) noexcept override
    {
        return guarded([&] {
            DETRT_CHECK(inputDesc != nullptr && inputs != nullptr && outputs != nullptr, Op::kNAME, ": null tensors");
            Op::enqueue(mParams, inputDesc, inputs, outputs, stream);
        });
    }

    //! No per-context resources, so a context gets a plain copy.
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept override
    {
        return clone();
    }

    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        nvinfer1::PluginFieldCollection const* fields{nullptr};
        guarded([&] { fields = AttributeTable<Params>::serialize(mParams, mSerialized, mSerializedCollection); });
        return fields;
    }

private:
    static void checkCounts(bool pointersOk, int32_t nbInputs, int32_t nbOutputs)
    {
        DETRT_CHECK(pointersOk && nbInputs == Op::kNB_INPUTS && nbOutputs == Op::kNB_OUTPUTS, Op::kNAME, " takes ",
            Op::kNB_INPUTS, " inputs and ", Op::kNB_OUTPUTS, " outputs, got ", nbInputs, " and ", nbOutputs);
    }

    static nvinfer1::Dims const& dimsOf(nvinfer1::PluginTensorDesc const& desc)
    {
        return desc.dims;
    }

    static nvinfer1::Dims const& dimsOf(nvinfer1::DynamicPluginTensorDesc const& desc)
    {
        return desc.desc.dims;
    }

    template <typename Desc>
    static void checkInputDescs(Desc const* in, int32_t nbInputs, int32_t nbOutputs)
    {
        checkCounts(in != nullptr, nbInputs, nbOutputs);
        std::array<nvinfer1::Dims, Op::kNB_INPUTS> dims{};
        for (int32_t i = 0; i < Op::kNB_INPUTS; ++i)
        {
            dims[i] = dimsOf(in[i]);
        }
        Op::checkInputs(dims.data());
    }

    Params const mParams;
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

//! IPluginCreatorV3One of Plugin<Op>.
template <typename Op>
class PluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    using Params = typename Op::Params;

    char const* getPluginName() const noexcept override
    {
        return Op::kNAME;
    }

    char const* getPluginVersion() const noexcept override
    {
        return Op::kVERSION;
    }

    char const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }

    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        nvinfer1::PluginFieldCollection const* names{nullptr};
        guarded([&] { names = AttributeTable<Params>::fieldNames(); });
        return names;
    }

    //! Build and runtime phases parse the same fields (runtime gets what getFieldsToSerialize returned).
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase /* phase */) noexcept override
    {
        try
        {
            return new Plugin<Op>(AttributeTable<Params>::parse(fc));
        }
        catch (std::exception const& e)
        {
            reportError((std::string(Op::kNAME) + " '" + (name != nullptr ? name : "") + "': " + e.what()).c_str());
        }
        return nullptr;
    }
};

//! True if a tensor is linear and of one of the given types (supportsFormatCombination's test).
inline bool isLinearOf(nvinfer1::PluginTensorDesc const& desc, std::initializer_list<nvinfer1::DataType> types)
{
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    for (nvinfer1::DataType type : types)
    {
        if (desc.type == type)
        {
            return true;
        }
    }
    return false;
}

//! Narrows a runtime dimension to int32 for the launchers, with a message naming it.
inline int32_t toInt32(int64_t value, char const* what)
{
    DETRT_CHECK(value >= 0 && value <= INT32_MAX, what, " = ", value, " is outside [0, 2^31)");
    return static_cast<int32_t>(value);
}

} // namespace detrt::trt

#endif // DETRT_TENSORRT_DETRT_PLUGIN_H
