#!/usr/bin/env python3
# ===- distributed_bench.py - layers split over MPI processes -------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""One process against layers split over two MPI processes on this machine,
side by side in one run, and the loopback MPI_Allreduce the split layers
call.

  python3 bench/distributed_bench.py [--build build] [--d 4096,2048]
                                     [--tokens 1,16,128] [--rounds 30]
                                     [--copies auto] [--json FILE] [--work DIR]

What it does, after scripts/setup.sh and a build:

 1. builds atmoe-layer-bench and atmoe-probe (as bench/run_bench.py does)
    and atmoe-allreduce-bench (AllReduceBench.cpp, MPICH) into BUILD/bench;
 2. probes the read bandwidth and FMA peak with 1 and 2 threads;
 3. times MPI_Allreduce (float sum, MPI_COMM_WORLD) under
    `mpiexec -launcher fork -n 2` from 4 B to 16 MiB: latency (the 4-byte
    median) and bandwidth (bytes / time, and the bus bandwidth 2(N-1)/N
    times that, the bytes each process moves);
 4. per d, writes the SPEC §6 package with K copies of each layer (so that
    the weights come from DRAM, as in bench/run_bench.py) and compiles it
    three times: one process, --parallel=tensor:2, --parallel=expert:2;
 5. per T, times the LoRA-MoE layer (router + projection) round-robin over
    the copies: one process with 1 and with 2 threads, and each split model
    under mpiexec -n 2 with one thread per process (the same cores); checks
    that every split model's y matches the one-process y (SPEC §2 bound);
 6. prints the table (medians, ratios to one process with 2 threads) and
    writes the rows to --json.

Every rank makes the same number of calls (--rounds, fixed: a time budget
could stop one rank before the other, which would then wait in a collective).
Not a test: nothing here asserts a speed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import run_bench as rb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MPIEXEC = ["mpiexec", "-launcher", "fork", "-n", "2"]  # PROCESSES
SIZES = [4 << (2 * i) for i in range(12)]  # 4 B .. 16 MiB
PROCESSES = 2
BUS_FACTOR = 2 * (PROCESSES - 1) / PROCESSES  # bytes each process moves per byte


def build_allreduce(build):
    target = os.path.join(build, "bench", "atmoe-allreduce-bench")
    source = os.path.join(HERE, "AllReduceBench.cpp")
    inputs = [source, os.path.join(HERE, "BenchCommon.h")]
    if not os.path.exists(target) or any(
            os.path.getmtime(i) > os.path.getmtime(target) for i in inputs):
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "mpich"], check=True,
                               capture_output=True, text=True).stdout.split()
        os.makedirs(os.path.dirname(target), exist_ok=True)
        rb.log("building %s" % target)
        subprocess.run([rb.find_cxx(), "-O2", "-std=c++17", "-I", HERE, source, "-o", target]
                       + flags, check=True)
    return target


def measure_allreduce(path):
    out = subprocess.run(MPIEXEC + [path, "--bytes", ",".join(map(str, SIZES))],
                         capture_output=True, text=True, check=True,
                         env=rb.thread_env(1)).stdout
    rows = []
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split()[1:])
        size, median = int(fields["bytes"]), float(fields["median_us"])
        rows.append({"bytes": size, "median_us": median, "min_us": float(fields["min_us"]),
                     "algbw_GBps": round(size / median / 1e3, 3),
                     "busbw_GBps": round(BUS_FACTOR * size / median / 1e3, 3)})
    return rows


def compile_split(compiler, package, parallel):
    compiled = "%s.%s.so" % (package, parallel.replace(":", ""))
    subprocess.run([compiler, package, "--parallel=" + parallel, "-o", compiled], check=True)
    return compiled


def time_layer(bench, compiled, package, x_path, tokens, copies, threads, launcher, rounds,
               dump):
    os.makedirs(dump, exist_ok=True)
    layers = ",".join(str(k) for k in range(copies))
    command = launcher + [bench, "--model", compiled, "--package", package, "--tokens",
                          str(tokens), "--x", x_path, "--set", "moe=" + layers,
                          "--min-rounds", str(rounds), "--max-rounds", str(rounds),
                          "--dump", dump]
    result = rb.run_driver_once(command, rb.thread_env(threads))["moe"]
    result["y"] = np.fromfile(os.path.join(dump, "moe.bin"), np.float32)
    return result


def measure(args, drivers, compiler, work, d, rng):
    copies = rb.copies_for(d, args.copies)
    package = rb.write_package(work, d, "token", copies)
    one, _ = rb.compile_package(compiler, package)
    split = {kind: compile_split(compiler, package, kind + ":2")
             for kind in ("tensor", "expert")}
    rows = []
    for tokens in args.tokens:
        x_path = os.path.join(work, "x.bin")
        rng.standard_normal((tokens, d)).astype(np.float32).tofile(x_path)
        runs = {}
        for name, compiled, threads, launcher in [
                ("one_2threads", one, 2, []), ("one_1thread", one, 1, []),
                ("tensor2_1thread", split["tensor"], 1, MPIEXEC),
                ("expert2_1thread", split["expert"], 1, MPIEXEC)]:
            runs[name] = time_layer(drivers["atmoe-layer-bench"], compiled, package, x_path,
                                    tokens, copies, threads, launcher, args.rounds,
                                    os.path.join(work, "dump-" + name))
        reference = runs["one_2threads"].pop("y")
        bound = 1e-3 * (1.0 + float(np.abs(reference).max()))
        row = {"d": d, "tokens": tokens, "copies": copies, "impl": {}}
        for name, run in runs.items():
            y = run.pop("y", reference)
            run["max_abs_diff"] = float(np.abs(y - reference).max())
            run["check_ok"] = run["max_abs_diff"] <= bound
            row["impl"][name] = run
        rows.append(row)
        rb.log("d=%d T=%d: %s" % (d, tokens, ", ".join(
            "%s %.1f us" % (k, v["median_us"]) for k, v in row["impl"].items())))
    return rows


def report(limits, allreduce, rows):
    print("\nmachine: %s, %d CPUs" % (rb.cpu_model(), os.cpu_count()))
    for threads, limit in sorted(limits.items()):
        print("  %s thread(s): read %.1f GB/s, FMA peak %.0f GFLOP/s"
              % (threads, limit["read_GBps"], limit["peak_gflops"]))
    print("\nMPI_Allreduce, 2 processes, loopback (MPICH, shared memory):")
    print(rb.table(["bytes", "median us", "min us", "GB/s"],
                   [[r["bytes"], rb.fmt(r["median_us"], 2), rb.fmt(r["min_us"], 2),
                     rb.fmt(r["algbw_GBps"], 2)] for r in allreduce]))
    print("\nLoRA-MoE layer, weights from DRAM (median us; ratio = one process "
          "with 2 threads / this):")
    names = ["one_2threads", "one_1thread", "tensor2_1thread", "expert2_1thread"]
    table_rows = []
    for row in rows:
        base = row["impl"]["one_2threads"]["median_us"]
        cells = [row["d"], row["tokens"]]
        for name in names:
            impl = row["impl"][name]
            cells.append("%s (%.2fx)%s" % (rb.fmt(impl["median_us"]), base / impl["median_us"],
                                           "" if impl["check_ok"] else " WRONG"))
        table_rows.append(cells)
    print(rb.table(["d", "T"] + names, table_rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--d", default="4096,2048")
    parser.add_argument("--tokens", default="1,16,128")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--copies", default="auto",
                        help="copies of the layer (auto: 4x the last-level cache)")
    parser.add_argument("--json")
    parser.add_argument("--work")
    args = parser.parse_args()
    args.tokens = [int(t) for t in args.tokens.split(",")]
    if not shutil.which("mpiexec"):
        raise SystemExit("distributed_bench: no mpiexec: run scripts/setup.sh")

    compiler, drivers = rb.build_drivers(args.build, only={"atmoe-layer-bench", "atmoe-probe"})
    allreduce_bench = build_allreduce(args.build)
    work = args.work or tempfile.mkdtemp(prefix="atmoe-distributed-")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(0)
    limits = {str(t): rb.probe(drivers["atmoe-probe"], t) for t in (1, 2)}
    allreduce = measure_allreduce(allreduce_bench)
    rows = []
    for d in [int(v) for v in args.d.split(",")]:
        rows += measure(args, drivers, compiler, work, d, rng)
    report(limits, allreduce, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": rb.cpu_model(), "cpus": os.cpu_count(),
                       "git": rb.git_state(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                       "limits": limits, "allreduce": allreduce, "rows": rows}, f, indent=1)
        print("\nwrote %s" % args.json)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
