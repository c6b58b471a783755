#!/usr/bin/env python3
# ===- precision_bench.py - the SPEC section 6 layer per storage type -----===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""The SPEC §6 layer with its weights in each storage type, side by side in
one run (issue 12's precision axis).

  python3 bench/precision_bench.py [--build build] [--d 4096]
      [--tokens 1,16,128,512] [--threads 2]
      [--precisions f32,bf16,int8,int4,int8-a8,int4-a8] [--budget 2]
      [--wait-policies PASSIVE,ACTIVE] [--no-torch] [--json FILE]

Per precision it writes bench/workload.py's package (token granularity,
K copies so that the stored base weights of all copies are >= 4x the
last-level cache, so that each call reads its weights from DRAM) with
  f32    every tensor F32;
  bf16   every tensor BF16;
  int8   a GPTQ base (8 bits, group size 128, symmetric) with bf16 adapters
         and router (atmoe-quantize of the bf16 package);
  int4   the same with 4 bits;
  int8-a8, int4-a8  the same packages compiled with --int8-activations
         (opt-in, not exact: docs/Numerics.md);
compiles it, and times atmoe_moe (the LoRA-MoE layer) and atmoe_base (the
base linear) round-robin over the copies with atmoe-layer-bench. It reports
each time, time(f32) / time(p) and the read bandwidth of the stored bytes as
a fraction of the probed bandwidth, and, with PyTorch (Debian's
python3-torch), torch_bf16: F.linear on bf16 weights and activations, eager,
round-robin over the same number of copies.

Not a test: nothing here asserts a speed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import run_bench as rb

np = rb.np

INT8 = ["--bits", "8", "--group-size", "128", "--sym"]
INT4 = ["--bits", "4", "--group-size", "128", "--sym"]
PRECISIONS = {
    # name: (model_package.py arguments, atmoe-quantize arguments or None,
    #        atmoe-compile arguments)
    "f32": (["--dtype", "f32"], None, []),
    "bf16": (["--dtype", "bf16"], None, []),
    "int8": (["--dtype", "bf16"], INT8, []),
    "int4": (["--dtype", "bf16"], INT4, []),
    # Opt-in, not exact (docs/Numerics.md): int8-rounded activations, VNNI.
    "int8-a8": (["--dtype", "bf16"], INT8, ["--int8-activations"]),
    "int4-a8": (["--dtype", "bf16"], INT4, ["--int8-activations"]),
}


def stored_bytes(d, precision, lora):
    """Bytes of weights one call reads, as stored."""
    if precision.startswith("int"):
        bits = 8 if precision.startswith("int8") else 4
        base = d * d * bits // 8 + (d // 128) * d * (2 + bits // 8)
    else:
        base = d * d * (4 if precision == "f32" else 2)
    if not lora:
        return base
    small = 2 * rb.EXPERTS * rb.RANK * d + (rb.GROUPS + rb.EXPERTS) * (d + 1)
    return base + small * (4 if precision == "f32" else 2)


def make_package(work, d, copies, precision, quantize_tool, granularity="token"):
    description = os.path.join(work, "d%d-%s.json" % (d, granularity))
    subprocess.run([sys.executable, os.path.join(rb.HERE, "workload.py"), "--d", str(d),
                    "--granularity", granularity, "--copies", str(copies), description],
                   check=True)
    gen_args, quantize, _ = PRECISIONS[precision]
    package = os.path.join(work, "d%d-%s-%s" % (d, granularity, precision))
    subprocess.run([sys.executable, os.path.join(rb.ROOT, "test", "helpers",
                                                 "model_package.py"),
                    "--desc", description] + gen_args + [package + ("-float" if quantize else "")],
                   check=True, stdout=subprocess.DEVNULL)
    if quantize:
        subprocess.run([quantize_tool, package + "-float"] + quantize + ["-o", package],
                       check=True, stdout=subprocess.DEVNULL)
    return package


def time_layers(drivers, package, compiled, d, tokens, threads, copies, work, budget,
                policy):
    x_path = os.path.join(work, "x.bin")
    rng = np.random.default_rng(tokens)
    rng.standard_normal((tokens, d)).astype(np.float32).tofile(x_path)
    moe = ",".join(str(k) for k in range(copies))
    base = ",".join(str(copies + k) for k in range(copies))
    return rb.run_driver_once(
        [drivers["atmoe-layer-bench"], "--model", compiled, "--package", package,
         "--tokens", str(tokens), "--x", x_path, "--set", "atmoe_moe=" + moe,
         "--set", "atmoe_base=" + base, "--budget", str(budget)],
        dict(rb.thread_env(threads), OMP_WAIT_POLICY=policy))


TORCH_BF16 = r"""
import sys, time, torch, torch.nn.functional as F
d, tokens, copies, threads, budget = map(float, sys.argv[1:6])
d, tokens, copies, threads = int(d), int(tokens), int(copies), int(threads)
torch.set_num_threads(threads)
ws = [torch.randn(d, d).to(torch.bfloat16) for _ in range(copies)]
x = torch.randn(tokens, d).to(torch.bfloat16)
times, start = [], time.monotonic()
while time.monotonic() - start < budget or len(times) < 3 * copies:
    for w in ws:
        t0 = time.perf_counter()
        F.linear(x, w)
        times.append(time.perf_counter() - t0)
times.sort()
print("torch_bf16 median_us=%.3f min_us=%.3f calls=%d"
      % (1e6 * times[len(times) // 2], 1e6 * times[0], len(times)))
"""


def time_torch(torch_python, d, tokens, threads, copies, budget):
    out = subprocess.run([torch_python, "-c", TORCH_BF16, str(d), str(tokens), str(copies),
                          str(threads), str(budget)], capture_output=True, text=True,
                         env=rb.thread_env(threads), check=True).stdout
    match = rb.LINE.search(out)
    return float(match.group(2)) if match else float("nan")


def report(rows, limits):
    print("\nprecision axis (token granularity; weights from DRAM; medians in us)")
    # "BW/f32": the base's stored bytes per second over f32's in the same
    # run, which does not depend on the probe (on a shared machine the probed
    # bandwidth varies by 2x between runs).
    header = ["d", "T", "thr", "wait", "precision", "moe_us", "base_us", "f32/p base",
              "f32/p moe", "base %BW", "BW/f32", "moe/base", "torch_bf16_us"]
    print(" | ".join(header))
    for r in sorted(rows, key=lambda r: (r["d"], r["tokens"], r["threads"], r["wait_policy"])):
        f32 = next(x for x in rows if x["d"] == r["d"] and x["tokens"] == r["tokens"]
                   and x["threads"] == r["threads"] and x["precision"] == "f32"
                   and x["wait_policy"] == r["wait_policy"])
        bw = limits[r["threads"]]["read_GBps"] * 1e3  # bytes per us
        frac = r["base_bytes"] / r["base_us"] / bw
        print(" | ".join([
            str(r["d"]), str(r["tokens"]), str(r["threads"]), r["wait_policy"], r["precision"],
            "%.1f" % r["moe_us"], "%.1f" % r["base_us"],
            "%.2f" % (f32["base_us"] / r["base_us"]), "%.2f" % (f32["moe_us"] / r["moe_us"]),
            "%.0f%%" % (100 * frac),
            "%.2f" % (r["base_bytes"] / r["base_us"] / (f32["base_bytes"] / f32["base_us"])),
            "%.3f" % (r["moe_us"] / r["base_us"]),
            "%.1f" % r.get("torch_bf16_us", float("nan"))]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(rb.ROOT, "build"))
    parser.add_argument("--d", default="4096")
    parser.add_argument("--tokens", default="1,16,128,512")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--precisions", default="f32,bf16,int8,int4,int8-a8,int4-a8")
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--wait-policies", default="PASSIVE,ACTIVE",
                        help="OMP_WAIT_POLICY values to time each row with: PASSIVE "
                        "(threads sleep between calls: a wake-up per call) and ACTIVE "
                        "(they spin, as libomp's default does between back-to-back calls)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install python3-torch when it is missing")
    parser.add_argument("--json", help="write the rows and probed limits here")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    for p in precisions:
        if p not in PRECISIONS:
            parser.error("unknown precision %r (expected %s)" % (p, ", ".join(PRECISIONS)))

    compiler, drivers = rb.build_drivers(args.build, ["atmoe-layer-bench", "atmoe-probe"])
    quantize_tool = os.path.join(args.build, "bin", "atmoe-quantize")
    if not os.path.exists(quantize_tool):
        subprocess.run(["cmake", "--build", args.build, "--target", "atmoe-quantize"],
                       check=True)
    torch_python = None if args.no_torch else rb.ensure_module(
        "torch", "python3-torch", not args.no_install)
    threads_list = [int(t) for t in args.threads.split(",")]
    limits = {t: rb.probe(drivers["atmoe-probe"], t) for t in threads_list}
    for t, l in limits.items():
        rb.log("probed, %d threads: read %.1f GB/s, FMA peak %.0f GFLOP/s"
               % (t, l["read_GBps"], l["peak_gflops"]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="atmoe-precision-") as work:
        for d in [int(v) for v in args.d.split(",")]:
            for precision in precisions:
                copies = max(2, -(-4 * rb.l3_bytes() // stored_bytes(d, precision, False)))
                package = make_package(work, d, copies, precision, quantize_tool)
                compiled, seconds = rb.compile_package(compiler, package,
                                                       extra=PRECISIONS[precision][2])
                rb.log("d=%d %s: %d copies, compiled in %.1f s" % (d, precision, copies, seconds))
                for tokens, threads, policy in [
                        (int(t), th, p) for t in args.tokens.split(",") for th in threads_list
                        for p in args.wait_policies.split(",")]:
                        times = time_layers(drivers, package, compiled, d, tokens, threads,
                                            copies, work, args.budget, policy)
                        row = {"d": d, "tokens": tokens, "threads": threads,
                               "wait_policy": policy,
                               "precision": precision, "copies": copies,
                               "moe_us": times["atmoe_moe"]["median_us"],
                               "base_us": times["atmoe_base"]["median_us"],
                               "base_bytes": stored_bytes(d, precision, False),
                               "moe_bytes": stored_bytes(d, precision, True)}
                        if (torch_python and precision == "bf16"
                                and policy == args.wait_policies.split(",")[0]):
                            row["torch_bf16_us"] = time_torch(torch_python, d, tokens, threads,
                                                              copies, args.budget)
                        rows.append(row)
                        rb.log("%s" % row)
                # The packages of all precisions would not fit in /tmp.
                shutil.rmtree(package, ignore_errors=True)
                shutil.rmtree(package + "-float", ignore_errors=True)
    print("machine: %s; L3 %d MiB" % (rb.cpu_model(), rb.l3_bytes() >> 20))
    for t, l in limits.items():
        print("probed limits, %d threads: read %.1f GB/s, FMA peak %.0f GFLOP/s"
              % (t, l["read_GBps"], l["peak_gflops"]))
    report(rows, limits)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": rb.cpu_model(), "limits": limits, "rows": rows,
                       "git": rb.git_state()}, f, indent=1)


if __name__ == "__main__":
    main()
