//===- Options.h - Command lines of the LLVM-free tools ---------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-run, atmoe-quantize and atmoe-package parse their options with
// getopt_long the same way: each option goes to the tool, and an unknown
// option or one without its value is one usage error that names it.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_OPTIONS_H
#define ATMOE_RT_SUPPORT_OPTIONS_H

#include "atmoe_rt/support/Result.h"

#include <functional>
#include <getopt.h>
#include <string>

namespace atmoe_rt {

/// A usage error (exit code 2).
Error usageError(std::string message);

/// A tool, for its messages, --help and --version.
struct ToolInfo {
  std::string name;
  /// What --help prints before the exit codes; with its option code (and
  /// --version's), parseOptions answers them itself. 0: passed to `apply`.
  const char *usage = nullptr;
  int helpCode = 0, versionCode = 0;
};

/// Runs getopt_long over `argv` (`shortOptions` must start with ':'), calling
/// `apply` with each option's code (`optarg` holds its value) and stopping
/// at the first failure; positional arguments are left from `optind` on. An
/// unknown option or one missing its value is a usage error naming it and
/// pointing at `TOOL --help`. Returns false once it has printed --help's or
/// --version's answer (the tool then exits successfully).
Result<bool> parseOptions(int argc, char **argv, const char *shortOptions,
                          const option *longOptions, const ToolInfo &tool,
                          const std::function<Status(int code)> &apply);

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_OPTIONS_H
