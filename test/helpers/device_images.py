#!/usr/bin/env python3
# ===- device_images.py - list the device code a compiled model embeds ----===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Lists the GPU images inside a compiled model (.so) and its manifest, for
lit tests: one line per distinct image kind, with how many there are, e.g.

  manifest device=cuda compiled_for=nvptx:sm_90
  argument segments memory=host
  image cuda-elf sm_90 x26 shared-memory-kernels x8
  image ptx sm_90 x26

Reads CUDA fatbins (magic 0xBA55ED50: each entry is ELF or PTX with its SM
version), bare CUDA ELF (EM_CUDA) and AMDGPU code objects (EM_AMDGPU, the
gfx target from e_flags) and the manifest (the .atmoe_manifest section of
the host library). For ELF images it also counts the kernels that use
shared (workgroup) memory: a non-empty `.nv.shared.<kernel>` section in a
CUDA ELF, a non-zero group_segment_fixed_size in an AMDGPU kernel descriptor
(the `<kernel>.kd` symbol). Independent of the compiler: it only knows the
published file formats.
"""

import json
import struct
import sys
from collections import Counter

FATBIN_MAGIC = 0xBA55ED50
EM_CUDA = 190
EM_AMDGPU = 224
# EF_AMDGPU_MACH values (LLVM's ELF.h) for the chips atmoe accepts.
AMDGPU_MACH = {0x3F: "gfx90a", 0x4C: "gfx942", 0x4F: "gfx950",
               0x41: "gfx1100", 0x48: "gfx1200"}


def elf_sections(data, start):
    """(name, type, file offset, address, size, link) of each section of the
    ELF64 image at data[start:]."""
    shoff = struct.unpack_from("<Q", data, start + 0x28)[0]
    entsize, count, names = struct.unpack_from("<HHH", data, start + 0x3A)
    headers = [struct.unpack_from("<IIQQQQI", data, start + shoff + i * entsize)
               for i in range(count)]
    strtab = start + headers[names][4]

    def name(offset):
        return data[strtab + offset:data.index(b"\0", strtab + offset)].decode()
    return [(name(h[0]), h[1], start + h[4], h[3], h[5], h[6]) for h in headers]


def shared_memory_kernels(data, start, machine):
    sections = elf_sections(data, start)
    if machine == EM_CUDA:
        return sum(1 for name, kind, _, _, size, _ in sections
                   if name.startswith(".nv.shared.") and size > 0)
    count = 0
    for _, kind, offset, _, size, link in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        names = sections[link][2]
        for entry in range(offset, offset + size, 24):
            name, _, _, index, value = struct.unpack_from("<IBBHQ", data, entry)
            symbol = data[names + name:data.index(b"\0", names + name)]
            if symbol.endswith(b".kd"):
                _, _, section_offset, address, _, _ = sections[index]
                descriptor = section_offset + value - address
                count += struct.unpack_from("<I", data, descriptor)[0] > 0
    return count


def fatbin_entries(data, start):
    _, _, header, size = struct.unpack_from("<IHHQ", data, start)
    offset, end = start + header, start + header + size
    while offset + 32 <= end:
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, offset)
        arch = struct.unpack_from("<I", data, offset + 28)[0]
        image = offset + entry_header
        shared = (kind == 2 and data[image:image + 4] == b"\x7fELF"
                  and shared_memory_kernels(data, image, EM_CUDA))
        yield ({1: "ptx", 2: "cuda-elf"}.get(kind, "kind%d" % kind), "sm_%d" % arch), shared
        offset += entry_header + payload
    return end


def main():
    data = open(sys.argv[1], "rb").read()
    images = Counter()
    shared = Counter()
    inside_fatbin = []
    position = 0
    while True:
        position = data.find(struct.pack("<I", FATBIN_MAGIC), position)
        if position < 0:
            break
        end = position
        for image, kernels in fatbin_entries(data, position):
            images[image] += 1
            shared[image] += kernels
        _, _, header, size = struct.unpack_from("<IHHQ", data, position)
        inside_fatbin.append((position, position + header + size))
        position += 4
    position = 1  # skip the host ELF header
    while True:
        position = data.find(b"\x7fELF", position)
        if position < 0:
            break
        if not any(a <= position < b for a, b in inside_fatbin):
            machine = struct.unpack_from("<H", data, position + 18)[0]
            flags = struct.unpack_from("<I", data, position + 48)[0]
            image = None
            if machine == EM_CUDA:
                image = ("cuda-elf", "sm_%d" % ((flags >> 8) & 0xFF))
            elif machine == EM_AMDGPU:
                image = ("amdgpu-elf", AMDGPU_MACH.get(flags & 0xFF, hex(flags & 0xFF)))
            if image:
                images[image] += 1
                shared[image] += shared_memory_kernels(data, position, machine)
        position += 4

    # The manifest has a section of its own (docs/RuntimeABI.md).
    manifest_sections = [(offset, size) for name, _, offset, _, size, _
                         in elf_sections(data, 0) if name == ".atmoe_manifest"]
    if manifest_sections:
        offset, size = manifest_sections[0]
        manifest = json.loads(data[offset:offset + size].rstrip(b"\0"))
        print("manifest device=%s compiled_for=%s" % (
            manifest.get("device", "cpu"), manifest.get("compiled_for", "?")))
        for layer in manifest["layers"]:
            for argument in layer["arguments"]:
                if argument.get("memory") == "host":
                    print("argument %s memory=host" % argument.get("name"))
    for (kind, chip), count in sorted(images.items()):
        line = "image %s %s x%d" % (kind, chip, count)
        if kind != "ptx":
            line += " shared-memory-kernels x%d" % shared[(kind, chip)]
        print(line)
    if not images:
        print("no device images")


if __name__ == "__main__":
    main()
