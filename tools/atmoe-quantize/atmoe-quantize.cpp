//===- atmoe-quantize.cpp - GPTQ base weights for a model package ---------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-quantize PKG --bits 4|8 --group-size N [--sym|--asym]
//                [--adapter-dtype bf16|f16|f32] [--checkpoint-format
//                gptq|gptq_v2] -o OUT_PKG
//
// Writes a copy of a float model package whose base weights are quantised
// group-wise (round to nearest) in Hugging Face's "gptq" checkpoint layout
// (qweight, qzeros, scales; docs/Importer.md), with a "quantization" object in
// model.json, the adapters optionally converted to another float type, and
// everything else copied as is. Prints the weight error of every projection.
// The output directory appears complete or not at all.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Fault.h"
#include "atmoe_rt/support/Json.h"
#include "atmoe_rt/support/Manifest.h"
#include "atmoe_rt/support/MappedFile.h"
#include "atmoe_rt/support/Options.h"
#include "atmoe_rt/support/OutputFile.h"
#include "atmoe_rt/support/Result.h"
#include "atmoe_rt/support/SafeTensors.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <getopt.h>
#include <map>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace atmoe_rt;

namespace {

constexpr const char *kUsage =
    "atmoe-quantize: GPTQ base weights for an atmoe model package\n\n"
    "  atmoe-quantize PKG --bits 4|8 --group-size N [--sym|--asym]\n"
    "                 [--adapter-dtype bf16|f16|f32]\n"
    "                 [--checkpoint-format gptq|gptq_v2] -o OUT_PKG\n\n"
    "  --bits B               bits per value: 4 or 8\n"
    "  --group-size N         input features per scale and zero point (a\n"
    "                         divisor of every in_features), or -1 for one\n"
    "                         group per row\n"
    "  --sym / --asym         symmetric (zero point 2^(B-1), the default) or\n"
    "                         asymmetric quantisation\n"
    "  --adapter-dtype T      store the LoRA adapters (lora_A, lora_B) as T\n"
    "                         (default: as they are)\n"
    "  --checkpoint-format F  gptq (zero points stored minus one, the\n"
    "                         default) or gptq_v2\n"
    "  -o OUT_PKG             the package to write (must not exist)\n"
    "  --version              print the atmoe version\n\n";

struct Options {
  std::string package, output;
  int bits = 0;
  int64_t groupSize = 0;
  bool sym = true;
  std::optional<DType> adapterDtype;
  bool v2 = false;
};

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

enum OptionId {
  Bits = 1,
  GroupSize,
  Sym,
  Asym,
  AdapterDtype,
  Format,
  Help,
  Version
};

Result<long long> parseInteger(const char *text, const char *option) {
  char *end = nullptr;
  errno = 0;
  long long value = std::strtoll(text, &end, 10);
  if (errno || end == text || *end)
    return usageError(std::string("--") + option +
                      ": expected an integer, found '" + text + "'");
  return value;
}

Status applyOption(int code, Options &options) {
  if (code == Bits || code == GroupSize) {
    Result<long long> value =
        parseInteger(optarg, code == Bits ? "bits" : "group-size");
    if (!value)
      return value.takeError();
    if (code == Bits && *value != 4 && *value != 8)
      return usageError("--bits: expected 4 or 8, found " +
                        std::string(optarg));
    if (code == GroupSize && *value <= 0 && *value != -1)
      return usageError("--group-size: expected a positive size or -1, found " +
                        std::string(optarg));
    if (code == Bits)
      options.bits = int(*value);
    else
      options.groupSize = *value;
  } else if (code == Sym || code == Asym) {
    options.sym = code == Sym;
  } else if (code == AdapterDtype) {
    std::string name = optarg;
    std::map<std::string, DType> types = {
        {"f32", DType::F32}, {"f16", DType::F16}, {"bf16", DType::BF16}};
    if (!types.count(name))
      return usageError("--adapter-dtype: expected f32, f16 or bf16, found '" +
                        name + "'");
    options.adapterDtype = types[name];
  } else if (code == Format) {
    std::string name = optarg;
    if (name != "gptq" && name != "gptq_v2")
      return usageError(
          "--checkpoint-format: expected gptq or gptq_v2, found '" + name +
          "'");
    options.v2 = name == "gptq_v2";
  } else if (code == 'o') {
    options.output = optarg;
  }
  return Status::success();
}

/// The options, or nullopt after --help / --version.
Result<std::optional<Options>> parseCommandLine(int argc, char **argv) {
  static const option longOptions[] = {
      {"bits", required_argument, nullptr, Bits},
      {"group-size", required_argument, nullptr, GroupSize},
      {"sym", no_argument, nullptr, Sym},
      {"asym", no_argument, nullptr, Asym},
      {"adapter-dtype", required_argument, nullptr, AdapterDtype},
      {"checkpoint-format", required_argument, nullptr, Format},
      {"help", no_argument, nullptr, Help},
      {"version", no_argument, nullptr, Version},
      {nullptr, 0, nullptr, 0}};
  Options options;
  Result<bool> parsed = parseOptions(
      argc, argv, ":o:", longOptions, {"atmoe-quantize", kUsage, Help, Version},
      [&](int code) { return applyOption(code, options); });
  if (!parsed)
    return parsed.takeError();
  if (!*parsed)
    return std::optional<Options>();
  if (optind + 1 != argc)
    return usageError(optind == argc ? "missing the model package PKG"
                                     : "expected one model package, found '" +
                                           std::string(argv[optind + 1]) + "'");
  options.package = argv[optind];
  if (!options.bits)
    return usageError("missing --bits 4|8");
  if (!options.groupSize)
    return usageError("missing --group-size N");
  if (options.output.empty())
    return usageError("missing -o OUT_PKG");
  return std::optional<Options>(options);
}

//===----------------------------------------------------------------------===//
// Quantisation
//===----------------------------------------------------------------------===//

uint16_t toBFloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value))
    return uint16_t((bits >> 16) | 0x40);
  bits += 0x7FFF + ((bits >> 16) & 1); // round to nearest even
  return uint16_t(bits >> 16);
}

uint16_t toHalf(float value) {
  _Float16 half = static_cast<_Float16>(value);
  uint16_t bits;
  std::memcpy(&bits, &half, sizeof(bits));
  return bits;
}

float fromHalf(uint16_t bits) {
  _Float16 half;
  std::memcpy(&half, &bits, sizeof(bits));
  return static_cast<float>(half);
}

template <typename T>
void appendBytes(std::vector<uint8_t> &out, T value) {
  const auto *bytes = reinterpret_cast<const uint8_t *>(&value);
  out.insert(out.end(), bytes, bytes + sizeof(T));
}

/// One projection's base weight in GPTQ form, and its error.
struct Quantized {
  std::vector<uint32_t> qweight, qzeros; // [in / P, out], [groups, out / P]
  std::vector<uint16_t> scales;          // f16 [groups, out]
  double maxError = 0, sumError = 0;
};

/// Round to nearest, group by group, as GPTQ's quantiser does without its
/// error compensation: symmetric scale 2 max|w| / maxq around 2^(bits-1),
/// or asymmetric (max(w, 0) - min(w, 0)) / maxq with zero round(-min / s).
/// The scale is rounded to f16 first, so the error is the stored one's.
Quantized quantize(const std::vector<float> &w, int64_t out, int64_t in,
                   int64_t group, const Options &options) {
  int bits = options.bits, perWord = 32 / bits, maxq = (1 << bits) - 1;
  int64_t groups = in / group;
  Quantized result;
  result.qweight.assign(in / perWord * out, 0);
  result.qzeros.assign(groups * out / perWord, 0);
  result.scales.assign(groups * out, 0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < groups; ++g) {
      const float *row = w.data() + o * in + g * group;
      float low = 0, high = 0;
      for (int64_t i = 0; i < group; ++i) {
        low = std::min(low, row[i]);
        high = std::max(high, row[i]);
      }
      if (options.sym)
        high = std::max(-low, high), low = -high;
      if (low == high)
        low = -1, high = 1;
      uint16_t scaleBits = toHalf((high - low) / maxq);
      float scale = fromHalf(scaleBits);
      // v1 stores zero - 1: a zero point of 0 is not representable.
      int minZero = options.v2 ? 0 : 1;
      int zero = options.sym ? (maxq + 1) / 2
                             : std::clamp(int(std::lround(-low / scale)),
                                          minZero, maxq);
      result.scales[g * out + o] = scaleBits;
      uint32_t stored = uint32_t(zero - (options.v2 ? 0 : 1)) & maxq;
      result.qzeros[g * (out / perWord) + o / perWord] |=
          stored << (bits * (o % perWord));
      for (int64_t i = 0; i < group; ++i) {
        int q = std::clamp(int(std::lround(row[i] / scale)) + zero, 0, maxq);
        int64_t k = g * group + i;
        result.qweight[(k / perWord) * out + o] |= uint32_t(q)
                                                   << (bits * (k % perWord));
        double error = std::fabs(double(scale) * (q - zero) - row[i]);
        result.maxError = std::max(result.maxError, error);
        result.sumError += error;
      }
    }
  }
  return result;
}

//===----------------------------------------------------------------------===//
// The package
//===----------------------------------------------------------------------===//

struct Projection {
  std::string prefix; // "layers.{i}.{name}."
  std::string path;   // "layers[l].projections[p]"
  int64_t in = 0, out = 0;
};

Result<std::string> readText(const std::string &path,
                             std::string_view expected) {
  Result<std::unique_ptr<MappedFile>> file = MappedFile::open(path, expected);
  if (!file)
    return file.takeError();
  return std::string((*file)->contents());
}

/// A package-relative path that stays inside the package.
bool isInside(const std::string &relative) {
  if (relative.empty() || relative.front() == '/')
    return false;
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (relative.substr(start, end - start) == "..")
      return false;
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return true;
}

/// What the tool needs of model.json (atmoe-compile validates the rest).
struct Package {
  nlohmann::ordered_json model;
  std::vector<std::string> weightFiles, peftDirs;
  std::map<std::string, Projection> projections; // by weight tensor name
};

Status readProjections(const Json &model, Package &package) {
  Json layers = model.value("layers", Json::array());
  for (size_t l = 0; l < layers.size(); ++l) {
    Json projections = layers[l].value("projections", Json::array());
    for (size_t p = 0; p < projections.size(); ++p) {
      const Json &entry = projections[p];
      Projection projection;
      projection.prefix = "layers." +
                          std::to_string(layers[l].value("index", 0)) + "." +
                          entry.value("name", "") + ".";
      projection.path = "layers[" + std::to_string(l) + "].projections[" +
                        std::to_string(p) + "]";
      projection.in = entry.value("in_features", 0);
      projection.out = entry.value("out_features", 0);
      package.projections[projection.prefix + "weight"] = projection;
    }
  }
  return Status::success();
}

Result<Package> readPackage(const Options &options) {
  std::string jsonPath = options.package + "/model.json";
  Result<std::string> text = readText(jsonPath, "a model.json file");
  if (!text)
    return text.takeError();
  Result<Json> model = parseJson(*text);
  if (!model)
    return fail(jsonPath + ": " + model.error());
  if (!model->is_object() || model->value("format", "") != "atmoe-model/1")
    return fail(jsonPath +
                ": format: expected an \"atmoe-model/1\" model package");
  if (model->contains("quantization"))
    return fail(jsonPath + ": quantization: the package is already quantised");
  Package package;
  package.model = nlohmann::ordered_json::parse(*text, nullptr, false);
  for (const Json &file : model->value("weights", Json::array())) {
    std::string relative = file.is_string() ? file.get<std::string>() : "";
    if (!isInside(relative))
      return fail(jsonPath + ": weights: '" + relative +
                  "' is not inside the package: the quantised package must "
                  "hold all of its files");
    package.weightFiles.push_back(relative);
  }
  // value() returns a copy: it must outlive the loop over its items.
  Json experts = model->value("experts", Json::object());
  for (const auto &[name, expert] : experts.items())
    if (expert.is_object() && expert.contains("peft") &&
        expert["peft"].is_string()) {
      std::string dir = expert["peft"].get<std::string>();
      if (!isInside(dir))
        return fail(jsonPath + ": experts." + name + ".peft: '" + dir +
                    "' is not inside the package");
      package.peftDirs.push_back(dir);
    }
  if (Status status = readProjections(*model, package); !status)
    return status.takeError();
  return package;
}

/// The group size of `projection`, or the error naming it.
Result<int64_t> groupSizeFor(const Projection &projection,
                             const Options &options) {
  int64_t group = options.groupSize == -1 ? projection.in : options.groupSize;
  int64_t perWord = 32 / options.bits;
  if (projection.in <= 0 || projection.in % group)
    return fail(Fault::Usage, "--group-size " + std::to_string(group) +
                                  " does not divide in_features " +
                                  std::to_string(projection.in) + " of " +
                                  projection.path);
  if (projection.in % perWord || projection.out % perWord)
    return fail(projection.path + ": in_features " +
                std::to_string(projection.in) + " and out_features " +
                std::to_string(projection.out) + " must be multiples of " +
                std::to_string(perWord) + " to pack " +
                std::to_string(options.bits) + "-bit values");
  return group;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// The tensors of one output file: base weights quantised, adapters
/// converted, the rest as stored.
class FileRewriter {
public:
  FileRewriter(const Options &options, const Package &package)
      : options(options), package(package) {}

  Result<std::vector<TensorBytes>> rewrite(const SafeTensorsFile &file);

private:
  Status addQuantized(const SafeTensorsFile &file, const TensorInfo &info,
                      const Projection &projection,
                      std::vector<TensorBytes> &out);
  Status addConverted(const SafeTensorsFile &file, const TensorInfo &info,
                      std::vector<TensorBytes> &out);

  const Options &options;
  const Package &package;
};

Result<std::vector<TensorBytes>>
FileRewriter::rewrite(const SafeTensorsFile &file) {
  std::vector<TensorBytes> out;
  for (const TensorInfo &info : file.tensors()) {
    auto projection = package.projections.find(info.name);
    bool isAdapter = info.name.find(".lora_A.") != std::string::npos ||
                     info.name.find(".lora_B.") != std::string::npos;
    Status status = Status::success();
    if (projection != package.projections.end())
      status = addQuantized(file, info, projection->second, out);
    else if (isAdapter && options.adapterDtype)
      status = addConverted(file, info, out);
    else
      out.push_back(
          {info.name, info.dtype, info.shape,
           std::vector<uint8_t>(info.data, info.data + info.numBytes())});
    if (!status)
      return status.takeError();
  }
  return out;
}

Status FileRewriter::addQuantized(const SafeTensorsFile &file,
                                  const TensorInfo &info,
                                  const Projection &projection,
                                  std::vector<TensorBytes> &out) {
  if (info.shape != std::vector<int64_t>{projection.out, projection.in})
    return fail(file.path() + ": tensor '" + info.name + "': expected shape [" +
                std::to_string(projection.out) + ", " +
                std::to_string(projection.in) +
                "] (out_features x "
                "in_features of " +
                projection.path + ")");
  Result<int64_t> group = groupSizeFor(projection, options);
  if (!group)
    return group.takeError();
  Result<std::vector<float>> weight = file.readAsF32(info);
  if (!weight)
    return weight.takeError();
  Quantized q =
      quantize(*weight, projection.out, projection.in, *group, options);
  int64_t perWord = 32 / options.bits, groups = projection.in / *group;
  std::string name = projection.prefix;
  TensorBytes qweight{name + "qweight",
                      DType::I32,
                      {projection.in / perWord, projection.out},
                      {}};
  TensorBytes qzeros{
      name + "qzeros", DType::I32, {groups, projection.out / perWord}, {}};
  TensorBytes scales{name + "scales", DType::F16, {groups, projection.out}, {}};
  for (uint32_t word : q.qweight)
    appendBytes(qweight.data, word);
  for (uint32_t word : q.qzeros)
    appendBytes(qzeros.data, word);
  for (uint16_t scale : q.scales)
    appendBytes(scales.data, scale);
  out.push_back(std::move(qweight));
  out.push_back(std::move(qzeros));
  out.push_back(std::move(scales));
  std::printf("%s: %d-bit, group size %lld: max_abs_error=%.3g "
              "mean_abs_error=%.3g\n",
              name.substr(0, name.size() - 1).c_str(), options.bits,
              static_cast<long long>(*group), q.maxError,
              q.sumError / double(projection.in * projection.out));
  return Status::success();
}

Status FileRewriter::addConverted(const SafeTensorsFile &file,
                                  const TensorInfo &info,
                                  std::vector<TensorBytes> &out) {
  Result<std::vector<float>> values = file.readAsF32(info);
  if (!values)
    return values.takeError();
  TensorBytes tensor{info.name, *options.adapterDtype, info.shape, {}};
  for (float value : *values) {
    if (tensor.dtype == DType::F32)
      appendBytes(tensor.data, value);
    else
      appendBytes(tensor.data, tensor.dtype == DType::F16 ? toHalf(value)
                                                          : toBFloat16(value));
  }
  out.push_back(std::move(tensor));
  return Status::success();
}

/// Writes `relative` under `dir` (creating its parent directories) with
/// `write`; the file is removed if the process is interrupted.
Status writeInto(const std::string &dir, const std::string &relative,
                 const std::function<Status(int)> &write) {
  std::string path = dir + "/" + relative;
  for (size_t slash = path.find('/', dir.size() + 1);
       slash != std::string::npos; slash = path.find('/', slash + 1)) {
    std::string parent = path.substr(0, slash);
    if (::mkdir(parent.c_str(), 0777) == 0)
      removeOnInterrupt(parent);
    else if (errno != EEXIST)
      return fail(parent +
                  ": cannot create the directory: " + std::strerror(errno));
  }
  removeOnInterrupt(path);
  return writeFileAtomically(path, write);
}

Status writeSafeTensorsFile(const std::string &source, const std::string &dir,
                            const std::string &relative,
                            FileRewriter &rewriter) {
  Result<std::unique_ptr<SafeTensorsFile>> file = SafeTensorsFile::open(source);
  if (!file)
    return file.takeError();
  Result<std::vector<TensorBytes>> tensors = rewriter.rewrite(**file);
  if (!tensors)
    return tensors.takeError();
  return writeInto(dir, relative, [&](int fd) {
    return writeSafeTensors(fd, dir + "/" + relative, *tensors);
  });
}

Status writeText(const std::string &dir, const std::string &relative,
                 const std::string &text) {
  return writeInto(dir, relative, [&](int fd) {
    return writeAll(fd, text.data(), text.size(), dir + "/" + relative);
  });
}

Status writePackage(const Options &options, Package &package,
                    const std::string &dir) {
  FileRewriter rewriter(options, package);
  for (const std::string &relative : package.weightFiles)
    if (Status status = writeSafeTensorsFile(options.package + "/" + relative,
                                             dir, relative, rewriter);
        !status)
      return status;
  for (const std::string &peft : package.peftDirs) {
    Result<std::string> config =
        readText(options.package + "/" + peft + "/adapter_config.json",
                 "an adapter_config.json file");
    if (!config)
      return config.takeError();
    if (Status status = writeText(dir, peft + "/adapter_config.json", *config);
        !status)
      return status;
    if (Status status = writeSafeTensorsFile(
            options.package + "/" + peft + "/adapter_model.safetensors", dir,
            peft + "/adapter_model.safetensors", rewriter);
        !status)
      return status;
  }
  package.model["quantization"] = {
      {"method", "gptq"},
      {"bits", options.bits},
      {"group_size", options.groupSize},
      {"sym", options.sym},
      {"desc_act", false},
      {"checkpoint_format", options.v2 ? "gptq_v2" : "gptq"}};
  return writeText(dir, "model.json", package.model.dump(2) + "\n");
}

Status run(const Options &options) {
  struct stat info;
  if (::stat(options.output.c_str(), &info) == 0)
    return fail(options.output +
                ": already exists (atmoe-quantize writes a new package)");
  Result<Package> package = readPackage(options);
  if (!package)
    return package.takeError();
  return writeDirectoryAtomically(options.output, "atmoe-quantize",
                                  [&](const std::string &dir) {
                                    return writePackage(options, *package, dir);
                                  });
}

} // namespace

int main(int argc, char **argv) {
  Result<std::optional<Options>> options = parseCommandLine(argc, argv);
  if (!options) {
    std::fprintf(stderr, "atmoe-quantize: error: %s\n",
                 options.error().c_str());
    return exitCode(options.fault());
  }
  if (!*options)
    return kExitSuccess;
  if (Status status = run(**options); !status) {
    std::fprintf(stderr, "atmoe-quantize: error: %s\n", status.error().c_str());
    return exitCode(status.fault());
  }
  return kExitSuccess;
}
