//===- ElfSection.cpp - One named section of an ELF file ------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/ElfSection.h"

#include <cstring>
#include <elf.h>

using namespace atmoe_rt;

namespace {

/// A copy of the `T` at `offset` of `contents`, if it lies inside.
template <typename T>
std::optional<T> readAt(std::string_view contents, uint64_t offset) {
  if (offset > contents.size() || contents.size() - offset < sizeof(T))
    return std::nullopt;
  T value;
  std::memcpy(&value, contents.data() + offset, sizeof(T));
  return value;
}

/// `size` bytes at `offset` of `contents`, if they lie inside.
std::optional<std::string_view> sliceAt(std::string_view contents,
                                        uint64_t offset, uint64_t size) {
  if (offset > contents.size() || contents.size() - offset < size)
    return std::nullopt;
  return contents.substr(offset, size);
}

Result<Elf64_Ehdr> readHeader(std::string_view contents) {
  std::optional<Elf64_Ehdr> header = readAt<Elf64_Ehdr>(contents, 0);
  if (!header || std::memcmp(header->e_ident, ELFMAG, SELFMAG) != 0)
    return fail("not an ELF file");
  if (header->e_ident[EI_CLASS] != ELFCLASS64 ||
      header->e_ident[EI_DATA] != ELFDATA2LSB)
    return fail("not a 64-bit little-endian ELF file");
  if (header->e_shentsize != sizeof(Elf64_Shdr))
    return fail("malformed ELF file: section headers of " +
                std::to_string(header->e_shentsize) + " bytes");
  return *header;
}

} // namespace

Status atmoe_rt::checkElfExtent(std::string_view contents) {
  Result<Elf64_Ehdr> header = readHeader(contents);
  if (!header)
    return header.takeError();
  uint64_t size = contents.size();
  auto cut = [&](const std::string &what, uint64_t end) {
    return fail("the file is " + std::to_string(size) + " bytes, but its " +
                what + " extends to byte " + std::to_string(end) +
                " (cut short?)");
  };
  for (unsigned i = 0; i < header->e_phnum; ++i) {
    uint64_t at = header->e_phoff + uint64_t(i) * sizeof(Elf64_Phdr);
    std::optional<Elf64_Phdr> segment = readAt<Elf64_Phdr>(contents, at);
    if (!segment)
      return cut("program header " + std::to_string(i),
                 at + sizeof(Elf64_Phdr));
    if (segment->p_offset > size ||
        size - segment->p_offset < segment->p_filesz)
      return cut("segment " + std::to_string(i),
                 segment->p_offset + segment->p_filesz);
  }
  uint64_t sectionsEnd =
      header->e_shoff + uint64_t(header->e_shnum) * sizeof(Elf64_Shdr);
  if (header->e_shoff > size || sectionsEnd > size)
    return cut("section header table", sectionsEnd);
  return Status::success();
}

Result<std::optional<std::string_view>>
atmoe_rt::findElfSection(std::string_view contents, std::string_view name) {
  Result<Elf64_Ehdr> header = readHeader(contents);
  if (!header)
    return header.takeError();
  auto sectionHeader = [&](unsigned index) {
    return readAt<Elf64_Shdr>(
        contents, header->e_shoff + uint64_t(index) * sizeof(Elf64_Shdr));
  };
  std::optional<Elf64_Shdr> names = sectionHeader(header->e_shstrndx);
  std::optional<std::string_view> nameTable =
      names ? sliceAt(contents, names->sh_offset, names->sh_size)
            : std::nullopt;
  if (!nameTable)
    return fail("malformed ELF file: no readable section names");
  for (unsigned i = 0; i < header->e_shnum; ++i) {
    std::optional<Elf64_Shdr> section = sectionHeader(i);
    if (!section)
      return fail("malformed ELF file: section header " + std::to_string(i) +
                  " lies outside the file");
    if (section->sh_name >= nameTable->size())
      continue;
    std::string_view sectionName = nameTable->substr(section->sh_name);
    sectionName = sectionName.substr(0, sectionName.find('\0'));
    if (sectionName != name)
      continue;
    std::optional<std::string_view> data =
        section->sh_type == SHT_NOBITS
            ? std::nullopt
            : sliceAt(contents, section->sh_offset, section->sh_size);
    if (!data)
      return fail("malformed ELF file: section " + std::string(name) +
                  " lies outside the file");
    return std::optional<std::string_view>(*data);
  }
  return std::optional<std::string_view>();
}
