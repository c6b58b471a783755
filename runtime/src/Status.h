//===- Status.h - The runtime's errors --------------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every C API function that fails sets the calling thread's last error (one
// line) and returns a status saying whose fault it was.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_STATUS_H
#define ATMOE_RUNTIME_SRC_STATUS_H

#include "atmoe_rt/atmoe_rt.h"

#include "atmoe_rt/support/Result.h"

#include <string>

namespace atmoe_rt {

/// Records `message` as the last error and returns `status`.
atmoe_rt_status_t fail(atmoe_rt_status_t status, std::string message);

/// The same for a failed Result.
inline atmoe_rt_status_t fail(atmoe_rt_status_t status, Error error) {
  return fail(status, std::move(error.message));
}

} // namespace atmoe_rt

#endif // ATMOE_RUNTIME_SRC_STATUS_H
