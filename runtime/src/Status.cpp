//===- Status.cpp - The runtime's errors and version ----------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Status.h"

#include "atmoe_rt/support/Manifest.h"

#include <algorithm>

using namespace atmoe_rt;

namespace {
thread_local std::string lastError;
} // namespace

atmoe_rt_status_t atmoe_rt::fail(atmoe_rt_status_t status,
                                 std::string message) {
  lastError = std::move(message);
  // The contract promises a single line; some dlerror() texts and JSON
  // parser messages could carry a newline.
  std::replace(lastError.begin(), lastError.end(), '\n', ' ');
  return status;
}

const char *atmoe_rt_last_error(void) { return lastError.c_str(); }

const char *atmoe_rt_status_string(int status) {
  switch (status) {
  case ATMOE_RT_OK:
    return "ok";
  case ATMOE_RT_INVALID_ARGUMENT:
    return "invalid argument";
  case ATMOE_RT_INPUT_ERROR:
    return "input error";
  case ATMOE_RT_INTERNAL_ERROR:
    return "internal error";
  }
  return "unknown status";
}

const char *atmoe_rt_version(void) { return atmoeVersion(); }

int atmoe_rt_manifest_version(void) { return kManifestVersion; }
