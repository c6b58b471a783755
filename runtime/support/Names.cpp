//===- Names.cpp - Names that may become file names -----------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Names.h"

#include <cstdio>

using namespace atmoe_rt;

namespace {

bool isPlainCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

} // namespace

std::string atmoe_rt::plainNameProblem(std::string_view name) {
  if (name.empty())
    return "is empty";
  if (name.size() > kMaxPlainNameLength)
    return "is " + std::to_string(name.size()) + " bytes long, more than " +
           std::to_string(kMaxPlainNameLength);
  if (name == "." || name == "..")
    return "is a directory name";
  for (char c : name)
    if (!isPlainCharacter(c))
      return "contains '" + escapeName(std::string_view(&c, 1)) +
             "'; names may hold only letters, digits, '_', '.' and '-'";
  return "";
}

bool atmoe_rt::isPackageRelative(std::string_view path) {
  if (path.empty() || path.front() == '/')
    return false;
  for (unsigned char c : path)
    if (c < 0x20 || c == 0x7f)
      return false;
  return true;
}

std::string atmoe_rt::escapeName(std::string_view name) {
  std::string text;
  for (unsigned char c : name) {
    if (c >= 0x20 && c < 0x7f) {
      text += char(c);
      continue;
    }
    char escaped[5];
    std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
    text += escaped;
  }
  return text;
}
