//===- ElfSection.h - One named section of an ELF file ----------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The runtime reads a compiled model's manifest from the file before it loads
// the model (a GPU model's constructors need their device support loaded
// first), with nothing but <elf.h>: the manifest has a section of its own
// (docs/RuntimeABI.md).
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_ELFSECTION_H
#define ATMOE_RT_SUPPORT_ELFSECTION_H

#include "atmoe_rt/support/Result.h"

#include <optional>
#include <string>
#include <string_view>

namespace atmoe_rt {

/// Checks that the ELF file `contents` holds every segment and section header
/// its headers promise; an error says how far short it falls.
Status checkElfExtent(std::string_view contents);

/// The contents of section `name` of the 64-bit little-endian ELF file
/// `contents`; std::nullopt when it has no such section. Errors say what is
/// malformed (callers name the file).
Result<std::optional<std::string_view>>
findElfSection(std::string_view contents, std::string_view name);

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_ELFSECTION_H
