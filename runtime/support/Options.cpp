//===- Options.cpp - Command lines of the LLVM-free tools -----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Options.h"

#include "atmoe_rt/support/Fault.h"
#include "atmoe_rt/support/Manifest.h"

#include <cstdio>

using namespace atmoe_rt;

Error atmoe_rt::usageError(std::string message) {
  return fail(Fault::Usage, std::move(message));
}

/// Prints --help's or --version's answer.
static void answer(const ToolInfo &tool, int code) {
  if (code == tool.helpCode) {
    std::fputs(tool.usage, stdout);
    std::fputs(kExitCodeHelp, stdout);
  } else {
    std::printf("%s %s\n", tool.name.c_str(), atmoeVersion());
  }
}

Result<bool>
atmoe_rt::parseOptions(int argc, char **argv, const char *shortOptions,
                       const option *longOptions, const ToolInfo &tool,
                       const std::function<Status(int code)> &apply) {
  opterr = 0;
  bool answered = false;
  for (int code; (code = getopt_long(argc, argv, shortOptions, longOptions,
                                     nullptr)) != -1;) {
    std::string option = argv[optind - 1];
    if (code == ':')
      return usageError("option '" + option + "' needs a value");
    if (code == '?')
      return usageError("unknown option '" + option + "' (" + tool.name +
                        " --help lists the options)");
    if (code && (code == tool.helpCode || code == tool.versionCode)) {
      if (!answered)
        answer(tool, code);
      answered = true;
    } else if (Status status = apply(code); !status) {
      return status.takeError();
    }
  }
  return !answered;
}
