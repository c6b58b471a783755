//===- manifest.cpp - Parse and validate atmoe_manifest ---------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "manifest.h"

#include "atmoe/Support/Shape.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

using namespace llvm;
using namespace atmoe::rt;
using atmoe::formatShape;

namespace {

constexpr StringLiteral kFormat = "atmoe-compiled/1";

/// A short rendering of a JSON value for messages, cut at 40 characters so
/// that a huge value cannot flood the one-line error.
std::string describe(const json::Value &value) {
  std::string text;
  raw_string_ostream os(text);
  os << value;
  if (text.size() > 40)
    text = text.substr(0, 37) + "...";
  return text;
}

class ManifestParser {
public:
  explicit ManifestParser(StringRef origin) : origin(origin) {}

  Expected<Manifest> parse(StringRef text);

private:
  Error error(const Twine &path, const Twine &message) const {
    return createStringError(inconvertibleErrorCode(),
                             origin + ": manifest: " + path + ": " + message);
  }

  Expected<StringRef> getString(const json::Object &object, StringRef key,
                                const Twine &path, bool required = true);
  Expected<int64_t> getInteger(const json::Object &object, StringRef key,
                               const Twine &path);
  Expected<SmallVector<int64_t, 2>> getShape(const json::Object &object,
                                             const Twine &path);
  Expected<Layer> parseLayer(const json::Value &value, const Twine &path);
  Expected<Argument> parseArgument(const json::Value &value, const Twine &path);
  Expected<Argument> parseStackedWeight(const json::Object &object,
                                        const json::Value &partsValue,
                                        Argument argument, const Twine &path);
  Error checkArguments(Layer &layer, const Twine &path);

  std::string origin;
};

Expected<StringRef> ManifestParser::getString(const json::Object &object,
                                              StringRef key, const Twine &path,
                                              bool required) {
  const json::Value *value = object.get(key);
  if (!value) {
    if (!required)
      return StringRef();
    return error(path, "missing key '" + key + "'");
  }
  std::optional<StringRef> string = value->getAsString();
  if (!string)
    return error(path + "." + key,
                 "expected a string, found " + describe(*value));
  if (required && string->empty())
    return error(path + "." + key, "expected a non-empty string");
  return *string;
}

Expected<int64_t> ManifestParser::getInteger(const json::Object &object,
                                             StringRef key, const Twine &path) {
  const json::Value *value = object.get(key);
  if (!value)
    return error(path, "missing key '" + key + "'");
  std::optional<int64_t> integer = value->getAsInteger();
  if (!integer)
    return error(path + "." + key,
                 "expected an integer, found " + describe(*value));
  return *integer;
}

Expected<SmallVector<int64_t, 2>>
ManifestParser::getShape(const json::Object &object, const Twine &path) {
  const json::Value *value = object.get("shape");
  if (!value)
    return error(path, "missing key 'shape'");
  const json::Array *array = value->getAsArray();
  if (!array)
    return error(path + ".shape",
                 "expected an array of integers, found " + describe(*value));
  SmallVector<int64_t, 2> shape;
  for (auto [i, element] : enumerate(*array)) {
    std::optional<int64_t> dim = element.getAsInteger();
    if (!dim || *dim < kDynamic)
      return error(path + ".shape[" + Twine(i) + "]",
                   "expected a non-negative integer or -1, found " +
                       describe(element));
    shape.push_back(*dim);
  }
  return shape;
}

Expected<Argument> ManifestParser::parseArgument(const json::Value &value,
                                                 const Twine &path) {
  const json::Object *object = value.getAsObject();
  if (!object)
    return error(path, "expected an object, found " + describe(value));
  Argument argument;

  Expected<StringRef> role = getString(*object, "role", path);
  if (!role)
    return role.takeError();
  if (*role == "input")
    argument.role = ArgumentRole::Input;
  else if (*role == "weight")
    argument.role = ArgumentRole::Weight;
  else if (*role == "output")
    argument.role = ArgumentRole::Output;
  else
    return error(path + ".role", "expected \"input\", \"weight\" or "
                                 "\"output\", found \"" +
                                     *role + "\"");

  Expected<StringRef> dtype = getString(*object, "dtype", path);
  if (!dtype)
    return dtype.takeError();
  if (*dtype == "f32")
    argument.elementType = ElementType::F32;
  else if (*dtype == "i64")
    argument.elementType = ElementType::I64;
  else
    return error(path + ".dtype",
                 "expected \"f32\" or \"i64\", found \"" + *dtype + "\"");

  Expected<SmallVector<int64_t, 2>> shape = getShape(*object, path);
  if (!shape)
    return shape.takeError();
  argument.shape = std::move(*shape);

  Expected<StringRef> memory =
      getString(*object, "memory", path, /*required=*/false);
  if (!memory)
    return memory.takeError();
  if (!memory->empty() && *memory != "host" && *memory != "device")
    return error(path + ".memory",
                 "expected \"host\" or \"device\", found \"" + *memory + "\"");
  argument.inHostMemory = *memory == "host";

  if (argument.role != ArgumentRole::Weight) {
    Expected<StringRef> name = getString(*object, "name", path);
    if (!name)
      return name.takeError();
    argument.name = name->str();
    return argument;
  }

  if (const json::Value *partsValue = object->get("parts"))
    return parseStackedWeight(*object, *partsValue, std::move(argument), path);

  Expected<StringRef> file = getString(*object, "file", path);
  if (!file)
    return file.takeError();
  // Weights live inside the package; an absolute path would silently read
  // whatever file it names instead of the package being bound.
  if (sys::path::is_absolute(*file))
    return error(path + ".file",
                 "expected a path relative to the model package, found \"" +
                     *file + "\"");
  Expected<StringRef> source = getString(*object, "source", path);
  if (!source)
    return source.takeError();
  Expected<StringRef> tensor =
      getString(*object, "tensor", path, /*required=*/false);
  if (!tensor)
    return tensor.takeError();
  argument.file = file->str();
  argument.source = source->str();
  argument.name = tensor->empty() ? argument.source : tensor->str();
  if (argument.elementType != ElementType::F32)
    return error(path + ".dtype",
                 "expected \"f32\" for weight '" + argument.name + "'");
  for (auto [i, dim] : enumerate(argument.shape))
    if (dim == kDynamic)
      return error(path + ".shape[" + Twine(i) + "]",
                   "weight '" + argument.name + "' must have a static shape");
  return argument;
}

/// A weight the compiler stacks from several tensors (atmoe-hoist-weight-
/// concat): every part is a plain weight, and the parts tile the stacked
/// shape along `concat_dim`.
Expected<Argument>
ManifestParser::parseStackedWeight(const json::Object &object,
                                   const json::Value &partsValue,
                                   Argument argument, const Twine &path) {
  Expected<StringRef> tensor = getString(object, "tensor", path);
  if (!tensor)
    return tensor.takeError();
  argument.name = tensor->str();
  std::optional<int64_t> dim = object.get("concat_dim")
                                   ? object.get("concat_dim")->getAsInteger()
                                   : std::nullopt;
  int64_t rank = static_cast<int64_t>(argument.shape.size());
  if (!dim || *dim < 0 || *dim >= rank)
    return error(path + ".concat_dim",
                 "expected a dimension of the stacked shape " +
                     formatShape(argument.shape));
  argument.concatDim = *dim;
  if (argument.elementType != ElementType::F32)
    return error(path + ".dtype",
                 "expected \"f32\" for weight '" + argument.name + "'");
  const json::Array *parts = partsValue.getAsArray();
  if (!parts || parts->empty())
    return error(path + ".parts", "expected a non-empty array of weights");
  int64_t covered = 0;
  for (auto [i, partValue] : enumerate(*parts)) {
    std::string partPath = (path + ".parts[" + Twine(i) + "]").str();
    const json::Object *partObject = partValue.getAsObject();
    if (!partObject)
      return error(partPath, "expected an object");
    Argument part;
    part.role = ArgumentRole::Weight;
    part.elementType = ElementType::F32;
    Expected<SmallVector<int64_t, 2>> shape = getShape(*partObject, partPath);
    if (!shape)
      return shape.takeError();
    part.shape = std::move(*shape);
    Expected<StringRef> file = getString(*partObject, "file", partPath);
    if (!file)
      return file.takeError();
    if (sys::path::is_absolute(*file))
      return error(partPath + ".file",
                   "expected a path relative to the model package");
    Expected<StringRef> source = getString(*partObject, "source", partPath);
    if (!source)
      return source.takeError();
    Expected<StringRef> name =
        getString(*partObject, "tensor", partPath, /*required=*/false);
    if (!name)
      return name.takeError();
    part.file = file->str();
    part.source = source->str();
    part.name = name->empty() ? part.source : name->str();
    if (static_cast<int64_t>(part.shape.size()) != rank)
      return error(partPath + ".shape", "expected rank " + Twine(rank));
    for (int64_t d = 0; d < rank; ++d) {
      if (part.shape[d] < 0)
        return error(partPath + ".shape", "expected a static shape");
      if (d != *dim && part.shape[d] != argument.shape[d])
        return error(partPath + ".shape",
                     "expected " + formatShape(argument.shape) +
                         " outside dimension " + Twine(*dim) + ", found " +
                         formatShape(part.shape));
    }
    covered += part.shape[*dim];
    argument.parts.push_back(std::move(part));
  }
  if (covered != argument.shape[*dim])
    return error(path + ".parts", "parts cover " + Twine(covered) +
                                      " of dimension " + Twine(*dim) +
                                      ", the stacked shape " +
                                      formatShape(argument.shape) + " has " +
                                      Twine(argument.shape[*dim]));
  return argument;
}

/// Checks that `layer.arguments` follow the ABI order and fills in the
/// projections, router width and weight range.
Error ManifestParser::checkArguments(Layer &layer, const Twine &path) {
  std::vector<Argument> &args = layer.arguments;
  // A std::string, not a Twine: a Twine returned from here would point at the
  // temporaries of the lambda body.
  auto argPath = [&](size_t i) {
    return (path + ".arguments[" + Twine(i) + "]").str();
  };
  auto expectShape = [&](size_t i, ArrayRef<int64_t> expected,
                         const Twine &what) -> Error {
    if (ArrayRef<int64_t>(args[i].shape) == expected)
      return Error::success();
    return error(argPath(i) + ".shape", "expected " + formatShape(expected) +
                                            " (" + what + "), found " +
                                            formatShape(args[i].shape));
  };
  auto expectType = [&](size_t i, ElementType type) -> Error {
    if (args[i].elementType == type)
      return Error::success();
    return error(argPath(i) + ".dtype",
                 Twine("expected \"") +
                     (type == ElementType::F32 ? "f32" : "i64") + "\" for '" +
                     args[i].name + "'");
  };

  size_t pos = 0, end = args.size();
  StringSet<> projectionNames;
  // Projection inputs: every input before "h" / "segments".
  for (; pos < end && args[pos].role == ArgumentRole::Input &&
         args[pos].name != "h" && args[pos].name != "segments";
       ++pos) {
    const Argument &arg = args[pos];
    if (arg.name == "routing")
      return error(argPath(pos) + ".name",
                   "'routing' is reserved for the routing output and cannot "
                   "name a projection");
    if (!projectionNames.insert(arg.name).second)
      return error(argPath(pos) + ".name",
                   "duplicate projection '" + arg.name + "'");
    if (Error err = expectType(pos, ElementType::F32))
      return err;
    if (arg.shape.size() != 2 || arg.shape[0] != kDynamic || arg.shape[1] < 1)
      return error(argPath(pos) + ".shape",
                   "expected [-1, d_in] with d_in >= 1 for the input of "
                   "projection '" +
                       arg.name + "', found " + formatShape(arg.shape));
    layer.projections.push_back({arg.name, arg.shape[1], 0});
  }
  if (layer.projections.empty())
    return error(path + ".arguments",
                 "expected at least one projection input first");

  if (pos < end && args[pos].role == ArgumentRole::Input &&
      args[pos].name == "h") {
    if (Error err = expectType(pos, ElementType::F32))
      return err;
    if (args[pos].shape.size() != 2 || args[pos].shape[0] != kDynamic ||
        args[pos].shape[1] < 1)
      return error(argPath(pos) + ".shape",
                   "expected [-1, d_h] with d_h >= 1 for the router input "
                   "'h', found " +
                       formatShape(args[pos].shape));
    layer.routerWidth = args[pos].shape[1];
    ++pos;
  }
  if (pos < end && args[pos].role == ArgumentRole::Input &&
      args[pos].name == "segments") {
    if (layer.granularity != Granularity::Sequence)
      return error(argPath(pos),
                   "a 'segments' input needs \"granularity\": \"sequence\"");
    if (Error err = expectType(pos, ElementType::I64))
      return err;
    if (Error err = expectShape(pos, {kDynamic}, "one length per sequence"))
      return err;
    layer.takesSegments = true;
    ++pos;
  } else if (layer.hasRouter() && layer.granularity == Granularity::Sequence) {
    // Without the lengths a sequence-granularity router cannot map tokens to
    // their sequence's routing row.
    return error(argPath(pos), "expected the input 'segments' after 'h' (the "
                               "layer has sequence granularity)");
  }
  if (pos < end && args[pos].role == ArgumentRole::Input)
    return error(argPath(pos), "unexpected input '" + args[pos].name +
                                   "': inputs are the projections, then 'h', "
                                   "then 'segments'");

  layer.firstWeight = pos;
  for (; pos < end && args[pos].role == ArgumentRole::Weight; ++pos)
    ;
  layer.numWeights = pos - layer.firstWeight;

  for (Projection &projection : layer.projections) {
    if (pos >= end || args[pos].role != ArgumentRole::Output)
      return error(argPath(pos), "expected the output of projection '" +
                                     projection.name + "'");
    if (args[pos].name != projection.name)
      return error(argPath(pos) + ".name",
                   "expected the output of projection '" + projection.name +
                       "' (outputs follow the order of the inputs), found '" +
                       args[pos].name + "'");
    if (Error err = expectType(pos, ElementType::F32))
      return err;
    if (args[pos].shape.size() != 2 || args[pos].shape[0] != kDynamic ||
        args[pos].shape[1] < 1)
      return error(argPath(pos) + ".shape",
                   "expected [-1, d_out] with d_out >= 1 for the output of "
                   "projection '" +
                       projection.name + "', found " +
                       formatShape(args[pos].shape));
    projection.dOut = args[pos].shape[1];
    ++pos;
  }

  if (layer.hasRouter()) {
    if (pos >= end || args[pos].role != ArgumentRole::Output ||
        args[pos].name != "routing")
      return error(pos < end ? argPath(pos) : path + ".arguments",
                   "expected the output 'routing' last (the layer has a "
                   "router input 'h')");
    if (Error err = expectType(pos, ElementType::F32))
      return err;
    int64_t numExperts = layer.experts.size();
    if (Error err = expectShape(pos, {kDynamic, numExperts},
                                "one column per expert of \"experts\""))
      return err;
    ++pos;
  }
  if (pos < end)
    return error(argPath(pos),
                 args[pos].role == ArgumentRole::Weight
                     ? Twine("weights must come between the inputs and the "
                             "outputs")
                     : "unexpected " +
                           Twine(args[pos].role == ArgumentRole::Input
                                     ? "input"
                                     : "output") +
                           " '" + args[pos].name + "'");
  return Error::success();
}

Expected<Layer> ManifestParser::parseLayer(const json::Value &value,
                                           const Twine &path) {
  const json::Object *object = value.getAsObject();
  if (!object)
    return error(path, "expected an object, found " + describe(value));
  Layer layer;

  Expected<int64_t> index = getInteger(*object, "index", path);
  if (!index)
    return index.takeError();
  if (*index < 0)
    return error(path + ".index",
                 "expected a non-negative integer, found " + Twine(*index));
  layer.index = *index;

  Expected<StringRef> entry = getString(*object, "entry", path);
  if (!entry)
    return entry.takeError();
  layer.entry = entry->str();
  Expected<StringRef> function =
      getString(*object, "function", path, /*required=*/false);
  if (!function)
    return function.takeError();
  layer.function = function->str();

  // The experts list and granularity only matter with a router; whether there
  // is one is decided by the arguments, so check their presence afterwards.
  Expected<StringRef> granularity =
      getString(*object, "granularity", path, /*required=*/false);
  if (!granularity)
    return granularity.takeError();
  if (granularity->empty() || *granularity == "token")
    layer.granularity = Granularity::Token;
  else if (*granularity == "sequence")
    layer.granularity = Granularity::Sequence;
  else
    return error(path + ".granularity",
                 "expected \"token\" or \"sequence\", found \"" + *granularity +
                     "\"");

  if (const json::Value *experts = object->get("experts")) {
    const json::Array *array = experts->getAsArray();
    if (!array)
      return error(path + ".experts",
                   "expected an array of strings, found " + describe(*experts));
    StringSet<> seen;
    for (auto [i, element] : enumerate(*array)) {
      std::optional<StringRef> name = element.getAsString();
      if (!name || name->empty())
        return error(path + ".experts[" + Twine(i) + "]",
                     "expected a non-empty string, found " + describe(element));
      if (!seen.insert(*name).second)
        return error(path + ".experts[" + Twine(i) + "]",
                     "duplicate expert '" + *name + "'");
      layer.experts.push_back(name->str());
    }
  }

  const json::Value *arguments = object->get("arguments");
  if (!arguments)
    return error(path, "missing key 'arguments'");
  const json::Array *array = arguments->getAsArray();
  if (!array)
    return error(path + ".arguments",
                 "expected an array, found " + describe(*arguments));
  for (auto [i, element] : enumerate(*array)) {
    Expected<Argument> argument =
        parseArgument(element, path + ".arguments[" + Twine(i) + "]");
    if (!argument)
      return argument.takeError();
    layer.arguments.push_back(std::move(*argument));
  }
  if (Error err = checkArguments(layer, path))
    return std::move(err);

  if (layer.hasRouter()) {
    if (layer.experts.empty())
      return error(path + ".experts",
                   "expected at least one expert (the layer has a router)");
    if (!object->get("granularity"))
      return error(path, "missing key 'granularity' (the layer has a router)");
  } else if (!layer.experts.empty()) {
    return error(path + ".experts",
                 "the layer lists experts but has no router input 'h'");
  }
  return layer;
}

Expected<Manifest> ManifestParser::parse(StringRef text) {
  Expected<json::Value> root = json::parse(text);
  if (!root)
    return createStringError(
        inconvertibleErrorCode(),
        origin + ": manifest: invalid JSON: " + toString(root.takeError()));
  const json::Object *object = root->getAsObject();
  if (!object)
    return error("(root)", "expected an object, found " + describe(*root));

  Expected<StringRef> format = getString(*object, "format", "(root)");
  if (!format)
    return format.takeError();
  if (*format != kFormat)
    return error("format",
                 "expected \"" + kFormat + "\", found \"" + *format + "\"");

  Manifest manifest;
  for (StringRef key : {"model", "target"}) {
    Expected<StringRef> value =
        getString(*object, key, "(root)", /*required=*/false);
    if (!value)
      return value.takeError();
    (key == "model" ? manifest.model : manifest.target) = value->str();
  }
  Expected<StringRef> device =
      getString(*object, "device", "(root)", /*required=*/false);
  if (!device)
    return device.takeError();
  if (device->empty() || *device == "cpu")
    manifest.device = Device::CPU;
  else if (*device == "cuda")
    manifest.device = Device::CUDA;
  else if (*device == "hip")
    manifest.device = Device::HIP;
  else
    return error("device", "expected \"cpu\", \"cuda\" or \"hip\", found \"" +
                               *device + "\"");

  const json::Value *layers = object->get("layers");
  if (!layers)
    return error("(root)", "missing key 'layers'");
  const json::Array *array = layers->getAsArray();
  if (!array)
    return error("layers", "expected an array, found " + describe(*layers));
  if (array->empty())
    return error("layers", "expected at least one layer");
  DenseSet<int64_t> indices;
  for (auto [i, element] : enumerate(*array)) {
    std::string path = ("layers[" + Twine(i) + "]").str();
    Expected<Layer> layer = parseLayer(element, path);
    if (!layer)
      return layer.takeError();
    if (!indices.insert(layer->index).second)
      return error(path + ".index",
                   "duplicate layer index " + Twine(layer->index));
    manifest.layers.push_back(std::move(*layer));
  }
  return manifest;
}

} // namespace

Expected<Manifest> atmoe::rt::parseManifest(StringRef text, StringRef origin) {
  return ManifestParser(origin).parse(text);
}
