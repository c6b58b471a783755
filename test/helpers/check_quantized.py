#!/usr/bin/env python3
"""Checks a package atmoe-quantize wrote against the float package it read.

  check_quantized.py FLOAT_PKG QUANTIZED_PKG REPORT [--adapter-dtype T]

- every base weight's error, recomputed here from the written GPTQ tensors
  (reference.dequantize) and the float weights, matches the tool's report
  line "layers.{i}.{proj}: B-bit, group size G: max_abs_error=M
  mean_abs_error=A" to its 3 printed digits, and is at most one quantisation
  step of its group (half a step, plus the clipped end of the range);
- adapters are stored in T (when given) with their values rounded to T;
- every other tensor is byte for byte the float package's.
Prints "ok N projections" or exits with the first difference.
"""

import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402

REPORT = re.compile(r"^(\S+): (\d+)-bit, group size (\d+): max_abs_error=(\S+) mean_abs_error=(\S+)$")


def raw_tensors(path):
    return {name: (info["dtype"], raw)
            for name, (info, raw) in reference.read_raw_safetensors(path).items()}


def main():
    float_pkg, quant_pkg, report_path = sys.argv[1:4]
    adapter_dtype = sys.argv[5].upper() if len(sys.argv) > 5 else None
    with open(os.path.join(quant_pkg, "model.json")) as f:
        model = json.load(f)
    config = model["quantization"]
    reported = {}
    with open(report_path) as f:
        for line in f:
            m = REPORT.match(line.strip())
            if m:
                reported[m.group(1)] = (int(m.group(3)), float(m.group(4)), float(m.group(5)))
    checked = 0
    for name in model["weights"]:
        before = reference.read_safetensors(os.path.join(float_pkg, name))
        after = reference.read_safetensors(os.path.join(quant_pkg, name))
        raw_before = raw_tensors(os.path.join(float_pkg, name))
        raw_after = raw_tensors(os.path.join(quant_pkg, name))
        for tensor, value in before.items():
            if tensor.endswith(".weight") and tensor[:-len("weight")] + "qweight" in after:
                prefix = tensor[:-len("weight")]
                group, max_err, mean_err = reported[prefix[:-1]]
                w = reference.dequantize(after, prefix, config, value.shape[1])
                error = np.abs(w - value)
                if abs(error.max() - max_err) > 6e-3 * max_err + 1e-7 or \
                        abs(error.mean() - mean_err) > 6e-3 * mean_err + 1e-7:
                    sys.exit("%s: reported max %g mean %g, recomputed %g %g"
                             % (prefix, max_err, mean_err, error.max(), error.mean()))
                step = after[prefix + "scales"].T.repeat(group, axis=1)
                if np.any(error > step + 1e-6):
                    sys.exit("%s: an error exceeds a quantisation step" % prefix)
                checked += 1
            elif ".lora_A." in tensor or ".lora_B." in tensor:
                dtype = raw_after[tensor][0]
                if adapter_dtype and dtype != adapter_dtype:
                    sys.exit("%s: stored as %s, expected %s" % (tensor, dtype, adapter_dtype))
                if np.abs(after[tensor] - value).max() > 1e-2 * (1 + np.abs(value).max()):
                    sys.exit("%s: values changed beyond rounding" % tensor)
            elif raw_after[tensor] != raw_before[tensor]:
                sys.exit("%s: not copied as is" % tensor)
    print("ok %d projections" % checked)


if __name__ == "__main__":
    main()
