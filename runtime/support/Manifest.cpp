//===- Manifest.cpp - The compiled-model manifest -------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Manifest.h"

#include "atmoe_rt/support/Names.h"

#include "atmoe_rt/support/Json.h"
#include "atmoe_rt/support/Text.h"

#include <cmath>
#include <set>

using namespace atmoe_rt;

#ifndef ATMOE_VERSION
#error "ATMOE_VERSION must be defined by the build"
#endif

const char *atmoe_rt::atmoeVersion() { return ATMOE_VERSION; }

std::string atmoe_rt::manifestFormatId(int version) {
  return std::string(kManifestFormat) + "/" + std::to_string(version);
}

std::string_view atmoe_rt::stringifyDevice(Device device) {
  switch (device) {
  case Device::CPU:
    return "cpu";
  case Device::CUDA:
    return "cuda";
  case Device::HIP:
    return "hip";
  }
  return "cpu";
}

std::string_view atmoe_rt::stringifyElementType(ElementType type) {
  switch (type) {
  case ElementType::F32:
    return "f32";
  case ElementType::F16:
    return "f16";
  case ElementType::BF16:
    return "bf16";
  case ElementType::I32:
    return "i32";
  case ElementType::I64:
    return "i64";
  }
  return "f32";
}

std::optional<ElementType> atmoe_rt::parseElementType(std::string_view name) {
  for (ElementType type :
       {ElementType::F32, ElementType::F16, ElementType::BF16, ElementType::I32,
        ElementType::I64})
    if (stringifyElementType(type) == name)
      return type;
  return std::nullopt;
}

size_t atmoe_rt::elementSize(ElementType type) {
  switch (type) {
  case ElementType::F16:
  case ElementType::BF16:
    return 2;
  case ElementType::I64:
    return 8;
  default:
    return 4;
  }
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace {

using OrderedJson = nlohmann::ordered_json;

std::string_view stringifyRole(ArgumentRole role) {
  return role == ArgumentRole::Input    ? "input"
         : role == ArgumentRole::Weight ? "weight"
                                        : "output";
}

OrderedJson writeWeightSource(const Argument &weight) {
  return OrderedJson{{"tensor", weight.name},
                     {"file", weight.file},
                     {"source", weight.source},
                     {"shape", weight.shape}};
}

/// `onDevice`: the model runs on a GPU, where every argument says where it
/// lives.
OrderedJson writeArgument(const Argument &arg, bool onDevice) {
  OrderedJson object{{"role", stringifyRole(arg.role)},
                     {"dtype", stringifyElementType(arg.elementType)},
                     {"shape", arg.shape}};
  if (arg.role != ArgumentRole::Weight) {
    object["name"] = arg.name;
  } else if (arg.parts.empty()) {
    object["tensor"] = arg.name;
    object["file"] = arg.file;
    object["source"] = arg.source;
  } else {
    object["tensor"] = arg.name;
    if (arg.doraScale)
      object["dora_scale"] = *arg.doraScale;
    else
      object["concat_dim"] = arg.concatDim;
    OrderedJson parts = OrderedJson::array();
    for (const Argument &part : arg.parts)
      parts.push_back(writeWeightSource(part));
    object["parts"] = std::move(parts);
  }
  if (arg.shardDim >= 0)
    object["shard_dim"] = arg.shardDim;
  if (arg.panelWidth > 0) {
    object["panel"] = arg.panelWidth;
    object["panel_dim"] = arg.panelDim;
  }
  if (onDevice)
    object["memory"] = arg.inHostMemory ? "host" : "device";
  return object;
}

OrderedJson writeLayer(const Layer &layer, bool onDevice) {
  OrderedJson arguments = OrderedJson::array();
  for (const Argument &arg : layer.arguments)
    arguments.push_back(writeArgument(arg, onDevice));
  return OrderedJson{{"index", layer.index},
                     {"function", layer.function},
                     {"entry", layer.entry},
                     {"granularity", layer.granularity == Granularity::Sequence
                                         ? "sequence"
                                         : "token"},
                     {"experts", layer.experts},
                     {"arguments", std::move(arguments)}};
}

} // namespace

std::string atmoe_rt::writeManifest(const Manifest &manifest) {
  OrderedJson layers = OrderedJson::array();
  for (const Layer &layer : manifest.layers)
    layers.push_back(writeLayer(layer, manifest.device != Device::CPU));
  OrderedJson root{{"format", manifestFormatId()},
                   {"producer", manifest.producer},
                   {"model", manifest.model},
                   {"target", manifest.target},
                   {"device", stringifyDevice(manifest.device)},
                   {"compiled_for", manifest.compiledFor},
                   {"layers", std::move(layers)}};
  if (manifest.ranks > 1)
    root["parallel"] =
        OrderedJson{{"kind", manifest.parallelKind}, {"ranks", manifest.ranks}};
  if (!manifest.sources.empty()) {
    OrderedJson sources = OrderedJson::array();
    for (const SourceFile &source : manifest.sources)
      sources.push_back(OrderedJson{{"file", source.path},
                                    {"json", OrderedJson(source.content)}});
    root["sources"] = std::move(sources);
  }
  return root.dump();
}

//===----------------------------------------------------------------------===//
// Validation of the argument lists
//===----------------------------------------------------------------------===//

namespace {

/// Checks that a layer's arguments follow the ABI order and fills in the
/// projections, router width and weight range.
class LayerValidator {
public:
  LayerValidator(Layer &layer, std::string prefix, std::string path)
      : layer(layer), args(layer.arguments), prefix(std::move(prefix)),
        path(std::move(path)) {}

  Status run();

private:
  Error error(const std::string &at, const std::string &message) const {
    return fail(prefix + at + ": " + message);
  }
  std::string argPath(size_t i) const {
    return jsonElementPath(path + ".arguments", i);
  }
  bool isInput(size_t i, std::string_view name = {}) const {
    return i < args.size() && args[i].role == ArgumentRole::Input &&
           (name.empty() || args[i].name == name);
  }
  Status expectType(size_t i, ElementType type) const;
  Status expectMatrix(size_t i, std::string_view what) const;
  Status checkProjectionInputs();
  Status checkRouterInputs();
  Status checkOutputs();
  Status checkRouting();
  Status checkNothingLeft() const;

  Layer &layer;
  std::vector<Argument> &args;
  std::string prefix, path;
  size_t pos = 0;
};

Status LayerValidator::run() {
  for (auto check :
       {&LayerValidator::checkProjectionInputs,
        &LayerValidator::checkRouterInputs, &LayerValidator::checkOutputs,
        &LayerValidator::checkRouting})
    if (Status status = (this->*check)(); !status)
      return status;
  return checkNothingLeft();
}

Status LayerValidator::expectType(size_t i, ElementType type) const {
  if (args[i].elementType == type)
    return Status::success();
  return error(argPath(i) + ".dtype",
               "expected \"" + std::string(stringifyElementType(type)) +
                   "\" for '" + args[i].name + "'");
}

/// A [-1, d] f32 matrix with d >= 1; `what` reads "d_in ... for the input of
/// projection 'q'".
Status LayerValidator::expectMatrix(size_t i, std::string_view what) const {
  if (Status status = expectType(i, ElementType::F32); !status)
    return status;
  const std::vector<int64_t> &shape = args[i].shape;
  if (shape.size() == 2 && shape[0] == kDynamic && shape[1] >= 1)
    return Status::success();
  size_t space = what.find(' ');
  std::string extent(what.substr(0, space));
  return error(argPath(i) + ".shape", "expected [-1, " + extent + "] with " +
                                          extent + " >= 1" +
                                          std::string(what.substr(space)) +
                                          ", found " + formatShape(shape));
}

/// Projection inputs: every input before "h" / "segments".
Status LayerValidator::checkProjectionInputs() {
  std::set<std::string> names;
  for (; isInput(pos) && !isInput(pos, "h") && !isInput(pos, "segments");
       ++pos) {
    const Argument &arg = args[pos];
    if (std::string problem = plainNameProblem(arg.name); !problem.empty())
      return error(argPath(pos) + ".name",
                   "projection name '" + escapeName(arg.name) + "' " + problem);
    if (arg.name == "routing")
      return error(argPath(pos) + ".name",
                   "'routing' is reserved for the routing output and cannot "
                   "name a projection");
    if (!names.insert(arg.name).second)
      return error(argPath(pos) + ".name",
                   "duplicate projection '" + arg.name + "'");
    if (Status status = expectMatrix(pos, "d_in for the input of projection '" +
                                              arg.name + "'");
        !status)
      return status;
    layer.projections.push_back({arg.name, arg.shape[1], 0});
  }
  if (layer.projections.empty())
    return error(path + ".arguments",
                 "expected at least one projection input first");
  return Status::success();
}

Status LayerValidator::checkRouterInputs() {
  if (isInput(pos, "h")) {
    if (Status status = expectMatrix(pos, "d_h for the router input 'h'");
        !status)
      return status;
    layer.routerWidth = args[pos++].shape[1];
  }
  if (isInput(pos, "segments")) {
    if (layer.granularity != Granularity::Sequence)
      return error(argPath(pos),
                   "a 'segments' input needs \"granularity\": \"sequence\"");
    if (Status status = expectType(pos, ElementType::I64); !status)
      return status;
    if (args[pos].shape != std::vector<int64_t>{kDynamic})
      return error(argPath(pos) + ".shape",
                   "expected [-1] (one length per sequence), found " +
                       formatShape(args[pos].shape));
    layer.takesSegments = true;
    ++pos;
  } else if (layer.hasRouter() && layer.granularity == Granularity::Sequence) {
    // Without the lengths a sequence-granularity router cannot map tokens to
    // their sequence's routing row.
    return error(argPath(pos), "expected the input 'segments' after 'h' (the "
                               "layer has sequence granularity)");
  }
  if (isInput(pos))
    return error(argPath(pos), "unexpected input '" + args[pos].name +
                                   "': inputs are the projections, then 'h', "
                                   "then 'segments'");
  layer.firstWeight = pos;
  while (pos < args.size() && args[pos].role == ArgumentRole::Weight)
    ++pos;
  layer.numWeights = pos - layer.firstWeight;
  return Status::success();
}

Status LayerValidator::checkOutputs() {
  for (Projection &projection : layer.projections) {
    if (pos >= args.size() || args[pos].role != ArgumentRole::Output)
      return error(argPath(pos), "expected the output of projection '" +
                                     projection.name + "'");
    if (args[pos].name != projection.name)
      return error(argPath(pos) + ".name",
                   "expected the output of projection '" + projection.name +
                       "' (outputs follow the order of the inputs), found '" +
                       args[pos].name + "'");
    if (Status status = expectMatrix(pos, "d_out for the output of "
                                          "projection '" +
                                              projection.name + "'");
        !status)
      return status;
    projection.dOut = args[pos++].shape[1];
  }
  return Status::success();
}

Status LayerValidator::checkRouting() {
  if (!layer.hasRouter())
    return Status::success();
  if (pos >= args.size() || args[pos].role != ArgumentRole::Output ||
      args[pos].name != "routing")
    return error(pos < args.size() ? argPath(pos) : path + ".arguments",
                 "expected the output 'routing' last (the layer has a router "
                 "input 'h')");
  if (Status status = expectType(pos, ElementType::F32); !status)
    return status;
  std::vector<int64_t> expected = {kDynamic, int64_t(layer.experts.size())};
  if (args[pos].shape != expected)
    return error(argPath(pos) + ".shape",
                 "expected " + formatShape(expected) +
                     " (one column per expert of \"experts\"), found " +
                     formatShape(args[pos].shape));
  ++pos;
  return Status::success();
}

Status LayerValidator::checkNothingLeft() const {
  if (pos >= args.size())
    return Status::success();
  const Argument &arg = args[pos];
  if (arg.role == ArgumentRole::Weight)
    return error(argPath(pos),
                 "weights must come between the inputs and the outputs");
  return error(argPath(pos),
               std::string("unexpected ") +
                   (arg.role == ArgumentRole::Input ? "input" : "output") +
                   " '" + arg.name + "'");
}

/// The checks of one layer that need its arguments and experts together.
Status validateLayer(Layer &layer, const std::string &prefix,
                     const std::string &path) {
  layer.projections.clear();
  layer.routerWidth = 0;
  layer.takesSegments = false;
  if (Status status = LayerValidator(layer, prefix, path).run(); !status)
    return status;
  if (layer.hasRouter() && layer.experts.empty())
    return fail(prefix + path +
                ".experts: expected at least one expert (the layer has a "
                "router)");
  if (!layer.hasRouter() && !layer.experts.empty())
    return fail(prefix + path +
                ".experts: the layer lists experts but has no router input "
                "'h'");
  return Status::success();
}

} // namespace

/// Split weights only in a parallel model, along a dimension the processes
/// divide evenly.
static Status validateShards(const Layer &layer, int64_t ranks,
                             const std::string &prefix) {
  for (size_t i = 0; i < layer.arguments.size(); ++i) {
    const Argument &arg = layer.arguments[i];
    if (arg.shardDim < 0)
      continue;
    std::string path =
        prefix + jsonElementPath(".arguments", i) + ".shard_dim: ";
    int64_t rank = int64_t(arg.shape.size());
    if (ranks == 1 || arg.role != ArgumentRole::Weight)
      return fail(path + "only the weights of a model split over processes "
                         "(\"parallel\") are split");
    if (arg.shardDim >= rank || arg.shape[arg.shardDim] % ranks != 0)
      return fail(path + "expected a dimension of " + formatShape(arg.shape) +
                  " that " + std::to_string(ranks) +
                  " processes divide, found " + std::to_string(arg.shardDim));
  }
  return Status::success();
}

Status atmoe_rt::validateManifest(Manifest &manifest,
                                  const std::string &origin) {
  std::string prefix = origin + ": manifest: ";
  if (manifest.layers.empty())
    return fail(prefix + "layers: expected at least one layer");
  if (manifest.ranks < 1 ||
      (manifest.ranks > 1 && manifest.device != Device::CPU))
    return fail(prefix + "parallel: only CPU models run split over processes");
  std::set<int64_t> indices;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    std::string path = jsonElementPath("layers", i);
    Layer &layer = manifest.layers[i];
    if (Status status = validateLayer(layer, prefix, path); !status)
      return status;
    if (Status status = validateShards(layer, manifest.ranks, prefix + path);
        !status)
      return status;
    for (size_t a = 0; a < layer.arguments.size(); ++a)
      if (layer.arguments[a].panelWidth > 0 && manifest.device != Device::CPU)
        return fail(prefix + path + jsonElementPath(".arguments", a) +
                    ".panel: only CPU models read weights in panels");
    if (!indices.insert(layer.index).second)
      return fail(prefix + path + ".index: duplicate layer index " +
                  std::to_string(layer.index));
  }
  return Status::success();
}

size_t atmoe_rt::compiledRank(const Argument &arg) {
  return arg.panelWidth > 0 ? 3 : arg.shape.size();
}

std::vector<int64_t> atmoe_rt::localShape(const Argument &arg, int64_t ranks) {
  std::vector<int64_t> shape = arg.shape;
  if (arg.shardDim >= 0)
    shape[arg.shardDim] /= ranks;
  return shape;
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

namespace {

/// Reads the JSON of a manifest into the structs, checking types and
/// values; the argument order is validateLayer's.
class ManifestReader {
public:
  explicit ManifestReader(const std::string &origin)
      : origin(origin), prefix(origin + ": manifest: ") {}

  Result<Manifest> read(std::string_view text);

private:
  Error error(const std::string &path, const std::string &message) const {
    return fail(prefix + path + ": " + message);
  }
  Result<std::string> getString(const Json &object, const char *key,
                                const std::string &path,
                                bool required = true) const;
  Result<int64_t> getInteger(const Json &object, const char *key,
                             const std::string &path) const;
  Result<std::vector<int64_t>> getShape(const Json &object,
                                        const std::string &path) const;
  Status checkFormat(const Json &root) const;
  Status readHeader(const Json &root, Manifest &manifest) const;
  Status readSources(const Json &root, Manifest &manifest) const;
  Status readParallel(const Json &root, Manifest &manifest) const;
  Result<Layer> readLayer(const Json &value, const std::string &path) const;
  Status readExperts(const Json &object, const std::string &path,
                     Layer &layer) const;
  Result<Argument> readArgument(const Json &value,
                                const std::string &path) const;
  Status readRoleTypeShape(const Json &object, const std::string &path,
                           Argument &argument) const;
  Result<Argument> readWeightSource(const Json &object,
                                    const std::string &path) const;
  Status readParts(const Json &object, const std::string &path,
                   Argument &argument) const;
  Status readStackedWeight(const Json &object, const std::string &path,
                           Argument &argument) const;
  Status readDoraScaleWeight(const Json &object, const std::string &path,
                             Argument &argument) const;

  std::string origin, prefix;
};

Result<std::string> ManifestReader::getString(const Json &object,
                                              const char *key,
                                              const std::string &path,
                                              bool required) const {
  auto value = object.find(key);
  if (value == object.end()) {
    if (!required)
      return std::string();
    return error(path, std::string("missing key '") + key + "'");
  }
  std::string at = path == "(root)" ? key : jsonChildPath(path, key);
  if (!value->is_string())
    return error(at, "expected a string, found " + describeJson(*value));
  if (required && value->get_ref<const std::string &>().empty())
    return error(at, "expected a non-empty string");
  return value->get<std::string>();
}

Result<int64_t> ManifestReader::getInteger(const Json &object, const char *key,
                                           const std::string &path) const {
  auto value = object.find(key);
  if (value == object.end())
    return error(path, std::string("missing key '") + key + "'");
  std::optional<int64_t> integer = jsonInteger(*value);
  if (!integer)
    return error(jsonChildPath(path, key),
                 "expected an integer, found " + describeJson(*value));
  return *integer;
}

Result<std::vector<int64_t>>
ManifestReader::getShape(const Json &object, const std::string &path) const {
  auto value = object.find("shape");
  if (value == object.end())
    return error(path, "missing key 'shape'");
  if (!value->is_array())
    return error(path + ".shape", "expected an array of integers, found " +
                                      describeJson(*value));
  std::vector<int64_t> shape;
  for (size_t i = 0; i < value->size(); ++i) {
    std::optional<int64_t> dim = jsonInteger((*value)[i]);
    if (!dim || *dim < kDynamic)
      return error(jsonElementPath(path + ".shape", i),
                   "expected a non-negative integer or -1, found " +
                       describeJson((*value)[i]));
    shape.push_back(*dim);
  }
  return shape;
}

/// "atmoe-compiled/3", or a message that says which side is out of date.
Status ManifestReader::checkFormat(const Json &root) const {
  Result<std::string> format = getString(root, "format", "(root)");
  if (!format)
    return format.takeError();
  std::string expected = manifestFormatId();
  if (*format == expected)
    return Status::success();
  // "atmoe-compiled/<digits>" of another version, else not ours.
  std::string_view id = *format;
  int version = 0;
  std::string head = std::string(kManifestFormat) + "/";
  std::string_view digits =
      id.substr(0, head.size()) == head ? id.substr(head.size()) : "";
  if (!digits.empty() && digits.size() < 6 &&
      digits.find_first_not_of("0123456789") == std::string_view::npos)
    version = std::stoi(std::string(digits));
  std::string runtime = "this runtime (atmoe " + std::string(atmoeVersion()) +
                        ") reads " + expected;
  if (version > kManifestVersion) {
    std::string producer =
        root.contains("producer") && root["producer"].is_string()
            ? ", by " + root["producer"].get<std::string>()
            : "";
    return fail(origin + ": compiled by a newer atmoe-compile (manifest " +
                *format + producer + "); " + runtime +
                ": use a runtime at least as new as the compiler");
  }
  if (version > 0)
    return fail(origin + ": compiled by an older atmoe-compile (manifest " +
                *format + "); " + runtime + ": compile the model again");
  return error("format",
               "expected \"" + expected + "\", found \"" + *format + "\"");
}

Status ManifestReader::readHeader(const Json &root, Manifest &manifest) const {
  for (auto [key, field] :
       {std::pair<const char *, std::string *>{"model", &manifest.model},
        {"target", &manifest.target},
        {"compiled_for", &manifest.compiledFor},
        {"producer", &manifest.producer}}) {
    Result<std::string> value = getString(root, key, "(root)", false);
    if (!value)
      return value.takeError();
    *field = *value;
  }
  Result<std::string> device = getString(root, "device", "(root)", false);
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
  return readParallel(root, manifest);
}

/// "parallel" (optional): {"kind": "tensor" | "expert", "ranks": N >= 2}.
Status ManifestReader::readParallel(const Json &root,
                                    Manifest &manifest) const {
  auto parallel = root.find("parallel");
  if (parallel == root.end())
    return Status::success();
  if (!parallel->is_object())
    return error("parallel",
                 "expected an object, found " + describeJson(*parallel));
  Result<std::string> kind = getString(*parallel, "kind", "parallel");
  if (!kind)
    return kind.takeError();
  if (*kind != "tensor" && *kind != "expert")
    return error("parallel.kind",
                 "expected \"tensor\" or \"expert\", found \"" + *kind + "\"");
  manifest.parallelKind = *kind;
  Result<int64_t> ranks = getInteger(*parallel, "ranks", "parallel");
  if (!ranks)
    return ranks.takeError();
  if (*ranks < 2)
    return error("parallel.ranks",
                 "expected at least 2, found " + std::to_string(*ranks));
  manifest.ranks = *ranks;
  return Status::success();
}

/// "sources" (optional): [{"file": relative path, "json": content}].
Status ManifestReader::readSources(const Json &root, Manifest &manifest) const {
  auto sources = root.find("sources");
  if (sources == root.end())
    return Status::success();
  if (!sources->is_array())
    return error("sources",
                 "expected an array, found " + describeJson(*sources));
  for (size_t i = 0; i < sources->size(); ++i) {
    std::string path = jsonElementPath("sources", i);
    const Json &entry = (*sources)[i];
    if (!entry.is_object() || !entry.contains("json"))
      return error(path, "expected {\"file\": ..., \"json\": ...}, found " +
                             describeJson(entry));
    Result<std::string> file = getString(entry, "file", path);
    if (!file)
      return file.takeError();
    if (!isPackageRelative(*file))
      return error(path + ".file",
                   "expected a path inside the package, found \"" + *file +
                       "\"");
    manifest.sources.push_back({*file, entry["json"]});
  }
  return Status::success();
}

Result<Manifest> ManifestReader::read(std::string_view text) {
  Result<Json> root = parseJson(text);
  if (!root)
    return fail(prefix + "invalid JSON: " + root.error());
  if (!root->is_object())
    return error("(root)", "expected an object, found " + describeJson(*root));
  Manifest manifest;
  if (Status status = checkFormat(*root); !status)
    return status.takeError();
  if (Status status = readHeader(*root, manifest); !status)
    return status.takeError();
  if (Status status = readSources(*root, manifest); !status)
    return status.takeError();
  auto layers = root->find("layers");
  if (layers == root->end())
    return error("(root)", "missing key 'layers'");
  if (!layers->is_array())
    return error("layers", "expected an array, found " + describeJson(*layers));
  if (layers->empty())
    return error("layers", "expected at least one layer");
  std::set<int64_t> indices;
  for (size_t i = 0; i < layers->size(); ++i) {
    std::string path = jsonElementPath("layers", i);
    Result<Layer> layer = readLayer((*layers)[i], path);
    if (!layer)
      return layer.takeError();
    if (!indices.insert(layer->index).second)
      return error(path + ".index",
                   "duplicate layer index " + std::to_string(layer->index));
    if (Status status = validateShards(*layer, manifest.ranks, prefix + path);
        !status)
      return status.takeError();
    manifest.layers.push_back(std::move(*layer));
  }
  if (manifest.ranks > 1 && manifest.device != Device::CPU)
    return error("parallel", "only CPU models run split over processes");
  return manifest;
}

Result<Layer> ManifestReader::readLayer(const Json &value,
                                        const std::string &path) const {
  if (!value.is_object())
    return error(path, "expected an object, found " + describeJson(value));
  Layer layer;
  Result<int64_t> index = getInteger(value, "index", path);
  if (!index)
    return index.takeError();
  if (*index < 0)
    return error(path + ".index", "expected a non-negative integer, found " +
                                      std::to_string(*index));
  layer.index = *index;
  Result<std::string> entry = getString(value, "entry", path);
  Result<std::string> function = getString(value, "function", path, false);
  Result<std::string> granularity =
      getString(value, "granularity", path, false);
  for (Result<std::string> *field : {&entry, &function, &granularity})
    if (!*field)
      return field->takeError();
  layer.entry = *entry;
  layer.function = *function;
  if (*granularity == "sequence")
    layer.granularity = Granularity::Sequence;
  else if (!granularity->empty() && *granularity != "token")
    return error(path + ".granularity",
                 "expected \"token\" or \"sequence\", found \"" + *granularity +
                     "\"");
  if (Status status = readExperts(value, path, layer); !status)
    return status.takeError();

  auto arguments = value.find("arguments");
  if (arguments == value.end())
    return error(path, "missing key 'arguments'");
  if (!arguments->is_array())
    return error(path + ".arguments",
                 "expected an array, found " + describeJson(*arguments));
  for (size_t i = 0; i < arguments->size(); ++i) {
    Result<Argument> argument =
        readArgument((*arguments)[i], jsonElementPath(path + ".arguments", i));
    if (!argument)
      return argument.takeError();
    layer.arguments.push_back(std::move(*argument));
  }
  if (Status status = validateLayer(layer, prefix, path); !status)
    return status.takeError();
  // The experts list and granularity only matter with a router, which the
  // arguments decide.
  if (layer.hasRouter() && !value.contains("granularity"))
    return error(path, "missing key 'granularity' (the layer has a router)");
  return layer;
}

Status ManifestReader::readExperts(const Json &object, const std::string &path,
                                   Layer &layer) const {
  auto experts = object.find("experts");
  if (experts == object.end())
    return Status::success();
  if (!experts->is_array())
    return error(path + ".experts", "expected an array of strings, found " +
                                        describeJson(*experts));
  std::set<std::string> seen;
  for (size_t i = 0; i < experts->size(); ++i) {
    const Json &name = (*experts)[i];
    std::string at = jsonElementPath(path + ".experts", i);
    if (!name.is_string() || name.get_ref<const std::string &>().empty())
      return error(at,
                   "expected a non-empty string, found " + describeJson(name));
    if (!seen.insert(name.get<std::string>()).second)
      return error(at, "duplicate expert '" + name.get<std::string>() + "'");
    layer.experts.push_back(name.get<std::string>());
  }
  return Status::success();
}

Status ManifestReader::readRoleTypeShape(const Json &object,
                                         const std::string &path,
                                         Argument &argument) const {
  Result<std::string> role = getString(object, "role", path);
  if (!role)
    return role.takeError();
  if (*role == "input")
    argument.role = ArgumentRole::Input;
  else if (*role == "weight")
    argument.role = ArgumentRole::Weight;
  else if (*role == "output")
    argument.role = ArgumentRole::Output;
  else
    return error(path + ".role",
                 "expected \"input\", \"weight\" or \"output\", found \"" +
                     *role + "\"");
  Result<std::string> dtype = getString(object, "dtype", path);
  if (!dtype)
    return dtype.takeError();
  std::optional<ElementType> type = parseElementType(*dtype);
  if (!type)
    return error(path + ".dtype",
                 "expected \"f32\", \"f16\", \"bf16\", \"i32\" or \"i64\", "
                 "found \"" +
                     *dtype + "\"");
  argument.elementType = *type;
  Result<std::vector<int64_t>> shape = getShape(object, path);
  if (!shape)
    return shape.takeError();
  argument.shape = std::move(*shape);
  Result<std::string> memory = getString(object, "memory", path, false);
  if (!memory)
    return memory.takeError();
  if (!memory->empty() && *memory != "host" && *memory != "device")
    return error(path + ".memory",
                 "expected \"host\" or \"device\", found \"" + *memory + "\"");
  argument.inHostMemory = *memory == "host";
  return Status::success();
}

Result<Argument> ManifestReader::readArgument(const Json &value,
                                              const std::string &path) const {
  if (!value.is_object())
    return error(path, "expected an object, found " + describeJson(value));
  Argument argument;
  if (Status status = readRoleTypeShape(value, path, argument); !status)
    return status.takeError();
  if (argument.role != ArgumentRole::Weight) {
    Result<std::string> name = getString(value, "name", path);
    if (!name)
      return name.takeError();
    argument.name = *name;
    return argument;
  }
  if (value.contains("parts")) {
    Status status = value.contains("dora_scale")
                        ? readDoraScaleWeight(value, path, argument)
                        : readStackedWeight(value, path, argument);
    if (!status)
      return status.takeError();
  } else {
    Result<Argument> weight = readWeightSource(value, path);
    if (!weight)
      return weight.takeError();
    argument.name = weight->name;
    argument.file = weight->file;
    argument.source = weight->source;
  }
  bool isFloat = argument.elementType != ElementType::I32 &&
                 argument.elementType != ElementType::I64;
  if (argument.elementType == ElementType::I64 ||
      (!isFloat && !argument.parts.empty()))
    return error(
        path + ".dtype",
        "expected \"f32\", \"f16\" or \"bf16\"" +
            std::string(argument.parts.empty() ? " (or \"i32\")" : "") +
            " for weight '" + argument.name + "', found \"" +
            std::string(stringifyElementType(argument.elementType)) + "\"");
  for (size_t i = 0; i < argument.shape.size(); ++i)
    if (argument.shape[i] == kDynamic)
      return error(jsonElementPath(path + ".shape", i),
                   "weight '" + argument.name + "' must have a static shape");
  if (value.contains("shard_dim")) {
    Result<int64_t> dim = getInteger(value, "shard_dim", path);
    if (!dim)
      return dim.takeError();
    if (*dim < 0)
      return error(path + ".shard_dim",
                   "expected a dimension, found " + std::to_string(*dim));
    argument.shardDim = *dim;
  }
  if (value.contains("panel_dim")) {
    Result<int64_t> dim = getInteger(value, "panel_dim", path);
    if (!dim)
      return dim.takeError();
    if (*dim != 0 && *dim != 1)
      return error(path + ".panel_dim",
                   "expected 0 or 1, found " + std::to_string(*dim));
    argument.panelDim = *dim;
  }
  if (value.contains("panel")) {
    Result<int64_t> width = getInteger(value, "panel", path);
    if (!width)
      return width.takeError();
    bool packable = argument.parts.empty() && argument.shape.size() == 2 &&
                    argument.shardDim < 0;
    if (!packable || *width < 1 ||
        argument.shape[argument.panelDim] % *width != 0)
      return error(path + ".panel", "expected a width that divides dimension " +
                                        std::to_string(argument.panelDim) +
                                        " of an unsplit 2-D weight, found " +
                                        std::to_string(*width) +
                                        " for weight '" + argument.name +
                                        "' of shape " +
                                        formatShape(argument.shape));
    argument.panelWidth = *width;
  }
  return argument;
}

/// The file, source and name of a weight or of a part of a stacked one.
Result<Argument>
ManifestReader::readWeightSource(const Json &object,
                                 const std::string &path) const {
  Argument weight;
  weight.role = ArgumentRole::Weight;
  Result<std::string> file = getString(object, "file", path);
  if (!file)
    return file.takeError();
  // Weights live inside the package; an absolute path would silently read
  // whatever file it names instead of the package being bound.
  if (file->front() == '/')
    return error(path + ".file",
                 "expected a path relative to the model package, found \"" +
                     *file + "\"");
  Result<std::string> source = getString(object, "source", path);
  if (!source)
    return source.takeError();
  Result<std::string> tensor = getString(object, "tensor", path, false);
  if (!tensor)
    return tensor.takeError();
  weight.file = *file;
  weight.source = *source;
  weight.name = tensor->empty() ? *source : *tensor;
  return weight;
}

/// The tensor name and the parts of a weight built at bind time, each a
/// plain weight with a static shape.
Status ManifestReader::readParts(const Json &object, const std::string &path,
                                 Argument &argument) const {
  Result<std::string> tensor = getString(object, "tensor", path);
  if (!tensor)
    return tensor.takeError();
  argument.name = *tensor;
  const Json &parts = object["parts"];
  if (!parts.is_array() || parts.empty())
    return error(path + ".parts", "expected a non-empty array of weights");
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string partPath = jsonElementPath(path + ".parts", i);
    if (!parts[i].is_object())
      return error(partPath, "expected an object");
    Result<std::vector<int64_t>> shape = getShape(parts[i], partPath);
    if (!shape)
      return shape.takeError();
    Result<Argument> part = readWeightSource(parts[i], partPath);
    if (!part)
      return part.takeError();
    part->shape = std::move(*shape);
    for (int64_t extent : part->shape)
      if (extent < 0)
        return error(partPath + ".shape", "expected a static shape");
    argument.parts.push_back(std::move(*part));
  }
  return Status::success();
}

/// DoRA's scale computed at bind time (atmoe-hoist-dora-scale) from W
/// (d_out x d_in), A (r x d_in), B (d_out x r) and the magnitude m (d_out),
/// at a finite `dora_scale`: c itself (f32 of shape [d_out]) or the rows of B
/// scaled by it (f32 of shape [d_out, r]).
Status ManifestReader::readDoraScaleWeight(const Json &object,
                                           const std::string &path,
                                           Argument &argument) const {
  const Json &scale = object["dora_scale"];
  if (!scale.is_number() || !std::isfinite(scale.get<double>()))
    return error(path + ".dora_scale", "expected a finite number");
  argument.doraScale = scale.get<double>();
  if (Status status = readParts(object, path, argument); !status)
    return status;
  if (argument.elementType != ElementType::F32 || argument.shape.empty() ||
      argument.shape.size() > 2)
    return error(path, "a DoRA scale is an f32 vector, or an f32 matrix of "
                       "lora_B's scaled rows");
  const std::vector<Argument> &parts = argument.parts;
  int64_t out = argument.shape[0];
  bool fits = parts.size() == 4 && parts[0].shape.size() == 2 &&
              parts[1].shape.size() == 2 && parts[2].shape.size() == 2 &&
              parts[3].shape.size() == 1;
  if (fits) {
    int64_t in = parts[0].shape[1], rank = parts[1].shape[0];
    fits = parts[0].shape[0] == out && parts[1].shape[1] == in &&
           parts[2].shape[0] == out && parts[2].shape[1] == rank &&
           parts[3].shape[0] == out &&
           (argument.shape.size() == 1 || argument.shape[1] == rank);
  }
  if (!fits)
    return error(path + ".parts",
                 "expected the weight [" + std::to_string(out) +
                     ", d_in], lora_A [r, d_in], lora_B [" +
                     std::to_string(out) + ", r] and magnitude [" +
                     std::to_string(out) + "] of a DoRA scale (of shape [" +
                     std::to_string(out) + "] or [" + std::to_string(out) +
                     ", r])");
  return Status::success();
}

/// A weight the compiler stacks from several tensors (atmoe-hoist-weight-
/// concat): every part is a plain weight, and the parts tile the stacked
/// shape along `concat_dim`.
Status ManifestReader::readStackedWeight(const Json &object,
                                         const std::string &path,
                                         Argument &argument) const {
  int64_t rank = int64_t(argument.shape.size());
  std::optional<int64_t> dim = object.contains("concat_dim")
                                   ? jsonInteger(object["concat_dim"])
                                   : std::nullopt;
  if (!dim || *dim < 0 || *dim >= rank)
    return error(path + ".concat_dim",
                 "expected a dimension of the stacked shape " +
                     formatShape(argument.shape));
  argument.concatDim = *dim;
  if (Status status = readParts(object, path, argument); !status)
    return status;
  int64_t covered = 0;
  for (size_t i = 0; i < argument.parts.size(); ++i) {
    const Argument &part = argument.parts[i];
    std::string partPath = jsonElementPath(path + ".parts", i);
    if (int64_t(part.shape.size()) != rank)
      return error(partPath + ".shape",
                   "expected rank " + std::to_string(rank));
    for (int64_t d = 0; d < rank; ++d)
      if (d != *dim && part.shape[d] != argument.shape[d])
        return error(partPath + ".shape",
                     "expected " + formatShape(argument.shape) +
                         " outside dimension " + std::to_string(*dim) +
                         ", found " + formatShape(part.shape));
    covered += part.shape[*dim];
  }
  if (covered != argument.shape[*dim])
    return error(path + ".parts", "parts cover " + std::to_string(covered) +
                                      " of dimension " + std::to_string(*dim) +
                                      ", the stacked shape " +
                                      formatShape(argument.shape) + " has " +
                                      std::to_string(argument.shape[*dim]));
  return Status::success();
}

} // namespace

Result<Manifest> atmoe_rt::readManifest(std::string_view text,
                                        const std::string &origin) {
  return ManifestReader(origin).read(text);
}
