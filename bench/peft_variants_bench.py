#!/usr/bin/env python3
# ===- peft_variants_bench.py - DoRA and LoRA-bias layers against plain LoRA ===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""What PEFT's variants cost: the SPEC §6 layer shape (one d x d projection,
8 experts in 4 groups, r = 16, alpha = 32, grouped-softmax router) with its
experts given as PEFT adapters, plain, DoRA (use_dora) and with lora_bias,
and the base linear, side by side in one run of atmoe-layer-bench, with the
machine's probed limits printed.

  python3 bench/peft_variants_bench.py [--build build] [--d 4096]
                                       [--tokens 1,16,128] [--threads 1,2]
                                       [--copies auto] [--budget 2]
                                       [--json FILE] [--work DIR]

The package holds K copies of each kind (K so that K copies of W exceed 4x
the last-level cache), timed round-robin as a K-layer model runs them. Bind
time (which computes DoRA's scales once) is reported separately. Not a test:
nothing here asserts a speed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench  # noqa: E402  (re-executes under Debian's python3 for numpy)
from run_bench import HERE, ROOT, np  # noqa: E402

KINDS = ["plain", "dora", "bias", "base"]
EXPERTS, GROUPS, RANK, ALPHA = run_bench.EXPERTS, run_bench.GROUPS, run_bench.RANK, run_bench.ALPHA


def description(d, copies):
    """K layers of each kind; every kind has its own 8 PEFT experts, and a
    layer removes the other kinds' (a base layer removes all)."""
    experts, groups = {}, []
    for kind in KINDS[:3]:
        names = ["%s%d" % (kind, i) for i in range(EXPERTS)]
        for name in names:
            expert = {"peft": "adapters/" + name, "r": RANK, "lora_alpha": ALPHA,
                      "target_modules": ["proj"]}
            if kind == "dora":
                expert["use_dora"] = True
            if kind == "bias":
                expert["lora_bias"] = True
            experts[name] = expert
        per_group = EXPERTS // GROUPS
        groups += [{"name": "%s_g%d" % (kind, g), "experts": names[g * per_group:(g + 1) * per_group]}
                   for g in range(GROUPS)]
    projections = [{"name": "proj", "in_features": d, "out_features": d, "bias": False}]
    layers = []
    for k, kind in enumerate(KINDS):
        removed = {name: None for name in experts if not name.startswith(kind)}
        for c in range(copies):
            layers.append({"index": k * copies + c, "hidden_size": d, "experts": removed,
                           "projections": projections})
    return {"format": "atmoe-model/1", "name": "peft-variants-d%d-x%d" % (d, copies),
            "weights": ["weights.safetensors"], "router": {"kind": "grouped_softmax"},
            "groups": groups, "experts": experts, "layers": layers}


def prepare(work, compiler, d, copies):
    package = os.path.join(work, "variants-d%d-x%d" % (d, copies))
    desc = package + ".json"
    with open(desc, "w") as f:
        json.dump(description(d, copies), f)
    subprocess.run([sys.executable, os.path.join(ROOT, "test", "helpers", "model_package.py"),
                    "--desc", desc, package], check=True, stdout=subprocess.DEVNULL)
    compiled, seconds = run_bench.compile_package(compiler, package)
    run_bench.log("compiled %s in %.1f s" % (compiled, seconds))
    return package, compiled


def bind_seconds(layer_bench, compiled, package, work, d):
    """Wall time of a run that binds the package and times nothing much."""
    x = os.path.join(work, "x1.bin")
    np.zeros((1, d), np.float32).tofile(x)
    start = time.monotonic()
    subprocess.run([layer_bench, "--model", compiled, "--package", package, "--tokens", "1",
                    "--x", x, "--set", "bind=0", "--min-rounds", "1", "--max-rounds", "1",
                    "--budget", "0"], check=True, capture_output=True)
    return time.monotonic() - start


def measure(args, drivers, package, compiled, work, d, copies, tokens, threads, rng):
    x = os.path.join(work, "x.bin")
    rng.standard_normal((tokens, d)).astype(np.float32).tofile(x)
    sets = []
    for k, kind in enumerate(KINDS):
        sets += ["--set", "%s=%s" % (kind, ",".join(str(k * copies + c) for c in range(copies)))]
    env = run_bench.thread_env(threads)
    limits = run_bench.probe(drivers["atmoe-probe"], threads, ("--passes", "5",
                                                              "--fma-seconds", "0.05"))
    times = run_bench.run_driver_once(
        [drivers["atmoe-layer-bench"], "--model", compiled, "--package", package,
         "--tokens", str(tokens), "--x", x, "--budget", str(args.budget)] + sets, env)
    return {"d": d, "tokens": tokens, "threads": threads, "copies": copies,
            "median_us": {k: times[k]["median_us"] for k in KINDS},
            "read_GBps": limits["read_GBps"], "peak_gflops": limits["peak_gflops"]}


def report(rows, binds):
    print("\nPEFT variants: median us per layer call (ratios to plain LoRA and to the "
          "base linear), weights not cache-resident")
    print("%5s %4s %3s | %9s %9s %9s %9s | %9s %9s | %9s %9s | %s" % (
        "d", "T", "thr", "plain", "dora", "bias", "base", "dora/pl", "bias/pl",
        "plain/bas", "dora/bas", "probed read GB/s, FMA GFLOP/s"))
    for r in rows:
        t = r["median_us"]
        print("%5d %4d %3d | %9.1f %9.1f %9.1f %9.1f | %9.2f %9.2f | %9.2f %9.2f | %.1f, %.0f" % (
            r["d"], r["tokens"], r["threads"], t["plain"], t["dora"], t["bias"], t["base"],
            t["dora"] / t["plain"], t["bias"] / t["plain"], t["plain"] / t["base"],
            t["dora"] / t["base"], r["read_GBps"], r["peak_gflops"]))
    for d, seconds in binds.items():
        print("bind time at d = %d (all %s layers, DoRA scales computed once): %.2f s"
              % (d, "/".join(KINDS), seconds))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--d", default="4096")
    parser.add_argument("--tokens", default="1,16,128")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--copies", default="auto")
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--json", default=os.path.join(HERE, "results", "peft_variants.json"))
    parser.add_argument("--work", help="scratch directory (default: a temporary one, removed)")
    args = parser.parse_args()
    compiler, drivers = run_bench.build_drivers(args.build, ["atmoe-layer-bench", "atmoe-probe"])
    rng = np.random.default_rng(0)
    rows, binds = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or scratch
        os.makedirs(work, exist_ok=True)
        for d in map(int, args.d.split(",")):
            copies = run_bench.copies_for(d, args.copies)
            package, compiled = prepare(work, compiler, d, copies)
            binds[d] = bind_seconds(drivers["atmoe-layer-bench"], compiled, package, work, d)
            for threads in map(int, args.threads.split(",")):
                for tokens in map(int, args.tokens.split(",")):
                    rows.append(measure(args, drivers, package, compiled, work, d, copies,
                                        tokens, threads, rng))
                    run_bench.log("d=%d T=%d threads=%d done" % (d, tokens, threads))
    report(rows, binds)
    with open(args.json, "w") as f:
        json.dump({"machine": run_bench.cpu_model(), "git": run_bench.git_state(),
                   "bind_seconds": binds, "rows": rows}, f, indent=1)
    run_bench.log("wrote " + args.json)


if __name__ == "__main__":
    main()
