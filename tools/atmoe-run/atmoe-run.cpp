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
// "atmoe-run: error: ...", with exit code 2 for a wrong command line, 1 for a
// missing or malformed file (or data that does not fit the layer) and 3 for
// an internal error; a failed run leaves no output file of its own behind.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/atmoe_rt.h"

#include "atmoe/Support/Npy.h"
#include "atmoe/Support/Shape.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace llvm;
using namespace atmoe;

namespace {

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

cl::OptionCategory runCategory("atmoe-run options");

// Every option is optional for llvm::cl: missing ones are reported here, so
// that all usage errors share one format and exit code.
cl::opt<std::string> compiledPath(cl::Positional,
                                  cl::desc("<compiled model (.so)>"),
                                  cl::cat(runCategory));
cl::opt<std::string> modelDir("model",
                              cl::desc("Model package directory whose "
                                       "safetensors files hold the weights"),
                              cl::value_desc("dir"), cl::cat(runCategory));
cl::opt<std::string> layerOption("layer",
                                 cl::desc("Index of the layer to run (its "
                                          "\"index\" in the model)"),
                                 cl::value_desc("L"), cl::cat(runCategory));
cl::list<std::string>
    xOptions("x",
             cl::desc("Projection input, T x d_in (.npy, f32 or f64): FILE "
                      "for every projection, PROJ=FILE for one"),
             cl::value_desc("[PROJ=]file"), cl::cat(runCategory));
cl::opt<std::string> hPath("h",
                           cl::desc("Router input (.npy): T x d_h, or S x d_h "
                                    "for sequence granularity (default: the "
                                    "bare --x)"),
                           cl::value_desc("file"), cl::cat(runCategory));
cl::opt<std::string>
    segmentsOption("segments",
                   cl::desc("Sequence lengths T1,T2,... summing to T "
                            "(default: one sequence of T tokens)"),
                   cl::value_desc("T1,T2,..."), cl::cat(runCategory));
cl::opt<std::string> outDir("out-dir",
                            cl::desc("Directory for {proj}.npy and "
                                     "routing.npy (created if missing)"),
                            cl::value_desc("dir"), cl::cat(runCategory));
cl::opt<std::string>
    repeatOption("repeat",
                 cl::desc("After the first run, time N more runs and print "
                          "the median and minimum"),
                 cl::value_desc("N"), cl::cat(runCategory));

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

enum ExitCode : int {
  ExitSuccess = 0,
  ExitInputError = 1,
  ExitUsageError = 2,
  ExitInternalError = 3,
};

/// An error that knows the exit code it maps to.
class ToolError : public ErrorInfo<ToolError> {
public:
  static char ID;

  ToolError(ExitCode exitCode, std::string message)
      : exitCode(exitCode), message(std::move(message)) {}

  void log(raw_ostream &os) const override { os << message; }
  std::error_code convertToErrorCode() const override {
    return inconvertibleErrorCode();
  }

  ExitCode exitCode;
  std::string message;
};

char ToolError::ID;

Error usageError(const Twine &message) {
  return make_error<ToolError>(ExitUsageError, message.str());
}

Error inputError(const Twine &message) {
  return make_error<ToolError>(ExitInputError, message.str());
}

/// The runtime's last error, classified by its status.
Error runtimeError(atmoe_rt_status_t status) {
  ExitCode code = status == ATMOE_RT_INVALID_ARGUMENT ? ExitUsageError
                  : status == ATMOE_RT_INPUT_ERROR    ? ExitInputError
                                                      : ExitInternalError;
  return make_error<ToolError>(code, atmoe_rt_last_error());
}

/// Converts a status into an Error (success for ATMOE_RT_OK).
Error check(atmoe_rt_status_t status) {
  return status == ATMOE_RT_OK ? Error::success() : runtimeError(status);
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

struct ModelCloser {
  void operator()(atmoe_rt_model_t *model) const {
    atmoe_rt_model_close(model);
  }
};
using ModelPtr = std::unique_ptr<atmoe_rt_model_t, ModelCloser>;

struct ProjectionInfo {
  std::string name;
  int64_t dIn, dOut;
  /// The .npy file with its input.
  std::string file;
};

/// Parses "T1,T2,..." into non-negative lengths.
Expected<SmallVector<int64_t>> parseSegments(StringRef text) {
  SmallVector<int64_t> lengths;
  SmallVector<StringRef> parts;
  text.split(parts, ',');
  for (StringRef part : parts) {
    int64_t length;
    if (part.trim().getAsInteger(10, length))
      return usageError("--segments: expected comma-separated integers, "
                        "found '" +
                        part + "' in '" + text + "'");
    if (length < 0)
      return usageError("--segments: length " + Twine(length) + " is negative");
    lengths.push_back(length);
  }
  return lengths;
}

/// Removes the files this run has written, so that a failed run leaves no
/// output of its own behind.
class OutputFiles {
public:
  ~OutputFiles() {
    if (!keep)
      for (const std::string &path : written)
        sys::fs::remove(path);
  }

  Error write(StringRef path, ArrayRef<int64_t> shape, ArrayRef<float> data) {
    if (Error err = writeNpyF32(path, shape, data))
      return inputError(toString(std::move(err)));
    written.push_back(path.str());
    // An interrupted run (SIGINT, SIGTERM; e.g. during --repeat) must not
    // leave some of its outputs either.
    sys::RemoveFileOnSignal(path);
    return Error::success();
  }

  /// Called once the run has succeeded.
  void commit() {
    keep = true;
    for (const std::string &path : written)
      sys::DontRemoveFileOnSignal(path);
  }

private:
  std::vector<std::string> written;
  bool keep = false;
};

Error run() {
  // Command-line checks first: none of them needs a file. llvm::cl lets a
  // later occurrence of an option override an earlier one; a command line
  // that says two different things is more likely a mistake.
  for (const cl::Option *option : std::initializer_list<const cl::Option *>{
           &modelDir, &layerOption, &hPath, &segmentsOption, &outDir,
           &repeatOption})
    if (option->getNumOccurrences() > 1)
      return usageError("--" + option->ArgStr + " is given more than once");
  if (compiledPath.empty())
    return usageError("missing the compiled model: atmoe-run COMPILED --model "
                      "MODEL_DIR --layer L --x X.npy --out-dir DIR");
  if (modelDir.empty())
    return usageError("missing --model MODEL_DIR");
  if (layerOption.getNumOccurrences() == 0)
    return usageError("missing --layer L");
  int64_t layerIndex;
  if (StringRef(layerOption).trim().getAsInteger(10, layerIndex))
    return usageError("--layer: expected an integer, found '" + layerOption +
                      "'");
  if (xOptions.empty())
    return usageError("missing --x X.npy");
  if (outDir.empty())
    return usageError("missing --out-dir DIR");

  std::optional<SmallVector<int64_t>> segments;
  if (segmentsOption.getNumOccurrences()) {
    Expected<SmallVector<int64_t>> parsed = parseSegments(segmentsOption);
    if (!parsed)
      return parsed.takeError();
    segments = std::move(*parsed);
  }

  unsigned repeats = 0;
  if (repeatOption.getNumOccurrences() &&
      (StringRef(repeatOption).trim().getAsInteger(10, repeats) ||
       repeats == 0))
    return usageError("--repeat: expected a positive integer, found '" +
                      repeatOption + "'");

  // A bare --x is the default input; PROJ=FILE gives one projection its own.
  // A name before '=' that contains a path separator is part of a file name,
  // so "dir/a=b.npy" stays a bare file.
  std::optional<std::string> bareX;
  StringMap<std::string> namedX;
  // The names in command-line order, for deterministic messages.
  SmallVector<std::string> namedOrder;
  for (const std::string &value : xOptions) {
    if (value.empty())
      return usageError("--x: expected FILE or PROJ=FILE, found ''");
    auto [name, file] = StringRef(value).split('=');
    if (!StringRef(value).contains('=') || name.contains('/')) {
      if (bareX)
        return usageError("--x: more than one input for all projections ('" +
                          *bareX + "' and '" + value +
                          "'); use --x PROJ=FILE for one projection");
      bareX = value;
      continue;
    }
    if (name.empty() || file.empty())
      return usageError("--x: expected FILE or PROJ=FILE, found '" + value +
                        "'");
    if (!namedX.try_emplace(name, file.str()).second)
      return usageError("--x: projection '" + name + "' is given twice");
    namedOrder.push_back(name.str());
  }

  // The model.
  atmoe_rt_model_t *rawModel = nullptr;
  atmoe_rt_status_t openStatus =
      atmoe_rt_model_open(compiledPath.c_str(), &rawModel);
  ModelPtr model(rawModel);
  if (openStatus != ATMOE_RT_OK)
    return runtimeError(openStatus);
  const atmoe_rt_model_t *m = model.get();

  size_t layer;
  if (Error err = check(atmoe_rt_model_find_layer(m, layerIndex, &layer)))
    return err;
  size_t numProjections, numExperts;
  int64_t routerWidth;
  atmoe_rt_granularity_t granularity;
  if (Error err =
          check(atmoe_rt_layer_get_num_projections(m, layer, &numProjections)))
    return err;
  if (Error err = check(atmoe_rt_layer_get_router(m, layer, &routerWidth,
                                                  &numExperts, &granularity)))
    return err;
  bool hasRouter = numExperts > 0;
  bool perSequence = granularity == ATMOE_RT_GRANULARITY_SEQUENCE;

  std::vector<ProjectionInfo> projections(numProjections);
  for (auto [p, info] : enumerate(projections)) {
    const char *name;
    if (Error err = check(atmoe_rt_layer_get_projection(m, layer, p, &name,
                                                        &info.dIn, &info.dOut)))
      return err;
    info.name = name;
  }
  for (const std::string &name : namedOrder) {
    if (none_of(projections, [&](const ProjectionInfo &info) {
          return info.name == name;
        })) {
      std::string known;
      raw_string_ostream os(known);
      interleaveComma(projections, os,
                      [&](const ProjectionInfo &info) { os << info.name; });
      return usageError("--x: layer " + Twine(layerIndex) +
                        " has no projection '" + name +
                        "' (its projections: " + known + ")");
    }
  }
  for (ProjectionInfo &info : projections) {
    auto named = namedX.find(info.name);
    if (named != namedX.end())
      info.file = named->second;
    else if (bareX)
      info.file = *bareX;
    else
      return usageError("no input for projection '" + info.name +
                        "' of layer " + Twine(layerIndex) +
                        ": give --x FILE or --x " + info.name + "=FILE");
  }

  // The router input. Layers without a router take none, and a --h given for
  // them is ignored, so that one command line serves a layer and its
  // router-less baseline.
  std::string routerFile;
  if (hasRouter) {
    if (!hPath.empty()) {
      routerFile = hPath;
    } else if (perSequence) {
      return usageError("missing --h: layer " + Twine(layerIndex) +
                        " routes per sequence and needs one router input "
                        "row per sequence (S x " +
                        Twine(routerWidth) + ")");
    } else if (!bareX) {
      return usageError("missing --h: the router input of layer " +
                        Twine(layerIndex) +
                        " defaults to the bare --x, and none is given");
    } else {
      for (const ProjectionInfo &info : projections)
        if (info.file == *bareX && info.dIn != routerWidth)
          return usageError(
              "missing --h: the router input of layer " + Twine(layerIndex) +
              " has width d_h = " + Twine(routerWidth) +
              ", so the bare --x (input of projection '" + info.name +
              "', d_in = " + Twine(info.dIn) + ") cannot serve as h");
      routerFile = *bareX;
    }
  }

  // Inputs, each file read once. readNpyF32 accepts '<f4' and '<f8' (rounded
  // to f32) in C order; its errors already name the file.
  StringMap<NpyArray> arrays;
  auto load = [&](const std::string &path) -> Expected<const NpyArray *> {
    auto it = arrays.find(path);
    if (it != arrays.end())
      return &it->second;
    Expected<NpyArray> array = readNpyF32(path);
    if (!array)
      return inputError(toString(array.takeError()));
    return &arrays.try_emplace(path, std::move(*array)).first->second;
  };

  int64_t numTokens = -1;
  std::string tokensFile;
  std::vector<const float *> xData;
  for (const ProjectionInfo &info : projections) {
    Expected<const NpyArray *> array = load(info.file);
    if (!array)
      return array.takeError();
    ArrayRef<int64_t> shape = (*array)->shape;
    if (shape.size() != 2 || shape[1] != info.dIn)
      return inputError(info.file + ": input of projection '" + info.name +
                        "' must be T x d_in = T x " + Twine(info.dIn) +
                        ", found shape " + formatShape(shape));
    if (shape[0] < 1)
      return inputError(info.file + ": input of projection '" + info.name +
                        "' has no rows; at least one token is needed");
    if (numTokens < 0) {
      numTokens = shape[0];
      tokensFile = info.file;
    } else if (shape[0] != numTokens) {
      return inputError(info.file + ": input of projection '" + info.name +
                        "' has " + Twine(shape[0]) + " rows (tokens), but " +
                        tokensFile + " has " + Twine(numTokens) +
                        "; all projections need the same T");
    }
    xData.push_back((*array)->data.data());
  }

  if (segments) {
    int64_t total = 0;
    bool overflow = false;
    for (int64_t length : *segments)
      overflow |= __builtin_add_overflow(total, length, &total);
    if (overflow || total != numTokens)
      return inputError("--segments: lengths " + segmentsOption + " sum to " +
                        (overflow ? "more than 2^63" : Twine(total)) +
                        ", but " + tokensFile + " has T = " + Twine(numTokens) +
                        " tokens");
  }
  int64_t numSequences = segments ? int64_t(segments->size()) : 1;
  int64_t routerRows = perSequence ? numSequences : numTokens;

  const float *hData = nullptr;
  if (hasRouter) {
    Expected<const NpyArray *> array = load(routerFile);
    if (!array)
      return array.takeError();
    ArrayRef<int64_t> shape = (*array)->shape;
    std::string expected = perSequence
                               ? "S x d_h = " + std::to_string(routerRows) +
                                     " x " + std::to_string(routerWidth) +
                                     " (one row per sequence)"
                               : "T x d_h = " + std::to_string(routerRows) +
                                     " x " + std::to_string(routerWidth);
    if (shape.size() != 2 || shape[0] != routerRows || shape[1] != routerWidth)
      return inputError(routerFile + ": router input h of layer " +
                        Twine(layerIndex) + " must be " + expected +
                        ", found shape " + formatShape(shape));
    hData = (*array)->data.data();
  }

  // Weights are bound after the inputs are checked: binding may convert
  // large tensors, which a typo in an input should not have to wait for.
  if (Error err =
          check(atmoe_rt_model_bind_weights(model.get(), modelDir.c_str())))
    return err;

  std::vector<std::vector<float>> yBuffers;
  std::vector<float *> yData;
  for (const ProjectionInfo &info : projections) {
    yBuffers.emplace_back(size_t(numTokens * info.dOut));
    yData.push_back(yBuffers.back().data());
  }
  std::vector<float> routing(size_t(routerRows) * numExperts);
  auto forward = [&] {
    return check(atmoe_rt_layer_forward(
        m, layer, numTokens, numProjections, xData.data(), hData,
        segments ? segments->size() : 0, segments ? segments->data() : nullptr,
        yData.data(), hasRouter ? routing.data() : nullptr));
  };
  if (Error err = forward())
    return err;

  OutputFiles outputs;
  if (std::error_code ec = sys::fs::create_directories(outDir))
    return inputError(outDir +
                      ": cannot create the output directory: " + ec.message());
  // create_directories accepts an existing file of that name.
  if (!sys::fs::is_directory(outDir))
    return inputError(outDir + ": cannot create the output directory: a "
                               "file of that name exists");
  for (auto [info, y] : zip(projections, yBuffers)) {
    SmallString<256> path(outDir);
    sys::path::append(path, info.name + ".npy");
    if (Error err = outputs.write(path, {numTokens, info.dOut}, y))
      return err;
  }
  if (hasRouter) {
    SmallString<256> path(outDir);
    sys::path::append(path, "routing.npy");
    if (Error err = outputs.write(
            path, {routerRows, static_cast<int64_t>(numExperts)}, routing))
      return err;
  }

  if (repeats) {
    std::vector<double> micros;
    for (unsigned i = 0; i < repeats; ++i) {
      auto start = std::chrono::steady_clock::now();
      if (Error err = forward())
        return err;
      auto stop = std::chrono::steady_clock::now();
      micros.push_back(
          std::chrono::duration<double, std::micro>(stop - start).count());
    }
    std::sort(micros.begin(), micros.end());
    size_t mid = micros.size() / 2;
    double median =
        micros.size() % 2 ? micros[mid] : (micros[mid - 1] + micros[mid]) / 2;
    outs() << "atmoe-run: layer " << layerIndex
           << ": median_us=" << format("%.3f", median)
           << " min_us=" << format("%.3f", micros.front())
           << " repeats=" << repeats << "\n";
    outs().flush();
  }
  outputs.commit();
  return Error::success();
}

/// The first line of llvm::cl's diagnostics, without its "prog: " prefix.
std::string firstLine(StringRef text, StringRef programName) {
  StringRef line = text.split('\n').first.trim();
  if (line.consume_front(programName))
    line.consume_front(":");
  return line.trim().str();
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(runCategory);

  std::string parseErrors;
  raw_string_ostream parseStream(parseErrors);
  bool parsed = cl::ParseCommandLineOptions(
      argc, argv,
      "atmoe-run: run one layer of a compiled atmoe model\n\n"
      "  atmoe-run COMPILED --model MODEL_DIR --layer L --x X.npy\n"
      "            [--x PROJ=X2.npy ...] [--h H.npy] [--segments T1,T2,...]\n"
      "            --out-dir DIR [--repeat N]\n\n"
      "Exit codes: 0 success, 1 bad input file or data, 2 bad command line, "
      "3 internal error.\n",
      &parseStream);

  Error err =
      parsed ? run()
             : usageError(firstLine(parseErrors, sys::path::filename(argv[0])));
  if (!err)
    return ExitSuccess;
  int exitCode = ExitInternalError;
  handleAllErrors(
      std::move(err),
      [&](const ToolError &error) {
        exitCode = error.exitCode;
        errs() << "atmoe-run: error: " << error.message << "\n";
      },
      [&](const ErrorInfoBase &error) {
        errs() << "atmoe-run: error: " << error.message() << "\n";
      });
  return exitCode;
}
