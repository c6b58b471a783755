//===- atmoe-package.cpp - Write a model package from what users have ----===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-package init --base HF_DIR --adapter NAME=PEFT_DIR ...
//                    --group GROUP=NAME,NAME ... [--shared NAME --lambda L]
//                    [--router KIND] [--router-weights FILE.safetensors]
//                    [--granularity token|sequence] -o PKG
//
// Writes a model package (model.json and the router's weights) around a
// Hugging Face base directory and PEFT adapter directories, which stay where
// they are: model.json names them by relative path. Without router weights
// it writes a static task plan: zero router matrices (no biases), so every
// group and expert is weighted equally in every layer, and says so. The
// package appears complete or not at all.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Fault.h"
#include "atmoe_rt/support/Json.h"
#include "atmoe_rt/support/Manifest.h"
#include "atmoe_rt/support/MappedFile.h"
#include "atmoe_rt/support/Names.h"
#include "atmoe_rt/support/Options.h"
#include "atmoe_rt/support/OutputFile.h"
#include "atmoe_rt/support/Result.h"
#include "atmoe_rt/support/SafeTensors.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <getopt.h>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace atmoe_rt;
namespace fs = std::filesystem;

namespace {

constexpr const char *kUsage =
    "atmoe-package: write an atmoe model package\n\n"
    "  atmoe-package init --base HF_DIR --adapter NAME=PEFT_DIR ...\n"
    "                     --group GROUP=NAME,NAME ... [--shared NAME\n"
    "                     --lambda L] [--router KIND]\n"
    "                     [--router-weights FILE.safetensors]\n"
    "                     [--granularity token|sequence] -o PKG\n\n"
    "  --base HF_DIR          a Hugging Face model directory (config.json,\n"
    "                         model.safetensors or its sharded index)\n"
    "  --adapter NAME=DIR     a PEFT adapter directory, as expert NAME\n"
    "  --group G=A,B,...      task group G of the routed experts A, B, ...\n"
    "  --shared NAME          the shared expert (in no group), mixed with\n"
    "  --lambda L             weight L of the routed ones (default 0.5)\n"
    "  --router KIND          grouped_softmax (default), softmax or sigmoid\n"
    "  --router-weights FILE  the router's tensors (layers.{i}.router.*,\n"
    "                         docs/Importer.md); without it, a static task\n"
    "                         plan: zero router matrices, equal weights\n"
    "  --granularity G        token (default) or sequence\n"
    "  -o PKG                 the package directory to write (must not exist)\n"
    "  --version              print the atmoe version\n\n";

struct Options {
  std::string base, routerWeights, output;
  std::vector<std::pair<std::string, std::string>> adapters; // name, dir
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  std::optional<std::string> shared;
  std::optional<double> lambda;
  std::string router = "grouped_softmax", granularity = "token";
};

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

enum OptionId {
  Base = 1,
  Adapter,
  Group,
  Shared,
  Lambda,
  Router,
  RouterWeights,
  Granularity,
  Help,
  Version
};

/// "NAME=VALUE" with a plain NAME.
Result<std::pair<std::string, std::string>> nameValue(const char *text,
                                                      const char *option) {
  std::string item = text;
  size_t equals = item.find('=');
  if (equals == std::string::npos || equals + 1 == item.size())
    return usageError(std::string("--") + option +
                      ": expected NAME=VALUE, found '" + item + "'");
  std::string name = item.substr(0, equals);
  if (std::string problem = plainNameProblem(name); !problem.empty())
    return usageError(std::string("--") + option + ": '" + escapeName(name) +
                      "': " + problem);
  return std::make_pair(name, item.substr(equals + 1));
}

Status applyGroup(const char *text, Options &options) {
  Result<std::pair<std::string, std::string>> group = nameValue(text, "group");
  if (!group)
    return group.takeError();
  std::vector<std::string> members;
  for (size_t start = 0;;) {
    size_t comma = group->second.find(',', start);
    members.push_back(group->second.substr(start, comma - start));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  options.groups.emplace_back(group->first, members);
  return Status::success();
}

Status applyChoice(const char *text, const char *option,
                   std::initializer_list<const char *> allowed,
                   std::string &field) {
  for (const char *choice : allowed)
    if (std::strcmp(text, choice) == 0) {
      field = text;
      return Status::success();
    }
  std::string list;
  for (const char *choice : allowed)
    list += std::string(list.empty() ? "" : ", ") + choice;
  return usageError(std::string("--") + option + ": expected one of " + list +
                    ", found '" + text + "'");
}

Status applyOption(int code, Options &options) {
  switch (code) {
  case Base:
    options.base = optarg;
    return Status::success();
  case Adapter: {
    Result<std::pair<std::string, std::string>> adapter =
        nameValue(optarg, "adapter");
    if (!adapter)
      return adapter.takeError();
    options.adapters.push_back(*adapter);
    return Status::success();
  }
  case Group:
    return applyGroup(optarg, options);
  case Shared:
    options.shared = optarg;
    return Status::success();
  case Lambda: {
    char *end = nullptr;
    double value = std::strtod(optarg, &end);
    if (end == optarg || *end || !(value >= 0.0 && value <= 1.0))
      return usageError(std::string("--lambda: expected a number in [0, 1], "
                                    "found '") +
                        optarg + "'");
    options.lambda = value;
    return Status::success();
  }
  case Router:
    return applyChoice(optarg, "router",
                       {"grouped_softmax", "softmax", "sigmoid"},
                       options.router);
  case RouterWeights:
    options.routerWeights = optarg;
    return Status::success();
  case Granularity:
    return applyChoice(optarg, "granularity", {"token", "sequence"},
                       options.granularity);
  default:
    options.output = optarg;
    return Status::success();
  }
}

/// Checks what the options say together.
Status checkOptions(const Options &options) {
  if (options.base.empty())
    return usageError("missing --base HF_DIR");
  if (options.output.empty())
    return usageError("missing -o PKG");
  if (options.adapters.empty())
    return usageError("missing --adapter NAME=PEFT_DIR");
  if (options.lambda && !options.shared)
    return usageError("--lambda needs --shared NAME");
  std::set<std::string> adapters, placed;
  for (const auto &[name, dir] : options.adapters)
    if (!adapters.insert(name).second)
      return usageError("--adapter: '" + name + "' is given twice");
  if (options.shared && !adapters.count(*options.shared))
    return usageError("--shared: '" + *options.shared +
                      "' is not an --adapter");
  for (const auto &[group, members] : options.groups)
    for (const std::string &member : members) {
      if (!adapters.count(member))
        return usageError("--group " + group + ": '" + member +
                          "' is not an --adapter");
      if (options.shared && member == *options.shared)
        return usageError("--group " + group + ": '" + member +
                          "' is the shared expert, which is in no group");
      if (!placed.insert(member).second)
        return usageError("--group " + group + ": '" + member +
                          "' is already in a group");
    }
  for (const auto &[name, dir] : options.adapters)
    if (!placed.count(name) && (!options.shared || name != *options.shared))
      return usageError("--adapter " + name +
                        ": in no --group and not --shared");
  return Status::success();
}

/// The options, or nullopt after --help / --version.
Result<std::optional<Options>> parseCommandLine(int argc, char **argv) {
  static const option longOptions[] = {
      {"base", required_argument, nullptr, Base},
      {"adapter", required_argument, nullptr, Adapter},
      {"group", required_argument, nullptr, Group},
      {"shared", required_argument, nullptr, Shared},
      {"lambda", required_argument, nullptr, Lambda},
      {"router", required_argument, nullptr, Router},
      {"router-weights", required_argument, nullptr, RouterWeights},
      {"granularity", required_argument, nullptr, Granularity},
      {"help", no_argument, nullptr, Help},
      {"version", no_argument, nullptr, Version},
      {nullptr, 0, nullptr, 0}};
  Options options;
  Result<bool> parsed = parseOptions(
      argc, argv, ":o:", longOptions, {"atmoe-package", kUsage, Help, Version},
      [&](int code) { return applyOption(code, options); });
  if (!parsed)
    return parsed.takeError();
  if (!*parsed)
    return std::optional<Options>();
  if (optind == argc || std::strcmp(argv[optind], "init") != 0)
    return usageError(optind == argc
                          ? "missing the command (init)"
                          : "unknown command '" + std::string(argv[optind]) +
                                "' (expected init)");
  if (optind + 1 != argc)
    return usageError("unexpected argument '" + std::string(argv[optind + 1]) +
                      "'");
  if (Status status = checkOptions(options); !status)
    return status.takeError();
  return std::optional<Options>(options);
}

//===----------------------------------------------------------------------===//
// The package
//===----------------------------------------------------------------------===//

Result<Json> readJson(const std::string &path, std::string_view what) {
  Result<std::unique_ptr<MappedFile>> file = MappedFile::open(path, what);
  if (!file)
    return file.takeError();
  Result<Json> json = parseJson((*file)->contents());
  if (!json)
    return fail(path + ": " + json.error());
  return json;
}

/// config.json's positive integer `key`.
Result<int64_t> configSize(const Json &config, const std::string &path,
                           const char *key) {
  std::optional<int64_t> value = config.is_object() && config.contains(key)
                                     ? jsonInteger(config[key])
                                     : std::nullopt;
  if (!value || *value <= 0)
    return fail(path + ": expected a positive integer '" + key + "'");
  return *value;
}

/// `target` relative to the directory `from` (both may not exist yet).
std::string relativePath(const std::string &target, const std::string &from) {
  return fs::weakly_canonical(fs::absolute(target))
      .lexically_relative(fs::weakly_canonical(fs::absolute(from)))
      .string();
}

/// Checks that every input exists before anything is written.
Status checkInputs(const Options &options) {
  for (const auto &[name, dir] : options.adapters)
    for (const char *file :
         {"adapter_config.json", "adapter_model.safetensors"})
      if (!fs::is_regular_file(dir + "/" + file))
        return fail(dir + "/" + file + ": not found (--adapter " + name +
                    " must name a PEFT adapter directory)");
  if (!options.routerWeights.empty() &&
      !fs::is_regular_file(options.routerWeights))
    return fail(options.routerWeights + ": not found (--router-weights)");
  return Status::success();
}

/// model.json, keys in the order docs/Importer.md describes them.
nlohmann::ordered_json modelJson(const Options &options) {
  nlohmann::ordered_json model = {
      {"format", "atmoe-model/1"},
      {"name", fs::path(options.output).filename().string()},
      {"base", {{"huggingface", relativePath(options.base, options.output)}}},
      {"weights", {"router.safetensors"}},
      {"router",
       {{"kind", options.router}, {"granularity", options.granularity}}}};
  nlohmann::ordered_json experts = nlohmann::ordered_json::object();
  for (const auto &[name, dir] : options.adapters)
    experts[name] = {{"peft", relativePath(dir, options.output)}};
  model["experts"] = experts;
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const auto &[group, members] : options.groups)
    groups.push_back({{"name", group}, {"experts", members}});
  model["groups"] = groups;
  if (options.shared)
    model["shared_expert"] = {{"name", *options.shared},
                              {"lambda", options.lambda.value_or(0.5)}};
  return model;
}

/// Zero router matrices for every layer: equal weights everywhere.
std::vector<TensorBytes> staticPlan(const Options &options, int64_t layers,
                                    int64_t hidden) {
  size_t experts = 0;
  for (const auto &group : options.groups)
    experts += group.second.size();
  std::vector<TensorBytes> tensors;
  auto zeros = [&](std::string name, int64_t rows) {
    tensors.push_back({std::move(name),
                       DType::F32,
                       {rows, hidden},
                       std::vector<uint8_t>(size_t(rows * hidden) * 4, 0)});
  };
  for (int64_t i = 0; i < layers; ++i) {
    std::string prefix = "layers." + std::to_string(i) + ".router.";
    if (options.router == "grouped_softmax")
      zeros(prefix + "group.weight", int64_t(options.groups.size()));
    zeros(prefix + "expert.weight", int64_t(experts));
  }
  return tensors;
}

Status writeText(const std::string &path, const std::string &text) {
  return writeFileAtomically(path, [&](int fd) {
    return writeAll(fd, text.data(), text.size(), path);
  });
}

Status writeRouter(const Options &options, const Json &config,
                   const std::string &configPath, const std::string &dir) {
  std::string path = dir + "/router.safetensors";
  if (!options.routerWeights.empty()) {
    Result<std::unique_ptr<MappedFile>> file =
        MappedFile::open(options.routerWeights, "a safetensors file");
    if (!file)
      return file.takeError();
    return writeText(path, std::string((*file)->contents()));
  }
  Result<int64_t> layers = configSize(config, configPath, "num_hidden_layers");
  Result<int64_t> hidden = configSize(config, configPath, "hidden_size");
  if (!layers || !hidden)
    return !layers ? layers.takeError() : hidden.takeError();
  std::vector<TensorBytes> plan = staticPlan(options, *layers, *hidden);
  return writeFileAtomically(
      path, [&](int fd) { return writeSafeTensors(fd, path, plan); });
}

Status run(const Options &options) {
  std::string configPath = options.base + "/config.json";
  Result<Json> config = readJson(configPath, "a config.json file");
  if (!config)
    return config.takeError();
  if (Status inputs = checkInputs(options); !inputs)
    return inputs;
  Status written = writeDirectoryAtomically(
      options.output, "atmoe-package", [&](const std::string &dir) {
        if (Status router = writeRouter(options, *config, configPath, dir);
            !router)
          return router;
        return writeText(dir + "/model.json",
                         modelJson(options).dump(2) + "\n");
      });
  if (written && options.routerWeights.empty())
    std::printf("atmoe-package: no --router-weights: %s/router.safetensors "
                "holds a static task plan (zero router matrices: every group "
                "and expert weighted equally in every layer)\n",
                options.output.c_str());
  return written;
}

} // namespace

int main(int argc, char **argv) {
  Result<std::optional<Options>> options = parseCommandLine(argc, argv);
  if (!options) {
    std::fprintf(stderr, "atmoe-package: error: %s\n", options.error().c_str());
    return exitCode(options.fault());
  }
  if (!*options)
    return kExitSuccess;
  if (Status status = run(**options); !status) {
    std::fprintf(stderr, "atmoe-package: error: %s\n", status.error().c_str());
    return exitCode(status.fault());
  }
  return kExitSuccess;
}
