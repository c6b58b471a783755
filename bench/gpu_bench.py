#!/usr/bin/env python3
# ===- gpu_bench.py - the SPEC section 6 ratios on a GPU --------------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""SPEC §6 on a GPU: time of the compiled LoRA-MoE layer over the time of the
compiled base linear, both compiled for the GPU, side by side in one run.

  python3 bench/gpu_bench.py [--build build] [--target nvptx[:sm_XX]]
                             [--d 4096,2048] [--tokens 1,16,128,512]
                             [--granularity token,sequence] [--l2-mb 50]
                             [--budget 2] [--json FILE]

Needs a build with the CUDA support library (CMake found the CUDA toolkit:
build/lib/libatmoe_rt_cuda.so), the NVIDIA driver and a GPU. Per d and
granularity it writes the package (bench/workload.py: K LoRA-MoE layers and K
base linears, K so that K copies of W are at least twice the GPU's L2, so
that weights come from device memory), compiles it for --target (default:
nvptx for the chip of device 0) and for the host CPU, then per T:

 - times atmoe_rt_layer_forward round-robin over the K layers of each set
   with bench/LayerBench.cpp (medians of whole calls: they include copying x
   in and y out and the stream synchronisation, for both sets alike);
 - checks the GPU's outputs against the CPU build of the same package
   (SPEC §2 tolerance), so a wrong kernel cannot produce a figure.

Prints the medians and moe/base per row and writes them to --json.
--target host runs the same steps on the CPU: a dry run of the plumbing on a
machine without a GPU. Not a test: nothing here asserts a speed.
"""

import argparse
import ctypes
import json
import math
import os
import shutil
import sys
import tempfile

import run_bench
from run_bench import np

HERE = os.path.dirname(os.path.abspath(__file__))


def device_chip():
    """sm_XY of CUDA device 0, or None without a driver or device."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    device, count = ctypes.c_int(0), ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or \
            count.value == 0 or cuda.cuDeviceGet(ctypes.byref(device), 0) != 0:
        return None
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device)  # CC major
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)  # CC minor
    return "sm_%d%d" % (major.value, minor.value)


def run_sets(driver, compiled, package, tokens, x_path, copies, extra, timing):
    moe = ",".join(str(k) for k in range(copies))
    base = ",".join(str(copies + k) for k in range(copies))
    return run_bench.run_driver_once(
        [driver, "--model", compiled, "--package", package, "--tokens", str(tokens),
         "--x", x_path, "--set", "atmoe_moe=" + moe, "--set", "atmoe_base=" + base]
        + extra + timing, dict(os.environ))


def measure(args, driver, package, compiled, reference, d, granularity, tokens, copies,
            work, rng):
    x_path = os.path.join(work, "x.bin")
    rng.standard_normal((tokens, d)).astype(np.float32).tofile(x_path)
    extra = []
    if granularity == "sequence":
        lengths = [tokens] if tokens == 1 else [tokens // 2, tokens - tokens // 2]
        h_path = os.path.join(work, "h.bin")
        rng.standard_normal((len(lengths), d)).astype(np.float32).tofile(h_path)
        extra = ["--h", h_path, "--segments", ",".join(map(str, lengths))]
    dumps = {}
    for name in ("device", "cpu"):
        dumps[name] = os.path.join(work, "dump-" + name)
        shutil.rmtree(dumps[name], ignore_errors=True)
        os.makedirs(dumps[name])
    timing = ["--budget", str(args.budget), "--min-rounds", "3", "--max-rounds", "200",
              "--dump", dumps["device"]]
    results = run_sets(driver, compiled, package, tokens, x_path, copies, extra, timing)
    run_sets(driver, reference, package, tokens, x_path, copies, extra,
             ["--budget", "0", "--min-rounds", "1", "--max-rounds", "1", "--dump",
              dumps["cpu"]])
    errors = {}
    for name in ("atmoe_moe", "atmoe_base"):
        want = np.fromfile(os.path.join(dumps["cpu"], name + ".bin"), np.float32)
        got = np.fromfile(os.path.join(dumps["device"], name + ".bin"), np.float32)
        error = float(np.abs(got - want).max()) if got.shape == want.shape else math.inf
        errors[name] = (error, error <= 1e-3 * (1.0 + float(np.abs(want).max())))
    moe, base = results["atmoe_moe"]["median_us"], results["atmoe_base"]["median_us"]
    return {"d": d, "granularity": granularity, "tokens": tokens, "copies": copies,
            "impl": results, "moe_over_base": round(moe / base, 3),
            "max_error_vs_cpu": {k: v[0] for k, v in errors.items()},
            "check_ok": all(ok for _, ok in errors.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(run_bench.ROOT, "build"))
    parser.add_argument("--target", help="atmoe-compile target (default nvptx:<device 0>)")
    parser.add_argument("--d", default="4096,2048")
    parser.add_argument("--tokens", default="1,16,128,512")
    parser.add_argument("--granularity", default="token,sequence")
    parser.add_argument("--l2-mb", type=float, default=50.0,
                        help="GPU L2 size in MB (default 50: H100)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds of timing per row and set")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "gpu.json"))
    parser.add_argument("--work", help="scratch directory (default: a temporary one)")
    args = parser.parse_args()

    target = args.target
    if not target or target == "nvptx":
        chip = device_chip()
        if not chip:
            raise SystemExit("gpu_bench: no CUDA driver or device here (--target host "
                             "runs the steps on the CPU)")
        target = "nvptx:" + chip
    compiler, drivers = run_bench.build_drivers(os.path.abspath(args.build),
                                                only={"atmoe-layer-bench"})
    driver = drivers["atmoe-layer-bench"]
    work = args.work or tempfile.mkdtemp(prefix="atmoe-gpu-bench-")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    try:
        for d in [int(v) for v in args.d.split(",")]:
            copies = max(1, math.ceil(2 * args.l2_mb * 1e6 / (4 * d * d)))
            for granularity in args.granularity.split(","):
                package = run_bench.write_package(work, d, granularity, copies)
                compiled, seconds = run_bench.compile_package(compiler, package, target)
                reference, _ = run_bench.compile_package(compiler, package)
                run_bench.log("d=%d %s: compiled for %s in %.1f s" % (d, granularity, target,
                                                                      seconds))
                for tokens in [int(v) for v in args.tokens.split(",")]:
                    row = measure(args, driver, package, compiled, reference, d,
                                  granularity, tokens, copies, work, rng)
                    row["target"] = target
                    rows.append(row)
                    print("d=%-5d %-8s T=%-4d moe %10.1f us  base %10.1f us  moe/base %.3f%s"
                          % (d, granularity, tokens, row["impl"]["atmoe_moe"]["median_us"],
                             row["impl"]["atmoe_base"]["median_us"], row["moe_over_base"],
                             "" if row["check_ok"] else "  WRONG vs CPU %s"
                             % row["max_error_vs_cpu"]), flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"git": run_bench.git_state(), "target": target, "rows": rows}, f, indent=1)
    print("results written to %s" % args.json)
    if not all(r["check_ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
