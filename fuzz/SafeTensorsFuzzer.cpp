//===- SafeTensorsFuzzer.cpp - Fuzz the safetensors reader ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The input is a whole .safetensors file. It is opened with
// SafeTensorsFile::open (header validation) and, when accepted, every tensor
// is looked up and read the way the importer and the runtime read them. The
// checks below are the reader's promises: a tensor that validated lies inside
// the file, and its size is its shape times its element size.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "atmoe_rt/support/SafeTensors.h"

#include "llvm/Support/Endian.h"

#include <cstdint>
#include <cstring>

using atmoe_rt::DType;
using atmoe_rt::dtypeSize;
using atmoe_rt::Result;
using atmoe_rt::SafeTensorsFile;
using atmoe_rt::TensorInfo;
using namespace atmoe_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path = scratchPath("input.safetensors");
  writeInput(path, data, size);

  Result<std::unique_ptr<SafeTensorsFile>> file = SafeTensorsFile::open(path);
  if (!file)
    return 0;

  // open() accepted the file, so the length prefix is there and in range.
  uint64_t dataSize = size - 8 - llvm::support::endian::read64le(data);

  uint64_t previousEnd = 0;
  for (const TensorInfo &info : (*file)->tensors()) {
    if (info.begin > info.end || info.end > dataSize)
      fail("tensor '" + info.name + "' lies outside the data section");
    if (info.begin != info.end) {
      if (info.begin < previousEnd)
        fail("tensor '" + info.name + "' overlaps its predecessor");
      previousEnd = info.end;
    }
    uint64_t elements = static_cast<uint64_t>(info.numElements());
    if (elements * dtypeSize(info.dtype) != info.numBytes())
      fail("tensor '" + info.name + "': shape x dtype != data_offsets span");
    if ((*file)->lookup(info.name) != &info)
      fail("lookup('" + info.name + "') does not find the tensor");

    // Read every byte of every float tensor, as binding weights does.
    Result<std::vector<float>> values = (*file)->readAsF32(info);
    bool isFloat = info.dtype == DType::F32 || info.dtype == DType::F16 ||
                   info.dtype == DType::BF16 || info.dtype == DType::F64;
    if (!values) {
      if (isFloat)
        fail("readAsF32 rejected float tensor '" + info.name + "'");
      continue;
    }
    if (!isFloat || values->size() != elements)
      fail("readAsF32('" + info.name + "') returned the wrong element count");
    if ((*file)->isDirectlyUsableF32(info) && info.numBytes() != 0 &&
        std::memcmp(values->data(), info.data, info.numBytes()) != 0)
      fail("tensor '" + info.name + "': in-place data differs from the copy");
  }
  for (const auto &entry : (*file)->metadata())
    (void)entry.second.size();
  return 0;
}
