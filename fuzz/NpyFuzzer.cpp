//===- NpyFuzzer.cpp - Fuzz the .npy reader ---------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The input is a whole .npy file, read with readNpyF32 as atmoe-run reads
// its --x and --h inputs. An accepted array must hold exactly the product of
// its shape, and writing it back with writeNpyF32 and reading that again must
// give the same shape and the same bits (the writer is what atmoe-run uses
// for its outputs).
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "atmoe_rt/support/Npy.h"

#include <cstdint>
#include <cstring>

using atmoe_rt::NpyArray;
using atmoe_rt::readNpyF32;
using atmoe_rt::Result;
using atmoe_rt::Status;
using atmoe_rt::writeNpyF32;
using namespace atmoe_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string inputPath = scratchPath("input.npy");
  static const std::string outputPath = scratchPath("output.npy");
  writeInput(inputPath, data, size);

  Result<NpyArray> array = readNpyF32(inputPath);
  if (!array)
    return 0;

  uint64_t count = 1;
  for (int64_t dim : array->shape) {
    if (dim < 0)
      fail("accepted a negative dimension");
    count *= static_cast<uint64_t>(dim);
  }
  if (count != array->data.size())
    fail("the data does not hold the product of the shape");

  if (Status written = writeNpyF32(outputPath, array->shape, array->data.data(),
                                   array->data.size());
      !written) {
    // Only a header too long for format 1.0 (a shape with very many
    // dimensions) may be refused.
    const std::string &message = written.error();
    if (message.find("does not fit in a version 1.0") == std::string::npos)
      fail("writeNpyF32 refused an array readNpyF32 accepted: " + message);
    return 0;
  }
  Result<NpyArray> again = readNpyF32(outputPath);
  if (!again)
    fail("cannot read back what writeNpyF32 wrote: " + again.error());
  if (again->shape != array->shape || again->data.size() != array->data.size())
    fail("the round trip changed the shape");
  if (!array->data.empty() &&
      std::memcmp(again->data.data(), array->data.data(),
                  array->data.size() * sizeof(float)) != 0)
    fail("the round trip changed the values");
  return 0;
}
