//===- atmoe-run.cpp - Run one layer of a compiled model --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-run COMPILED --model MODEL_DIR --layer L --x X.npy [--x PROJ=X2.npy]
//           [--h H.npy] [--segments T1,T2,...] --out-dir DIR [--repeat N]
//
// Opens a compiled model through the runtime (atmoe_rt.h), binds the weights
// of MODEL_DIR, runs layer L once and writes DIR/{proj}.npy per projection
// and DIR/routing.npy. With --repeat N it then times N more runs and prints
// one line with the median and minimum. Every failure is one line on stderr,
// "atmoe-run: error: ...", and the exit code of its fault (Fault.h). The
// outputs replace an earlier run's only when the whole run (timing line
// included) has succeeded: a failed or interrupted run leaves --out-dir as it
// was. Like the runtime, the tool
// needs no LLVM: it ships with the runtime (docs/Deployment.md).
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/atmoe_rt.h"

#include "atmoe_rt/support/Fault.h"
#include "atmoe_rt/support/Npy.h"
#include "atmoe_rt/support/Options.h"
#include "atmoe_rt/support/OutputFile.h"
#include "atmoe_rt/support/Result.h"
#include "atmoe_rt/support/Text.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <getopt.h>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace atmoe_rt;

namespace {

constexpr const char *kUsage =
    "atmoe-run: run one layer of a compiled atmoe model\n\n"
    "  atmoe-run COMPILED --model MODEL_DIR --layer L --x X.npy\n"
    "            [--x PROJ=X2.npy ...] [--h H.npy] [--segments T1,T2,...]\n"
    "            --out-dir DIR [--repeat N]\n\n"
    "  --model DIR        model package whose safetensors files hold the "
    "weights\n"
    "  --layer L          index of the layer to run (its \"index\" in the "
    "model)\n"
    "  --x [PROJ=]FILE    projection input, T x d_in (.npy, f32 or f64): "
    "FILE for\n"
    "                     every projection, PROJ=FILE for one\n"
    "  --h FILE           router input (.npy): T x d_h, or S x d_h for "
    "sequence\n"
    "                     granularity (default: the bare --x)\n"
    "  --segments T1,...  sequence lengths summing to T (default: one "
    "sequence)\n"
    "  --out-dir DIR      directory for {proj}.npy and routing.npy (created "
    "if\n"
    "                     missing)\n"
    "  --repeat N         after the first run, time N more runs and print "
    "the\n"
    "                     median and minimum\n"
    "  --version          print the atmoe version\n\n";

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

/// The command line as given, before its values are interpreted.
struct CommandLine {
  std::string compiled;
  std::optional<std::string> model, layer, h, segments, outDir, repeat;
  std::vector<std::string> xs;
  bool help = false, version = false;
};

enum OptionId {
  Model = 1,
  Layer,
  X,
  H,
  Segments,
  OutDir,
  Repeat,
  Help,
  Version
};

/// Stores the value of an option that may be given once.
Status setOnce(std::optional<std::string> &field, const char *name) {
  if (field)
    return usageError(std::string("--") + name + " is given more than once");
  field = optarg;
  return Status::success();
}

Result<CommandLine> parseCommandLine(int argc, char **argv) {
  static const option options[] = {
      {"model", required_argument, nullptr, Model},
      {"layer", required_argument, nullptr, Layer},
      {"x", required_argument, nullptr, X},
      {"h", required_argument, nullptr, H},
      {"segments", required_argument, nullptr, Segments},
      {"out-dir", required_argument, nullptr, OutDir},
      {"repeat", required_argument, nullptr, Repeat},
      {"help", no_argument, nullptr, Help},
      {"version", no_argument, nullptr, Version},
      {nullptr, 0, nullptr, 0}};
  CommandLine line;
  std::map<int, std::pair<std::optional<std::string> *, const char *>> once = {
      {Model, {&line.model, "model"}},
      {Layer, {&line.layer, "layer"}},
      {H, {&line.h, "h"}},
      {Segments, {&line.segments, "segments"}},
      {OutDir, {&line.outDir, "out-dir"}},
      {Repeat, {&line.repeat, "repeat"}}};
  if (Result<bool> parsed =
          parseOptions(argc, argv, ":", options, {"atmoe-run"},
                       [&](int code) {
                         if (code == X)
                           line.xs.push_back(optarg);
                         else if (code == Help || code == Version)
                           (code == Help ? line.help : line.version) = true;
                         else
                           return setOnce(*once[code].first, once[code].second);
                         return Status::success();
                       });
      !parsed)
    return parsed.takeError();
  if (optind + 1 < argc)
    return usageError("more than one compiled model: '" +
                      std::string(argv[optind]) + "' and '" + argv[optind + 1] +
                      "'");
  if (optind < argc)
    line.compiled = argv[optind];
  return line;
}

//===----------------------------------------------------------------------===//
// What the command line asks for
//===----------------------------------------------------------------------===//

struct Request {
  std::string compiled, model, outDir;
  int64_t layerIndex = 0;
  std::optional<std::string> bareX;
  /// PROJ=FILE inputs, and their names in command-line order.
  std::map<std::string, std::string> namedX;
  std::vector<std::string> namedOrder;
  std::string h;
  std::optional<std::vector<int64_t>> segments;
  std::string segmentsText;
  unsigned repeats = 0;
};

/// The whole of `text` as a decimal integer.
std::optional<long long> parseInteger(const std::string &text) {
  size_t begin = text.find_first_not_of(' '), end = text.find_last_not_of(' ');
  if (begin == std::string::npos)
    return std::nullopt;
  std::string trimmed = text.substr(begin, end - begin + 1);
  char *stop = nullptr;
  errno = 0;
  long long value = std::strtoll(trimmed.c_str(), &stop, 10);
  if (errno || *stop || stop == trimmed.c_str())
    return std::nullopt;
  return value;
}

/// "T1,T2,..." into non-negative lengths.
Result<std::vector<int64_t>> parseSegments(const std::string &text) {
  std::vector<int64_t> lengths;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma - start);
    std::optional<long long> length = parseInteger(part);
    if (!length)
      return usageError("--segments: expected comma-separated integers, "
                        "found '" +
                        part + "' in '" + text + "'");
    if (*length < 0)
      return usageError("--segments: length " + std::to_string(*length) +
                        " is negative");
    lengths.push_back(*length);
    if (comma == std::string::npos)
      return lengths;
    start = comma + 1;
  }
}

/// A bare --x is the default input; PROJ=FILE gives one projection its own.
/// A name before '=' that contains a path separator is part of a file name,
/// so "dir/a=b.npy" stays a bare file.
Status parseInputs(const std::vector<std::string> &xs, Request &request) {
  for (const std::string &value : xs) {
    if (value.empty())
      return usageError("--x: expected FILE or PROJ=FILE, found ''");
    size_t equals = value.find('=');
    std::string name = value.substr(0, equals);
    if (equals == std::string::npos || name.find('/') != std::string::npos) {
      if (request.bareX)
        return usageError("--x: more than one input for all projections ('" +
                          *request.bareX + "' and '" + value +
                          "'); use --x PROJ=FILE for one projection");
      request.bareX = value;
      continue;
    }
    std::string file = value.substr(equals + 1);
    if (name.empty() || file.empty())
      return usageError("--x: expected FILE or PROJ=FILE, found '" + value +
                        "'");
    if (!request.namedX.emplace(name, file).second)
      return usageError("--x: projection '" + name + "' is given twice");
    request.namedOrder.push_back(name);
  }
  return Status::success();
}

/// Checks what the command line says; none of this needs a file.
Result<Request> interpret(const CommandLine &line) {
  if (line.compiled.empty())
    return usageError("missing the compiled model: atmoe-run COMPILED --model "
                      "MODEL_DIR --layer L --x X.npy --out-dir DIR");
  if (!line.model || line.model->empty())
    return usageError("missing --model MODEL_DIR");
  if (!line.layer)
    return usageError("missing --layer L");
  Request request;
  std::optional<long long> layer = parseInteger(*line.layer);
  if (!layer)
    return usageError("--layer: expected an integer, found '" + *line.layer +
                      "'");
  request.layerIndex = *layer;
  if (line.xs.empty())
    return usageError("missing --x X.npy");
  if (!line.outDir || line.outDir->empty())
    return usageError("missing --out-dir DIR");
  if (line.segments) {
    Result<std::vector<int64_t>> segments = parseSegments(*line.segments);
    if (!segments)
      return segments.takeError();
    request.segments = std::move(*segments);
    request.segmentsText = *line.segments;
  }
  if (line.repeat) {
    std::optional<long long> repeats = parseInteger(*line.repeat);
    if (!repeats || *repeats < 1 || *repeats > 1'000'000'000)
      return usageError("--repeat: expected a positive integer, found '" +
                        *line.repeat + "'");
    request.repeats = unsigned(*repeats);
  }
  if (Status status = parseInputs(line.xs, request); !status)
    return status.takeError();
  request.compiled = line.compiled;
  request.model = *line.model;
  request.outDir = *line.outDir;
  request.h = line.h.value_or("");
  return request;
}

//===----------------------------------------------------------------------===//
// The model and its layer
//===----------------------------------------------------------------------===//

/// The runtime's last error, classified by its status.
Error runtimeError(atmoe_rt_status_t status) {
  return fail(faultOf(status), atmoe_rt_last_error());
}

Status check(atmoe_rt_status_t status) {
  if (status == ATMOE_RT_OK)
    return Status::success();
  return runtimeError(status);
}

struct ModelCloser {
  void operator()(atmoe_rt_model_t *model) const {
    atmoe_rt_model_close(model);
  }
};
using ModelPtr = std::unique_ptr<atmoe_rt_model_t, ModelCloser>;

struct ProjectionInfo {
  std::string name;
  int64_t dIn = 0, dOut = 0;
  /// The .npy file with its input.
  std::string file;
};

/// The layer to run, as the runtime describes it.
struct LayerInfo {
  size_t position = 0;
  std::vector<ProjectionInfo> projections;
  size_t numExperts = 0;
  int64_t routerWidth = 0;
  bool perSequence = false;

  bool hasRouter() const { return numExperts > 0; }
};

Result<LayerInfo> describeLayer(const atmoe_rt_model_t *model,
                                int64_t layerIndex) {
  LayerInfo layer;
  size_t numProjections;
  atmoe_rt_granularity_t granularity;
  if (Status status =
          check(atmoe_rt_model_find_layer(model, layerIndex, &layer.position));
      !status)
    return status.takeError();
  if (Status status = check(atmoe_rt_layer_get_num_projections(
          model, layer.position, &numProjections));
      !status)
    return status.takeError();
  if (Status status = check(
          atmoe_rt_layer_get_router(model, layer.position, &layer.routerWidth,
                                    &layer.numExperts, &granularity));
      !status)
    return status.takeError();
  layer.perSequence = granularity == ATMOE_RT_GRANULARITY_SEQUENCE;
  layer.projections.resize(numProjections);
  for (size_t p = 0; p < numProjections; ++p) {
    ProjectionInfo &info = layer.projections[p];
    const char *name;
    if (Status status = check(atmoe_rt_layer_get_projection(
            model, layer.position, p, &name, &info.dIn, &info.dOut));
        !status)
      return status.takeError();
    info.name = name;
  }
  return layer;
}

/// Gives every projection its input file.
Status assignInputs(const Request &request, LayerInfo &layer) {
  auto known = [&] {
    return joinComma(layer.projections,
                     [](const ProjectionInfo &info) { return info.name; });
  };
  for (const std::string &name : request.namedOrder)
    if (std::none_of(
            layer.projections.begin(), layer.projections.end(),
            [&](const ProjectionInfo &info) { return info.name == name; }))
      return usageError("--x: layer " + std::to_string(request.layerIndex) +
                        " has no projection '" + name +
                        "' (its projections: " + known() + ")");
  for (ProjectionInfo &info : layer.projections) {
    auto named = request.namedX.find(info.name);
    if (named != request.namedX.end())
      info.file = named->second;
    else if (request.bareX)
      info.file = *request.bareX;
    else
      return usageError("no input for projection '" + info.name +
                        "' of layer " + std::to_string(request.layerIndex) +
                        ": give --x FILE or --x " + info.name + "=FILE");
  }
  return Status::success();
}

/// The router input file. Layers without a router take none, and a --h given
/// for them is ignored, so that one command line serves a layer and its
/// router-less baseline.
Result<std::string> routerInputFile(const Request &request,
                                    const LayerInfo &layer) {
  std::string index = std::to_string(request.layerIndex);
  if (!layer.hasRouter() || !request.h.empty())
    return request.h;
  if (layer.perSequence)
    return usageError("missing --h: layer " + index +
                      " routes per sequence and needs one router input row "
                      "per sequence (S x " +
                      std::to_string(layer.routerWidth) + ")");
  if (!request.bareX)
    return usageError("missing --h: the router input of layer " + index +
                      " defaults to the bare --x, and none is given");
  for (const ProjectionInfo &info : layer.projections)
    if (info.file == *request.bareX && info.dIn != layer.routerWidth)
      return usageError(
          "missing --h: the router input of layer " + index +
          " has width d_h = " + std::to_string(layer.routerWidth) +
          ", so the bare --x (input of projection '" + info.name +
          "', d_in = " + std::to_string(info.dIn) + ") cannot serve as h");
  return *request.bareX;
}

//===----------------------------------------------------------------------===//
// Inputs
//===----------------------------------------------------------------------===//

/// The input arrays of one run, each file read once.
struct Inputs {
  std::map<std::string, NpyArray> arrays;
  int64_t numTokens = -1;
  std::string tokensFile;
  std::vector<const float *> x;
  const float *h = nullptr;
  int64_t routerRows = 0;

  Result<const NpyArray *> load(const std::string &path) {
    auto it = arrays.find(path);
    if (it != arrays.end())
      return &it->second;
    Result<NpyArray> array = readNpyF32(path);
    if (!array)
      return array.takeError();
    return &arrays.emplace(path, std::move(*array)).first->second;
  }
};

/// The projections' inputs: T x d_in each, one T for all.
Status loadProjectionInputs(const LayerInfo &layer, Inputs &inputs) {
  for (const ProjectionInfo &info : layer.projections) {
    Result<const NpyArray *> array = inputs.load(info.file);
    if (!array)
      return array.takeError();
    const std::vector<int64_t> &shape = (*array)->shape;
    std::string what = info.file + ": input of projection '" + info.name + "'";
    if (shape.size() != 2 || shape[1] != info.dIn)
      return fail(what + " must be T x d_in = T x " + std::to_string(info.dIn) +
                  ", found shape " + formatShape(shape));
    if (shape[0] < 1)
      return fail(what + " has no rows; at least one token is needed");
    if (inputs.numTokens < 0) {
      inputs.numTokens = shape[0];
      inputs.tokensFile = info.file;
    } else if (shape[0] != inputs.numTokens) {
      return fail(what + " has " + std::to_string(shape[0]) +
                  " rows (tokens), but " + inputs.tokensFile + " has " +
                  std::to_string(inputs.numTokens) +
                  "; all projections need the same T");
    }
    inputs.x.push_back((*array)->data.data());
  }
  return Status::success();
}

Status checkSegmentsSum(const Request &request, const Inputs &inputs) {
  if (!request.segments)
    return Status::success();
  int64_t total = 0;
  bool overflow = false;
  for (int64_t length : *request.segments)
    overflow |= __builtin_add_overflow(total, length, &total);
  if (!overflow && total == inputs.numTokens)
    return Status::success();
  return fail(
      "--segments: lengths " + request.segmentsText + " sum to " +
      (overflow ? std::string("more than 2^63") : std::to_string(total)) +
      ", but " + inputs.tokensFile +
      " has T = " + std::to_string(inputs.numTokens) + " tokens");
}

Status loadRouterInput(const std::string &file, const Request &request,
                       const LayerInfo &layer, Inputs &inputs) {
  int64_t sequences = request.segments ? int64_t(request.segments->size()) : 1;
  inputs.routerRows = layer.perSequence ? sequences : inputs.numTokens;
  if (!layer.hasRouter())
    return Status::success();
  Result<const NpyArray *> array = inputs.load(file);
  if (!array)
    return array.takeError();
  const std::vector<int64_t> &shape = (*array)->shape;
  std::string rows = std::to_string(inputs.routerRows);
  std::string width = std::to_string(layer.routerWidth);
  std::string expected =
      layer.perSequence
          ? "S x d_h = " + rows + " x " + width + " (one row per sequence)"
          : "T x d_h = " + rows + " x " + width;
  if (shape.size() != 2 || shape[0] != inputs.routerRows ||
      shape[1] != layer.routerWidth)
    return fail(file + ": router input h of layer " +
                std::to_string(request.layerIndex) + " must be " + expected +
                ", found shape " + formatShape(shape));
  inputs.h = (*array)->data.data();
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Running and writing
//===----------------------------------------------------------------------===//

/// The output buffers of the layer and the call that fills them.
struct Run {
  const atmoe_rt_model_t *model;
  const LayerInfo &layer;
  const Request &request;
  const Inputs &inputs;
  std::vector<std::vector<float>> y;
  std::vector<float *> yData;
  std::vector<float> routing;

  Run(const atmoe_rt_model_t *model, const LayerInfo &layer,
      const Request &request, const Inputs &inputs)
      : model(model), layer(layer), request(request), inputs(inputs) {
    for (const ProjectionInfo &info : layer.projections) {
      y.emplace_back(size_t(inputs.numTokens * info.dOut));
      yData.push_back(y.back().data());
    }
    routing.resize(size_t(inputs.routerRows) * layer.numExperts);
  }

  Status forward() {
    const std::optional<std::vector<int64_t>> &segments = request.segments;
    return check(atmoe_rt_layer_forward(
        model, layer.position, inputs.numTokens, layer.projections.size(),
        inputs.x.data(), inputs.h, segments ? segments->size() : 0,
        segments ? segments->data() : nullptr, yData.data(),
        layer.hasRouter() ? routing.data() : nullptr));
  }
};

/// Stages DIR/{proj}.npy and DIR/routing.npy; they replace the files of an
/// earlier run only once the whole run has succeeded (StagedOutputs).
Status writeOutputs(const Run &run, StagedOutputs &outputs) {
  const std::string &dir = run.request.outDir;
  if (Status status = outputs.createDirectories(dir); !status)
    return status;
  std::string prefix = dir + (dir.back() == '/' ? "" : "/");
  auto stage = [&](const std::string &name, std::vector<int64_t> shape,
                   const std::vector<float> &data) {
    std::string path = prefix + name + ".npy";
    return outputs.stage(path, [&](int fd) {
      return writeNpyF32To(fd, path, shape, data.data(), data.size());
    });
  };
  for (size_t p = 0; p < run.layer.projections.size(); ++p) {
    const ProjectionInfo &info = run.layer.projections[p];
    if (Status status =
            stage(info.name, {run.inputs.numTokens, info.dOut}, run.y[p]);
        !status)
      return status;
  }
  if (!run.layer.hasRouter())
    return Status::success();
  return stage("routing",
               {run.inputs.routerRows, int64_t(run.layer.numExperts)},
               run.routing);
}

/// Times `repeats` more forward calls and prints the median and minimum.
Status timeRepeats(Run &run, bool print) {
  std::vector<double> micros;
  for (unsigned i = 0; i < run.request.repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    if (Status status = run.forward(); !status)
      return status;
    auto stop = std::chrono::steady_clock::now();
    micros.push_back(
        std::chrono::duration<double, std::micro>(stop - start).count());
  }
  if (!print)
    return Status::success();
  std::sort(micros.begin(), micros.end());
  size_t mid = micros.size() / 2;
  double median =
      micros.size() % 2 ? micros[mid] : (micros[mid - 1] + micros[mid]) / 2;
  std::printf("atmoe-run: layer %lld: median_us=%.3f min_us=%.3f repeats=%u\n",
              static_cast<long long>(run.request.layerIndex), median,
              micros.front(), run.request.repeats);
  // A closed pipe or a full disk fails the run (SIGPIPE is ignored).
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    return fail(std::string("cannot write the timing line to stdout: ") +
                std::strerror(errno));
  return Status::success();
}

/// Loads everything the layer needs, checking it against the layer.
Status prepare(const Request &request, LayerInfo &layer, Inputs &inputs) {
  if (Status status = assignInputs(request, layer); !status)
    return status;
  Result<std::string> routerFile = routerInputFile(request, layer);
  if (!routerFile)
    return routerFile.takeError();
  // readNpyF32 accepts '<f4' and '<f8' (rounded to f32) in C order; its
  // errors already name the file.
  if (Status status = loadProjectionInputs(layer, inputs); !status)
    return status;
  if (Status status = checkSegmentsSum(request, inputs); !status)
    return status;
  return loadRouterInput(*routerFile, request, layer, inputs);
}

/// The run with the model open. A process of a model split over processes
/// writes the outputs and the timing line only on rank 0, where they are whole.
Status runOpened(const Request &request, atmoe_rt_model_t *model, int rank) {
  Result<LayerInfo> layer = describeLayer(model, request.layerIndex);
  if (!layer)
    return layer.takeError();
  Inputs inputs;
  if (Status status = prepare(request, *layer, inputs); !status)
    return status;
  // Weights are bound after the inputs are checked: binding may convert
  // large tensors, which a typo in an input should not have to wait for.
  if (Status status =
          check(atmoe_rt_model_bind_weights(model, request.model.c_str()));
      !status)
    return status;
  Run call(model, *layer, request, inputs);
  if (Status status = call.forward(); !status)
    return status;
  StagedOutputs outputs;
  if (rank == 0)
    if (Status status = writeOutputs(call, outputs); !status)
      return status;
  if (request.repeats)
    if (Status status = timeRepeats(call, rank == 0); !status)
      return status;
  // Outputs computed from a weight file overwritten meanwhile are not kept.
  if (Status status = check(atmoe_rt_model_check_weights(model)); !status)
    return status;
  return rank == 0 ? outputs.commit() : Status::success();
}

Status run(const Request &request) {
  atmoe_rt_model_t *rawModel = nullptr;
  atmoe_rt_status_t opened =
      atmoe_rt_model_open(request.compiled.c_str(), &rawModel);
  ModelPtr model(rawModel);
  if (opened != ATMOE_RT_OK)
    return runtimeError(opened);
  int rank = 0, processes = 1;
  if (Status status =
          check(atmoe_rt_model_get_process(model.get(), &rank, &processes));
      !status)
    return status;
  Status status = runOpened(request, model.get(), rank);
  if (status || processes == 1)
    return status;
  // The other processes may wait for this one in a collective: the message
  // names the rank, and the whole job ends here.
  std::fprintf(stderr, "atmoe-run: error: rank %d of %d: %s\n", rank, processes,
               status.error().c_str());
  std::fflush(stderr);
  // MPI_Abort makes the launcher kill every process, its own output
  // forwarders included: give them a moment to pass the message on (without
  // it, about 1 run in 15 lost it under MPICH's mpiexec).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  atmoe_rt_model_abort_job(model.get(), exitCode(status.fault()));
  return status;
}

Status runCommandLine(int argc, char **argv) {
  Result<CommandLine> line = parseCommandLine(argc, argv);
  if (!line)
    return line.takeError();
  if (line->help) {
    std::fputs(kUsage, stdout);
    std::fputs(kExitCodeHelp, stdout);
    return Status::success();
  }
  if (line->version) {
    std::printf("atmoe-run %s\n", atmoe_rt_version());
    return Status::success();
  }
  Result<Request> request = interpret(*line);
  if (!request)
    return request.takeError();
  return run(*request);
}

} // namespace

int main(int argc, char **argv) {
  // A closed stdout is an error like any other, not a silent exit 141.
  std::signal(SIGPIPE, SIG_IGN);
  Status status = runCommandLine(argc, argv);
  if (status)
    return kExitSuccess;
  std::fprintf(stderr, "atmoe-run: error: %s\n", status.error().c_str());
  return exitCode(status.fault());
}
