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
//   PluginV3<Derived, Traits>      IPluginV3 + OneCore/OneBuild/OneRuntime boilerplate: capability
//                                  lookup, names, clone, attachToContext, serialization. Derived writes
//                                  only the op: output types and shapes, formats, checks, enqueue.
//   PluginCreatorV3<Plugin>        IPluginCreatorV3One for one plugin.
//
// Errors: every noexcept method of TensorRT's interfaces catches std::exception (detrt::Error from
// DETRT_CHECK in plugins/common/check.h) and reports it, returning a failure status: nothing throws
// through TensorRT, nothing aborts.
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

//! The IPluginV3 boilerplate of a plugin whose whole state is `Traits::Params`.
//! Traits: kNAME, kVERSION, Params. Derived: the IPluginV3OneBuild/OneRuntime methods of the op.
template <typename Derived, typename Traits>
class PluginV3 : public nvinfer1::IPluginV3,
                 public nvinfer1::IPluginV3OneCore,
                 public nvinfer1::IPluginV3OneBuild,
                 public nvinfer1::IPluginV3OneRuntime
{
public:
    using Params = typename Traits::Params;

    explicit PluginV3(Params const& params)
        : mParams(params)
    {
    }

    PluginV3(PluginV3 const& other)
        : mParams(other.mParams)
    {
    }

    PluginV3& operator=(PluginV3 const&) = delete;
    ~PluginV3() override = default;

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
        try
        {
            return new Derived(static_cast<Derived const&>(*this));
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return nullptr;
    }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override
    {
        return Traits::kNAME;
    }

    char const* getPluginVersion() const noexcept override
    {
        return Traits::kVERSION;
    }

    char const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }

    // IPluginV3OneRuntime: no per-context resources, so a context gets a plain copy.
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept override
    {
        return clone();
    }

    // IPluginV3OneBuild / OneRuntime: one shape check (Derived::checkInputs on the input dims) at build and run.
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept override
    {
        return checkDescs(in, nbInputs, nbOutputs);
    }

    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept override
    {
        return checkDescs(in, nbInputs, nbOutputs);
    }

    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        try
        {
            return AttributeTable<Params>::serialize(mParams, mSerialized, mSerializedCollection);
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return nullptr;
    }

protected:
    Params const mParams;

private:
    static nvinfer1::Dims const& dimsOf(nvinfer1::PluginTensorDesc const& desc)
    {
        return desc.dims;
    }

    static nvinfer1::Dims const& dimsOf(nvinfer1::DynamicPluginTensorDesc const& desc)
    {
        return desc.desc.dims;
    }

    //! Derived::checkInputs(dims, nbInputs, nbOutputs) throws on bad input dims; -1 dims are build-time wildcards.
    template <typename Desc>
    static int32_t checkDescs(Desc const* in, int32_t nbInputs, int32_t nbOutputs) noexcept
    {
        try
        {
            DETRT_CHECK(in != nullptr && nbInputs >= 0 && nbInputs <= kMAX_INPUTS, Traits::kNAME, ": bad input list");
            std::array<nvinfer1::Dims, kMAX_INPUTS> dims{};
            for (int32_t i = 0; i < nbInputs; ++i)
            {
                dims[i] = dimsOf(in[i]);
            }
            Derived::checkInputs(dims.data(), nbInputs, nbOutputs);
            return 0;
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return -1;
    }

    static constexpr int32_t kMAX_INPUTS{8};
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

//! IPluginCreatorV3One of one plugin; `Plugin` is constructible from its Params.
template <typename Plugin>
class PluginCreatorV3 : public nvinfer1::IPluginCreatorV3One
{
public:
    using Params = typename Plugin::Params;

    char const* getPluginName() const noexcept override
    {
        return Plugin::Traits::kNAME;
    }

    char const* getPluginVersion() const noexcept override
    {
        return Plugin::Traits::kVERSION;
    }

    char const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }

    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        try
        {
            return AttributeTable<Params>::fieldNames();
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return nullptr;
    }

    //! Build and runtime phases parse the same fields (runtime gets what getFieldsToSerialize returned).
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase /* phase */) noexcept override
    {
        try
        {
            return new Plugin(AttributeTable<Params>::parse(fc));
        }
        catch (std::exception const& e)
        {
            reportError((std::string(Plugin::Traits::kNAME) + " '" + (name != nullptr ? name : "") + "': " + e.what())
                            .c_str());
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

//! Product of dims [begin, end) of a Dims as int64 (all dims known, as at enqueue).
inline int64_t volume(nvinfer1::Dims const& dims, int32_t begin, int32_t end)
{
    int64_t v = 1;
    for (int32_t i = begin; i < end; ++i)
    {
        v *= dims.d[i];
    }
    return v;
}

//! Narrows a runtime dimension to int32 for the launchers, with a message naming it.
inline int32_t toInt32(int64_t value, char const* what)
{
    DETRT_CHECK(value >= 0 && value <= INT32_MAX, what, " = ", value, " is outside [0, 2^31)");
    return static_cast<int32_t>(value);
}

} // namespace detrt::trt

#endif // DETRT_TENSORRT_DETRT_PLUGIN_H
