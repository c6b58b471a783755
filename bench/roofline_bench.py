#!/usr/bin/env python3
# ===- roofline_bench.py - issue 13's CPU targets in one run ----------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""The CPU kernels against the host's roofline, OpenBLAS and their own floor,
every storage type and both x86-64 targets side by side in one run.

  python3 bench/roofline_bench.py [--build build] [--d 4096,2048]
      [--granularity token,sequence] [--tokens 1,16,128,512] [--threads 1,2]
      [--precisions f32,bf16,int8,int4,int8-a8,int4-a8]
      [--avx2-precisions f32,bf16] [--budget 1] [--no-blas]
      [--no-compile-time] [--json FILE]

What it measures, with OMP_WAIT_POLICY=PASSIVE unless the caller set it:

 1. the host's limits per thread count (atmoe-probe, before and after the
    rows, the best kept): DRAM read bandwidth (512 MiB), L3 read bandwidth
    (16 MiB read 16 times per pass), the FMA peak with 64-byte vectors and
    with 32-byte ones (the peak of code compiled for x86-64-v3);
 2. per d, granularity and precision (bench/precision_bench.py's packages:
    f32, bf16, GPTQ int8/int4 g128 with bf16 adapters, and those compiled
    with --int8-activations), K copies so that the stored base weights of
    all copies are >= 4x the L3 cache; compiled with --target=host and, for
    --avx2-precisions, --target=x86-64-v3; per T and thread count the
    LoRA-MoE layer and the base linear round-robin over the copies (weights
    from DRAM), and for f32 OpenBLAS's base (sgemv / sgemm) and its
    concatenated LoRA layer on the same weights (bench/BlasBench.cpp);
 3. at T = 1 and token granularity, where the stored base fits in half the
    L3 cache: one base linear called over and over (weights L3-resident),
    and OpenBLAS's sgemv the same way for f32;
 4. compile time of the 32-layer Llama-7B-shaped package
    (bench/compile_bench.py --cases llama7b-32).

It prints per row the figure each target of issue 13 is judged on and
whether it is met, and the layer's floor: the LoRA-MoE layer's roofline
bound over the base's, max(bytes / bandwidth, FLOP / peak) of each with
the stored bytes of the precision. Not a test: nothing here asserts a
speed.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import precision_bench as pb
import run_bench as rb

np = rb.np

TARGETS = {"host": "host", "avx2": "x86-64-v3"}
# Packages the opt-in precisions share: the same weights, another compile.
PACKAGE_OF = {"int8-a8": "int8", "int4-a8": "int4"}
RESIDENT_REPEATS = 8


def probe_limits(probe, threads_list):
    limits = {}
    for t in threads_list:
        dram = rb.probe(probe, t)
        l3 = rb.probe(probe, t, ["--mib", "16", "--sweeps", "16", "--passes", "20",
                                 "--fma-seconds", "0"])
        avx2 = rb.probe(probe, t, ["--mib", "16", "--passes", "1", "--vector-bytes", "32"])
        limits[t] = {"read_GBps": dram["read_GBps"], "l3_GBps": l3["read_GBps"],
                     "peak_gflops": dram["peak_gflops"],
                     "avx2_peak_gflops": avx2["peak_gflops"]}
        rb.log("probe, %d thread(s): %s" % (t, limits[t]))
    return limits


def best_of(first, second):
    return {t: {k: max(first[t][k], second[t][k]) for k in first[t]} for t in first}


def write_inputs(work, d, tokens, granularity):
    """x (and h, segments for sequence granularity: two sequences)."""
    rng = np.random.default_rng(tokens)
    x_path = os.path.join(work, "x.bin")
    rng.standard_normal((tokens, d)).astype(np.float32).tofile(x_path)
    if granularity == "token":
        return x_path, [], tokens
    lengths = [tokens] if tokens == 1 else [tokens // 2, tokens - tokens // 2]
    h_path = os.path.join(work, "h.bin")
    rng.standard_normal((len(lengths), d)).astype(np.float32).tofile(h_path)
    return x_path, ["--h", h_path, "--segments", ",".join(map(str, lengths))], len(lengths)


def run_layers(drivers, compiled, package, tokens, x_path, extra, sets, threads, budget):
    command = [drivers["atmoe-layer-bench"], "--model", compiled, "--package", package,
               "--tokens", str(tokens), "--x", x_path, "--budget", str(budget)] + extra
    for name, layers in sets.items():
        command += ["--set", "%s=%s" % (name, ",".join(map(str, layers)))]
    return {k: v["median_us"] for k, v in
            rb.run_driver_once(command, rb.thread_env(threads)).items()}


def run_blas(drivers, package, d, tokens, x_path, extra, granularity, sets, threads, budget):
    command = [drivers["atmoe-blas-bench"], "--package", package, "--d", str(d),
               "--tokens", str(tokens), "--x", x_path, "--granularity", granularity,
               "--threads", str(threads), "--rank", str(rb.RANK), "--groups", str(rb.GROUPS),
               "--scale", str(rb.ALPHA / rb.RANK), "--budget", str(budget)] + extra
    for name, layers in sets.items():
        command += ["--set", "%s=%s" % (name, ",".join(map(str, layers)))]
    return {k: v["median_us"] for k, v in
            rb.run_driver_once(command, rb.thread_env(threads)).items()}


def measure_package(args, drivers, compiler, quantize_tool, work, d, granularity, precision):
    """Rows of one package: every target it is compiled for, T and threads."""
    stored = pb.stored_bytes(d, precision, False)
    copies = max(2, -(-4 * rb.l3_bytes() // stored))
    package = pb.make_package(work, d, copies, PACKAGE_OF.get(precision, precision),
                              quantize_tool, granularity)
    targets = ["host"] + (["avx2"] if precision in args.avx2_precisions else [])
    rows, resident = [], []
    moe = list(range(copies))
    base = list(range(copies, 2 * copies))
    for target in targets:
        compiled, seconds = rb.compile_package(compiler, package, TARGETS[target],
                                               pb.PRECISIONS[precision][2])
        rb.log("d=%d %s %s %s: %d copies, compiled in %.1f s"
               % (d, granularity, precision, target, copies, seconds))
        blas = (not args.no_blas and precision == "f32" and target == "host")
        for tokens in args.tokens:
            x_path, extra, router_rows = write_inputs(work, d, tokens, granularity)
            for threads in args.threads:
                times = run_layers(drivers, compiled, package, tokens, x_path, extra,
                                   {"atmoe_moe": moe, "atmoe_base": base}, threads,
                                   args.budget)
                if blas:
                    times.update(run_blas(drivers, package, d, tokens, x_path, extra,
                                          granularity, {"blas_lora": moe, "blas_base": base},
                                          threads, args.budget))
                row = {"d": d, "granularity": granularity, "precision": precision,
                       "target": target, "tokens": tokens, "threads": threads,
                       "router_rows": router_rows, "copies": copies, "us": times}
                rows.append(row)
                rb.log("%s" % row)
        if granularity == "token" and 1 in args.tokens and 2 * stored <= rb.l3_bytes():
            x_path, _, _ = write_inputs(work, d, 1, "token")
            for threads in args.threads:
                again = [copies] * RESIDENT_REPEATS
                times = run_layers(drivers, compiled, package, 1, x_path, [],
                                   {"atmoe_base": again}, threads, args.budget)
                if blas:
                    times.update(run_blas(drivers, package, d, 1, x_path, [], "token",
                                          {"blas_base": again}, threads, args.budget))
                resident.append({"d": d, "precision": precision, "target": target,
                                 "threads": threads, "us": times})
                rb.log("resident: %s" % resident[-1])
    shutil.rmtree(package, ignore_errors=True)
    shutil.rmtree(package + "-float", ignore_errors=True)
    return rows, resident


def bound_us(d, tokens, router_rows, precision, lora, limits, target):
    """The roofline bound of one call in µs: stored bytes over the DRAM
    bandwidth or FLOPs over the target's FMA peak, whichever is longer."""
    peak = limits["peak_gflops" if target == "host" else "avx2_peak_gflops"]
    memory = pb.stored_bytes(d, precision, lora) / (limits["read_GBps"] * 1e3)
    compute = rb.layer_flops(d, tokens, router_rows, lora) / (peak * 1e3)
    return max(memory, compute)


def judge(row, rows, limits):
    """The issue-13 figures of one row: [(target, figure, met)]."""
    lim = limits[row["threads"]]
    us, t, d, p = row["us"], row["tokens"], row["d"], row["precision"]
    args = (d, t, row["router_rows"], p)
    moe_bound = bound_us(*args, True, lim, row["target"])
    base_bound = bound_us(*args, False, lim, row["target"])
    floor = moe_bound / base_bound
    out = [("layer/base <= floor + 0.03", "%.3f (floor %.3f)" % (
        us["atmoe_moe"] / us["atmoe_base"], floor),
        us["atmoe_moe"] / us["atmoe_base"] <= floor + 0.03)]
    if t == 1:
        fraction = pb.stored_bytes(d, p, True) / us["atmoe_moe"] / (lim["read_GBps"] * 1e3)
        out.append(("T=1: >= 90% DRAM BW", "%.0f%%" % (100 * fraction), fraction >= 0.90))
    if t == 16:
        fraction = moe_bound / us["atmoe_moe"]
        out.append(("T=16: >= 80% roofline", "%.0f%%" % (100 * fraction), fraction >= 0.80))
    if t >= 128 and p == "f32":
        peak = lim["peak_gflops" if row["target"] == "host" else "avx2_peak_gflops"]
        fraction = rb.layer_flops(d, t, 0, False) / us["atmoe_base"] / (peak * 1e3)
        out.append(("T>=128: f32 >= 75% FMA peak", "%.0f%%" % (100 * fraction),
                    fraction >= 0.75))
    if t >= 128 and p != "f32":
        f32 = [r for r in rows if r["precision"] == "f32" and all(
            r[k] == row[k] for k in ("d", "granularity", "target", "tokens", "threads"))]
        if f32:
            ratio = f32[0]["us"]["atmoe_moe"] / us["atmoe_moe"]
            out.append(("T>=128: >= f32's speed", "%.2fx" % ratio, ratio >= 1.0))
    if "blas_lora" in us and t >= 16:
        ratio = us["blas_lora"] / us["atmoe_moe"]
        want = 2.5 if t == 16 else 1.3
        out.append(("T%s: >= %.1fx OpenBLAS LoRA" % ("=16" if t == 16 else ">=128", want),
                    "%.2fx" % ratio, ratio >= want))
    return out


def judge_resident(row, limits):
    lim = limits[row["threads"]]
    us = row["us"]
    fraction = pb.stored_bytes(row["d"], row["precision"], False) / us["atmoe_base"] / (
        lim["l3_GBps"] * 1e3)
    out = [("T=1 resident: >= 80% L3 BW", "%.0f%%" % (100 * fraction), fraction >= 0.80)]
    if "blas_base" in us:
        ratio = us["blas_base"] / us["atmoe_base"]
        out.append(("T=1 resident: >= 1.0x sgemv", "%.2fx" % ratio, ratio >= 1.0))
    return out


def report(rows, resident, limits, compile_seconds):
    print("\nRows (weights from DRAM, medians in µs; verdicts per issue 13 target):")
    print(rb.table(
        ["d", "gran", "prec", "target", "T", "thr", "moe", "base", "blas_lora", "blas_base",
         "figures"],
        [[r["d"], r["granularity"][:3], r["precision"], r["target"], r["tokens"], r["threads"],
          rb.fmt(r["us"]["atmoe_moe"], 0), rb.fmt(r["us"]["atmoe_base"], 0),
          rb.fmt(r["us"].get("blas_lora"), 0), rb.fmt(r["us"].get("blas_base"), 0),
          "; ".join("%s %s %s" % (name, figure, "met" if ok else "MISSED")
                    for name, figure, ok in judge(r, rows, limits))] for r in rows]))
    print("\nOne base linear called repeatedly (weights L3-resident), T = 1:")
    print(rb.table(
        ["d", "prec", "target", "thr", "base", "blas_base", "figures"],
        [[r["d"], r["precision"], r["target"], r["threads"], rb.fmt(r["us"]["atmoe_base"], 1),
          rb.fmt(r["us"].get("blas_base"), 1),
          "; ".join("%s %s %s" % (name, figure, "met" if ok else "MISSED")
                    for name, figure, ok in judge_resident(r, limits))] for r in resident]))
    print("\nSummary (rows met / rows judged; the worst figure):")
    verdicts = {}
    for r in rows:
        for name, figure, ok in judge(r, rows, limits):
            verdicts.setdefault(name, []).append((ok, figure, r))
    for r in resident:
        for name, figure, ok in judge_resident(r, limits):
            verdicts.setdefault(name, []).append((ok, figure, dict(r, granularity="token",
                                                                  tokens=1)))
    for name, entries in verdicts.items():
        missed = [e for e in entries if not e[0]]
        print("- %s: %d / %d met%s" % (name, len(entries) - len(missed), len(entries), "".join(
            "; missed %s at d=%d %s %s %s %d thr" % (figure, r["d"], r["granularity"],
                                                   r["precision"], r["target"], r["threads"])
            for _, figure, r in missed[:6]) + (" ..." if len(missed) > 6 else "")))
    if compile_seconds is not None:
        print("- compile time of the 32-layer Llama-7B-shaped package: %.1f s (target < 20 s): %s"
              % (compile_seconds, "met" if compile_seconds < 20 else "MISSED"))
    print("\nlimits: " + "; ".join(
        "%d thread(s): DRAM %.1f GB/s, L3 %.1f GB/s, FMA peak %.0f GFLOP/s (x86-64-v3: %.0f)"
        % (t, l["read_GBps"], l["l3_GBps"], l["peak_gflops"], l["avx2_peak_gflops"])
        for t, l in sorted(limits.items())))


def compile_time(build):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, os.path.join(rb.HERE, "compile_bench.py"), "--build",
                        build, "--cases", "llama7b-32", "--json", out.name], check=True,
                       stdout=subprocess.DEVNULL)
        return json.load(open(out.name))["results"][0]["current"]["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(rb.ROOT, "build"))
    parser.add_argument("--d", default="4096,2048")
    parser.add_argument("--granularity", default="token,sequence")
    parser.add_argument("--tokens", default="1,16,128,512")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--precisions", default="f32,bf16,int8,int4,int8-a8,int4-a8")
    parser.add_argument("--avx2-precisions", default="f32,bf16",
                        help="also compiled with --target=x86-64-v3 (default f32,bf16)")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timed rounds per driver and row (default 1)")
    parser.add_argument("--no-blas", action="store_true", help="skip OpenBLAS")
    parser.add_argument("--no-compile-time", action="store_true")
    parser.add_argument("--json", help="write the rows and the probed limits here")
    args = parser.parse_args()
    args.tokens = [int(v) for v in args.tokens.split(",")]
    args.threads = [int(v) for v in args.threads.split(",")]
    args.avx2_precisions = args.avx2_precisions.split(",")
    for p in args.precisions.split(","):
        if p not in pb.PRECISIONS:
            parser.error("unknown precision %r (expected %s)" % (p, ", ".join(pb.PRECISIONS)))

    build = os.path.abspath(args.build)
    compiler, drivers = rb.build_drivers(build, ["atmoe-layer-bench", "atmoe-blas-bench",
                                                 "atmoe-probe"])
    quantize_tool = os.path.join(build, "bin", "atmoe-quantize")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    state = rb.git_state()
    print("machine: %s, %d CPUs, L3 %d MiB; commit %s%s; OMP_WAIT_POLICY=%s" % (
        rb.cpu_model(), os.cpu_count(), rb.l3_bytes() >> 20, state["commit"],
        " + changes in " + ", ".join(state["modified"]) if state["modified"] else "",
        os.environ["OMP_WAIT_POLICY"]), flush=True)
    limits = probe_limits(drivers["atmoe-probe"], args.threads)
    rows, resident = [], []
    with tempfile.TemporaryDirectory(prefix="atmoe-roofline-") as work:
        for d in [int(v) for v in args.d.split(",")]:
            for granularity in args.granularity.split(","):
                for precision in args.precisions.split(","):
                    more, again = measure_package(args, drivers, compiler, quantize_tool,
                                                  work, d, granularity, precision)
                    rows += more
                    resident += again
    limits = best_of(limits, probe_limits(drivers["atmoe-probe"], args.threads))
    seconds = None if args.no_compile_time else compile_time(build)
    report(rows, resident, limits, seconds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": rb.cpu_model(), "git": state, "limits": limits,
                       "rows": rows, "resident": resident, "compile_seconds": seconds,
                       "date": time.strftime("%Y-%m-%d %H:%M")}, f, indent=1)


if __name__ == "__main__":
    main()
