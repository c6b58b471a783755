#!/usr/bin/env python3
# ===- run_bench.py - the SPEC section 6 benchmark --------------------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""SPEC §6 benchmark: the compiled LoRA-MoE layer against the compiled base
linear, OpenBLAS and PyTorch eager, side by side in one run.

  python3 bench/run_bench.py [--build build] [--d 4096,2048]
                             [--tokens 1,16,128,512]
                             [--granularity token,sequence] [--threads 1,2]
                             [--copies auto] [--budget 2] [--no-torch]
                             [--quiet 10] [--retries 1] [--wait-quiet S]
                             [--merge | --rerun-noisy] [--json FILE]
                             [--plot FILE]

What it does, from a clean checkout after scripts/setup.sh and a build:

 1. builds its three drivers with clang++ into BUILD/bench (not part of the
    CMake build or of check-atmoe): atmoe-layer-bench (LayerBench.cpp, the
    runtime), atmoe-blas-bench (BlasBench.cpp, Debian's OpenBLAS) and
    atmoe-probe (Probe.cpp); installs python3-torch and python3-matplotlib
    from Debian when they are missing (apt-get; --no-install to skip);
 2. per thread count, measures the machine's limits with atmoe-probe: the
    read bandwidth of a 512 MiB buffer and the FMA peak (register-only),
    before each d and at the end; the best of these runs is the limit;
 3. per d and granularity, writes the package (bench/workload.py --copies K:
    K LoRA-MoE layers and K base linears with their own weights; K so that
    K copies of W are at least 4x the last-level cache) and compiles it with
    atmoe-compile;
 4. per T and thread count, times round-robin over the K copies (so that the
    weights are not cache-resident, as in a K-layer model), each call on its
    own, and reports medians:
      atmoe_moe     compiled LoRA-MoE layer (router + projection), runtime C API
      atmoe_base    compiled base linear (same compiler, same run)
      blas_base     OpenBLAS y = x W^T (sgemv at T = 1, sgemm otherwise)
      blas_lora     OpenBLAS concatenated-LoRA layer, router included
      torch_naive   PyTorch eager per-expert loop (PEFT style)
      torch_concat  PyTorch eager concatenated LoRA
    and checks that every implementation computes the same y as atmoe_moe
    (atmoe_base for blas_base) within SPEC §2's tolerance;
 5. prints the tables (medians, ratios, fractions of the measured bandwidth
    and peak) and the issue-4 targets, saves the rows to --json and plots
    time against T with the roofline bound to --plot.

Threads: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set to
the thread count, openblas_set_num_threads / torch.set_num_threads are called,
and OMP_WAIT_POLICY=PASSIVE is set (unless the caller set it) for every
implementation.

Noise: the CPU time other processes used while each driver ran is reported
(other%, the worst of a row's drivers); a row above --quiet % is measured
again (--retries, the quietest attempt is kept), and
--wait-quiet S waits up to S seconds for a quiet machine before each row and
probe. With --merge, the rows measured now replace those with the same
(d, granularity, T, threads) in the existing --json; --rerun-noisy measures
only the rows of the --json above --quiet again and merges them.
Not a test: nothing here asserts a speed.
"""

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

DEBIAN_PYTHON = "/usr/bin/python3"
try:
    import numpy as np
except ImportError:
    # A python3 earlier on PATH (pyenv, a venv) without Debian's numpy.
    if os.path.exists(DEBIAN_PYTHON) and os.path.realpath(sys.executable) != DEBIAN_PYTHON:
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

EXPERTS, GROUPS, RANK, ALPHA = 8, 4, 16, 32
IMPLS = ["atmoe_moe", "atmoe_base", "blas_base", "blas_lora", "torch_naive", "torch_concat"]
LINE = re.compile(r"^(\S+) median_us=([0-9.]+) min_us=([0-9.]+) calls=(\d+)$", re.M)


def log(message):
    print("run_bench: " + message, file=sys.stderr, flush=True)


# ===-----------------------------------------------------------------------===#
# Machine and environment
# ===-----------------------------------------------------------------------===#


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def l3_bytes():
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            text = f.read().strip()
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
        return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        return 32 << 20


def git_state():
    def git(*args):
        result = subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True)
        return result.stdout.rstrip() if result.returncode == 0 else ""
    head = git("rev-parse", "--short", "HEAD")
    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"commit": head or "unknown", "modified": dirty}


class CpuMeter:
    """CPU time of other processes while a row runs, from /proc/stat."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
        times = os.times()
        ours = times.children_user + times.children_system + times.user + times.system
        steal = fields[7] if len(fields) > 7 else 0
        return busy, steal, ours, time.monotonic()

    def other_percent(self):
        busy0, steal0, ours0, t0 = self.start
        busy1, steal1, ours1, t1 = self._sample()
        tick = os.sysconf("SC_CLK_TCK")
        capacity = (t1 - t0) * (os.cpu_count() or 1)
        others = (busy1 - busy0) / tick - (ours1 - ours0)
        return max(0.0, 100.0 * others / capacity), 100.0 * (steal1 - steal0) / tick / capacity


def wait_for_quiet(threshold, limit):
    """Waits (up to `limit` s) until other processes use < threshold % of the CPUs."""
    deadline = time.monotonic() + limit
    while True:
        meter = CpuMeter()
        time.sleep(1.0)
        other, _ = meter.other_percent()
        if other < threshold or time.monotonic() >= deadline:
            return other
        time.sleep(4.0)


def python_with(module):
    """An interpreter that can import `module`, or None."""
    for python in dict.fromkeys([sys.executable, DEBIAN_PYTHON]):
        if os.path.exists(python) and subprocess.run(
                [python, "-c", "import " + module], capture_output=True).returncode == 0:
            return python
    return None


def ensure_module(module, package, install):
    python = python_with(module)
    if python or not install:
        return python
    log("installing %s from Debian (needed for %s)" % (package, module))
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                    package], env=env, stdout=subprocess.DEVNULL)
    if result.returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                               package], env=env, stdout=subprocess.DEVNULL)
    return python_with(module)


# ===-----------------------------------------------------------------------===#
# Building the drivers
# ===-----------------------------------------------------------------------===#


def find_cxx():
    for candidate in [os.environ.get("CXX"), "clang++-22", "/usr/lib/llvm-22/bin/clang++",
                      "clang++", "g++"]:
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise SystemExit("run_bench: no C++ compiler (clang++-22) found; run scripts/setup.sh")


def build_drivers(build, only=None):
    """Builds the drivers (those named in `only`, else all) into BUILD/bench;
    returns atmoe-compile's path and {driver: path}."""
    compiler = os.path.join(build, "bin", "atmoe-compile")
    runtime = os.path.join(build, "lib", "libatmoe_runtime.so")
    if not (os.path.exists(compiler) and os.path.exists(runtime)):
        if not os.path.exists(os.path.join(build, "build.ninja")):
            raise SystemExit("run_bench: %s is not a build directory: run scripts/build.sh first"
                             % build)
        subprocess.run(["cmake", "--build", build, "--target", "atmoe-compile", "atmoe_runtime"],
                       check=True)
    out = os.path.join(build, "bench")
    os.makedirs(out, exist_ok=True)
    cxx = find_cxx()
    flags = ["-O3", "-march=native", "-std=c++17", "-Wall", "-Wextra", "-I", HERE]
    common = [os.path.join(HERE, "BenchCommon.h")]
    drivers = {
        "atmoe-layer-bench": (["LayerBench.cpp"], [os.path.join(ROOT, "runtime", "include",
                                                                "atmoe_rt", "atmoe_rt.h")],
                              ["-I", os.path.join(ROOT, "runtime", "include"),
                               "-L", os.path.join(build, "lib"), "-latmoe_runtime",
                               "-Wl,-rpath," + os.path.join(build, "lib")]),
        "atmoe-blas-bench": (["BlasBench.cpp"], [], ["-lopenblas"]),
        "atmoe-probe": (["Probe.cpp"], [], ["-pthread"]),
    }
    paths = {}
    for name, (sources, headers, extra) in drivers.items():
        if only is not None and name not in only:
            continue
        target = os.path.join(out, name)
        inputs = [os.path.join(HERE, s) for s in sources] + common + headers
        if not os.path.exists(target) or any(
                os.path.getmtime(i) > os.path.getmtime(target) for i in inputs):
            log("building %s" % target)
            subprocess.run([cxx] + flags + [os.path.join(HERE, s) for s in sources]
                           + ["-o", target] + extra, check=True)
        paths[name] = target
    return compiler, paths


# ===-----------------------------------------------------------------------===#
# Running
# ===-----------------------------------------------------------------------===#


def thread_env(threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def run_driver_once(command, env):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit("run_bench: %s failed:\n%s%s" % (" ".join(command), result.stdout,
                                                           result.stderr))
    return {m.group(1): {"median_us": float(m.group(2)), "min_us": float(m.group(3)),
                         "calls": int(m.group(4))} for m in LINE.finditer(result.stdout)}


def probe(path, threads, extra=()):
    out = subprocess.run([path, "--threads", str(threads)] + list(extra), capture_output=True,
                         text=True, check=True, env=thread_env(threads)).stdout
    values = dict(item.split("=", 1) for item in out.split())
    return {"read_GBps": float(values["read_GBps"]),
            "read_best_GBps": float(values["read_best_GBps"]),
            "peak_gflops": float(values["peak_gflops"])}


def noise(row):
    """How disturbed a row was, in % (rows of older runs: other processes only)."""
    return row.get("noise_percent", 100.0)


def best_limits(samples):
    """Per thread count, the best of the probes run: a probe disturbed by other
    processes can only under-state a limit, which would flatter the fractions."""
    limits = {}
    for sample in samples:
        best = limits.setdefault(str(sample["threads"]), {"read_GBps": 0.0, "read_best_GBps": 0.0,
                                                          "peak_gflops": 0.0, "samples": 0})
        for key in ("read_GBps", "read_best_GBps", "peak_gflops"):
            best[key] = max(best[key], sample[key])
        best["samples"] += 1
    return limits


def copies_for(d, requested):
    if requested != "auto":
        return int(requested)
    weight = 4 * d * d
    return max(2, math.ceil(4 * l3_bytes() / weight))


def write_package(work, d, granularity, copies):
    """The benchmark's model package (bench/workload.py) under `work`."""
    package = os.path.join(work, "d%d-%s-x%d" % (d, granularity, copies))
    description = package + ".json"
    subprocess.run([sys.executable, os.path.join(HERE, "workload.py"), "--d", str(d),
                    "--granularity", granularity, "--copies", str(copies), description],
                   check=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "test", "helpers", "model_package.py"),
                    "--desc", description, package], check=True, stdout=subprocess.DEVNULL)
    return package


def compile_package(compiler, package, target="host", extra=()):
    """Compiles `package` for `target` (with `extra` atmoe-compile arguments);
    returns the .so and the seconds it took."""
    compiled = "%s.%s.so" % (package, target.replace(":", "-"))
    start = time.monotonic()
    subprocess.run([compiler, package, "--target=" + target, "-o", compiled] + list(extra),
                   check=True)
    return compiled, time.monotonic() - start


def prepare_package(work, compiler, d, granularity, copies):
    package = write_package(work, d, granularity, copies)
    compiled, seconds = compile_package(compiler, package)
    return package, compiled, seconds


def layer_bytes(d, lora):
    """Bytes of weights one call reads (f32)."""
    n = d * d
    if lora:
        n += 2 * EXPERTS * RANK * d + (GROUPS + EXPERTS) * (d + 1)
    return 4 * n


def layer_flops(d, tokens, router_rows, lora):
    flops = 2 * tokens * d * d
    if lora:
        flops += 2 * tokens * d * EXPERTS * RANK * 2 + 2 * router_rows * d * (GROUPS + EXPERTS)
    return flops


def measure_row(args, drivers, torch_python, package, compiled, d, granularity, tokens,
                threads, copies, work, rng, best_peak):
    x = rng.standard_normal((tokens, d)).astype(np.float32)
    x_path = os.path.join(work, "x.bin")
    x.tofile(x_path)
    extra, torch_extra = [], []
    router_rows = tokens
    if granularity == "sequence":
        # Two sequences (one when T = 1), each with its own plan.
        lengths = [tokens] if tokens == 1 else [tokens // 2, tokens - tokens // 2]
        router_rows = len(lengths)
        h_path = os.path.join(work, "h.bin")
        rng.standard_normal((len(lengths), d)).astype(np.float32).tofile(h_path)
        segments = ",".join(map(str, lengths))
        extra = ["--h", h_path, "--segments", segments]
        torch_extra = extra
    dump = os.path.join(work, "dump")
    shutil.rmtree(dump, ignore_errors=True)
    os.makedirs(dump)
    moe_layers = ",".join(str(k) for k in range(copies))
    base_layers = ",".join(str(copies + k) for k in range(copies))
    timing = ["--budget", str(args.budget), "--min-rounds", str(args.min_rounds),
              "--max-rounds", str(args.max_rounds), "--dump", dump]
    env = thread_env(threads)
    results, noise = {}, []
    # The host's DRAM bandwidth drifts (other tenants) and a vCPU is at
    # times not there although no process of this machine uses it: the
    # row's own bandwidth and FMA rate are probed just before and after its
    # drivers.
    quick = ("--passes", "5", "--fma-seconds", "0.05")
    limits = [probe(drivers["atmoe-probe"], threads, quick)]

    def run_driver(command, env):
        # Other processes' CPU use, per driver: a burst during one of them
        # skews its column only.
        meter = CpuMeter()
        out = run_driver_once(command, env)
        noise.append(meter.other_percent())
        return out

    results.update(run_driver(
        [drivers["atmoe-layer-bench"], "--model", compiled, "--package", package,
         "--tokens", str(tokens), "--x", x_path, "--set", "atmoe_moe=" + moe_layers,
         "--set", "atmoe_base=" + base_layers] + extra + timing, env))
    results.update(run_driver(
        [drivers["atmoe-blas-bench"], "--package", package, "--d", str(d),
         "--tokens", str(tokens), "--x", x_path, "--granularity", granularity,
         "--threads", str(threads), "--rank", str(RANK), "--groups", str(GROUPS),
         "--scale", str(ALPHA / RANK), "--set", "blas_lora=" + moe_layers,
         "--set", "blas_base=" + base_layers] + extra + timing, env))
    if torch_python:
        results.update(run_driver(
            [torch_python, os.path.join(HERE, "torch_bench.py"), "--package", package,
             "--d", str(d), "--tokens", str(tokens), "--x", x_path, "--layers", moe_layers,
             "--experts", str(EXPERTS), "--threads", str(threads)] + torch_extra + timing, env))
    other, steal = max(n[0] for n in noise), max(n[1] for n in noise)
    limits.append(probe(drivers["atmoe-probe"], threads, quick))
    capacity = min(1.0, min(p["peak_gflops"] for p in limits) / best_peak)

    # Every implementation against the compiled layer (SPEC §2 tolerance).
    check = {}
    reference = {"atmoe_moe": np.fromfile(os.path.join(dump, "atmoe_moe.bin"), np.float32),
                 "atmoe_base": np.fromfile(os.path.join(dump, "atmoe_base.bin"), np.float32)}
    for name in results:
        ref = reference["atmoe_base" if name in ("atmoe_base", "blas_base") else "atmoe_moe"]
        got = np.fromfile(os.path.join(dump, name + ".bin"), np.float32)
        error = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
        check[name] = error <= 1e-3 * (1.0 + float(np.abs(ref).max()))
    return {"d": d, "granularity": granularity, "tokens": tokens, "threads": threads,
            "copies": copies, "router_rows": router_rows, "impl": results,
            "row_read_GBps": round(sum(p["read_GBps"] for p in limits) / len(limits), 2),
            "capacity_percent": round(100 * capacity, 1),
            "noise_percent": round(max(other, 100 * (1 - capacity)), 1),
            "check_ok": all(check.values()),
            "check_failed": sorted(k for k, ok in check.items() if not ok),
            "other_cpu_percent": round(other, 1), "steal_percent": round(steal, 1),
            "loadavg": os.getloadavg()[0], "time": time.strftime("%Y-%m-%d %H:%M:%S")}


# ===-----------------------------------------------------------------------===#
# Reporting
# ===-----------------------------------------------------------------------===#


def median_of(row, name):
    entry = row["impl"].get(name)
    return entry["median_us"] if entry else float("nan")


def derived(row, probes):
    """Ratios and fractions of the measured limits for one row."""
    d, tokens, rows = row["d"], row["tokens"], row["router_rows"]
    limits = probes[str(row["threads"])]
    moe, base = median_of(row, "atmoe_moe"), median_of(row, "atmoe_base")
    blas_lora = median_of(row, "blas_lora")
    out = {
        "moe/base": moe / base,
        "blas_lora/moe": blas_lora / moe,
        "naive/moe": median_of(row, "torch_naive") / moe,
        "tconcat/moe": median_of(row, "torch_concat") / moe,
        "blas_base/base": median_of(row, "blas_base") / base,
    }
    for name, lora in (("moe", True), ("base", False), ("blas_lora", True), ("blas_base", False)):
        seconds = median_of(row, "atmoe_" + name if name in ("moe", "base") else name) * 1e-6
        gbps = layer_bytes(d, lora) / seconds * 1e-9
        gflops = layer_flops(d, tokens, rows, lora) / seconds * 1e-9
        out[name + "_GBps"] = gbps
        out[name + "_bw"] = gbps / row.get("row_read_GBps", limits["read_GBps"])
        out[name + "_gflops"] = gflops
        out[name + "_peak"] = gflops / limits["peak_gflops"]
    return out


def fmt(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return "%.*f" % (digits, value)


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["| " + " | ".join(str(c).rjust(w) for c, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).rjust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def report(results):
    rows = sorted(results["rows"], key=lambda r: (-r["d"], r["granularity"] != "token",
                                                  r["tokens"], r["threads"]))
    probes = results["probes"]
    lines = []
    lines.append("Medians of one call in µs (K copies rotated; other% = CPU used by other "
                 "processes, the worst of the row's three drivers; cap% = the FMA rate probed "
                 "before and after the row (the lower) over the run's best):")
    lines.append("")
    lines.append(table(
        ["d", "gran", "T", "thr", "K"] + IMPLS + ["check", "other%", "cap%"],
        [[r["d"], r["granularity"][:3], r["tokens"], r["threads"], r["copies"]]
         + [fmt(median_of(r, n), 0) for n in IMPLS]
         + ["ok" if r["check_ok"] else "FAIL " + ",".join(r["check_failed"]),
            fmt(r["other_cpu_percent"], 0), fmt(r.get("capacity_percent"), 0)] for r in rows]))
    lines.append("")
    lines.append("Ratios (time / time: > 1 means the second one is faster) and fractions of the "
                 "limits measured in the run: %BW = bytes of weights / time over the read "
                 "bandwidth probed just before and after the row (mean of the two, column "
                 "'probe GB/s'); %peak = FLOP / time over the best FMA peak of the run:")
    lines.append("")
    ratio_rows = []
    for r in rows:
        x = derived(r, probes)
        ratio_rows.append(
            [r["d"], r["granularity"][:3], r["tokens"], r["threads"],
             fmt(x["moe/base"], 2), fmt(x["blas_lora/moe"], 2), fmt(x["naive/moe"], 2),
             fmt(x["tconcat/moe"], 2), fmt(x["blas_base/base"], 2),
             fmt(r.get("row_read_GBps")), fmt(x["moe_GBps"]), fmt(100 * x["moe_bw"], 0),
             fmt(100 * x["base_bw"], 0),
             fmt(100 * x["blas_base_bw"], 0),
             fmt(x["moe_gflops"]), fmt(100 * x["moe_peak"], 0), fmt(x["base_gflops"]),
             fmt(100 * x["base_peak"], 0), fmt(x["blas_lora_gflops"])])
    lines.append(table(
        ["d", "gran", "T", "thr", "moe/base", "blas_lora/moe", "t_naive/moe", "t_concat/moe",
         "blas_base/base", "probe GB/s", "moe GB/s", "moe %BW", "base %BW", "blas_base %BW",
         "moe GFLOP/s", "moe %peak", "base GFLOP/s", "base %peak", "blas_lora GFLOP/s"],
        ratio_rows))
    lines.append("")
    lines.append("Measured limits (best of %d probe runs per thread count: before each d and "
                 "at the end): " % max(p["samples"] for p in probes.values()) + "; ".join(
                     "%s thread(s): read %.1f GB/s (median pass; best pass %.1f), FMA peak "
                     "%.0f GFLOP/s" % (t, p["read_GBps"], p["read_best_GBps"], p["peak_gflops"])
                     for t, p in sorted(probes.items())))
    lines.append("")
    lines.append("Issue 4 targets:")
    lines.extend(targets(rows, probes))
    return "\n".join(lines)


def targets(rows, probes):
    def worst(selected, key, pick):
        values = [(derived(r, probes)[key], r) for r in selected]
        values = [v for v in values if not math.isnan(v[0])]
        if not values:
            return None, None
        return pick(values, key=lambda v: v[0])

    def where(r):
        return "d=%d %s T=%d %d thr" % (r["d"], r["granularity"], r["tokens"], r["threads"])

    out = []
    checks = [
        ("layer / base <= 1.10 at every T", rows, "moe/base", max, lambda v: v <= 1.10, "%.2f"),
        ("T = 1: >= 80% of measured DRAM read bandwidth",
         [r for r in rows if r["tokens"] == 1], "moe_bw", min, lambda v: v >= 0.80, "%.0f%%"),
        ("T = 16: >= 2x faster than OpenBLAS concatenated LoRA",
         [r for r in rows if r["tokens"] == 16], "blas_lora/moe", min, lambda v: v >= 2.0,
         "%.2fx"),
        ("T >= 128: >= 1.0x OpenBLAS concatenated LoRA",
         [r for r in rows if r["tokens"] >= 128], "blas_lora/moe", min, lambda v: v >= 1.0,
         "%.2fx"),
    ]
    for title, selected, key, pick, ok, form in checks:
        value, row = worst(selected, key, pick)
        if row is None:
            out.append("- %s: not measured" % title)
            continue
        shown = form % (100 * value if "%%" in form else value)
        out.append("- %s: %s (worst: %s at %s)" % (title, "MET" if ok(value) else "NOT MET",
                                                    shown, where(row)))
    return out


def plot(results, path, python):
    """time vs T per implementation, with the roofline bound (token granularity)."""
    script = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.load(open(sys.argv[1]))
rows, probes, bounds = data["rows"], data["probes"], data["bounds"]
ds = sorted({r["d"] for r in rows}, reverse=True)
threads = sorted({r["threads"] for r in rows})
fig, axes = plt.subplots(len(ds), len(threads), figsize=(5.5 * len(threads), 4.2 * len(ds)),
                         squeeze=False)
styles = {"atmoe_moe": ("C0", "o", "-"), "atmoe_base": ("C0", "s", "--"),
          "blas_base": ("C1", "s", "--"), "blas_lora": ("C1", "o", "-"),
          "torch_naive": ("C2", "^", "-"), "torch_concat": ("C2", "v", ":")}
for i, d in enumerate(ds):
    for j, t in enumerate(threads):
        ax = axes[i][j]
        sel = sorted([r for r in rows if r["d"] == d and r["threads"] == t
                      and r["granularity"] == "token"], key=lambda r: r["tokens"])
        if not sel:
            continue
        ts = [r["tokens"] for r in sel]
        for name, (color, marker, line) in styles.items():
            ys = [r["impl"][name]["median_us"] / 1e3 for r in sel if name in r["impl"]]
            if len(ys) == len(ts):
                ax.plot(ts, ys, color=color, marker=marker, linestyle=line, label=name)
        seq = sorted([r for r in rows if r["d"] == d and r["threads"] == t
                      and r["granularity"] == "sequence"], key=lambda r: r["tokens"])
        if seq:
            ax.plot([r["tokens"] for r in seq], [r["impl"]["atmoe_moe"]["median_us"] / 1e3
                    for r in seq], color="C0", marker="x", linestyle="", label="atmoe_moe (seq)")
        b = bounds["%d/%d" % (d, t)]
        ax.plot(b["tokens"], [v / 1e3 for v in b["lora_us"]], color="k", linewidth=2,
                alpha=0.6, label="roofline (LoRA-MoE)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ts)
        ax.set_xticklabels([str(v) for v in ts])
        p = probes[str(t)]
        ax.set_title("d = %d, %d thread(s): %.0f GB/s, %.0f GFLOP/s" % (
            d, t, p["read_GBps"], p["peak_gflops"]), fontsize=10)
        ax.set_xlabel("T (tokens)")
        ax.set_ylabel("time per call (ms)")
        ax.grid(True, which="both", alpha=0.3)
axes[0][0].legend(fontsize=7)
fig.suptitle(data["title"], fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
"""
    bounds = {}
    for d in sorted({r["d"] for r in results["rows"]}):
        for t, limits in results["probes"].items():
            ts = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
            us = []
            for tokens in ts:
                memory = (layer_bytes(d, True) + 8 * tokens * d) / (limits["read_GBps"] * 1e9)
                compute = layer_flops(d, tokens, tokens, True) / (limits["peak_gflops"] * 1e9)
                us.append(max(memory, compute) * 1e6)
            bounds["%d/%s" % (d, t)] = {"tokens": ts, "lora_us": us}
    data = dict(results, bounds=bounds,
                title="SPEC §6 on %s (%s), token granularity, medians; roofline from the "
                      "measured read bandwidth and FMA peak" % (results["cpu"],
                                                                results["commit"]))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f)
    try:
        subprocess.run([python, "-c", script, f.name, path], check=True)
    finally:
        os.unlink(f.name)


# ===-----------------------------------------------------------------------===#
# Main
# ===-----------------------------------------------------------------------===#


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--d", default="4096,2048")
    parser.add_argument("--tokens", default="1,16,128,512")
    parser.add_argument("--granularity", default="token,sequence")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--copies", default="auto",
                        help="K copies rotated (default: K * W >= 4x the L3 cache, K >= 2)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds of timed rounds per driver and row (default 2)")
    parser.add_argument("--min-rounds", type=int, default=3)
    parser.add_argument("--max-rounds", type=int, default=50)
    parser.add_argument("--quiet", type=float, default=10.0,
                        help="a row during one of whose drivers other processes used more "
                             "than this %% of the CPUs is noisy (default 10)")
    parser.add_argument("--retries", type=int, default=1,
                        help="measure a noisy row again up to N times, keep the quietest "
                             "(default 1)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each row, wait up to SECONDS for the other processes "
                             "to drop below --quiet (default 0: do not wait)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install python3-torch / python3-matplotlib")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "spec6.json"))
    parser.add_argument("--plot", default=os.path.join(ROOT, "docs", "performance.png"))
    parser.add_argument("--merge", action="store_true",
                        help="replace only the rows measured now in the existing --json")
    parser.add_argument("--rerun-noisy", action="store_true",
                        help="with the existing --json: measure again only its rows above "
                             "--quiet (or whose check failed), and merge")
    parser.add_argument("--work", help="scratch directory (default: a temporary one, removed)")
    args = parser.parse_args()
    threads_list = [int(v) for v in args.threads.split(",")]

    compiler, drivers = build_drivers(os.path.abspath(args.build))
    torch_python = None if args.no_torch else ensure_module(
        "torch", "python3-torch", not args.no_install)
    if not args.no_torch and not torch_python:
        log("PyTorch is not available: its columns stay empty")
    plot_python = ensure_module("matplotlib", "python3-matplotlib", not args.no_install)

    state = git_state()
    results = {"cpu": cpu_model(), "cpus": os.cpu_count(), "l3_bytes": l3_bytes(),
               "commit": state["commit"], "modified": state["modified"],
               "omp_wait_policy": thread_env(1)["OMP_WAIT_POLICY"],
               "date": time.strftime("%Y-%m-%d %H:%M"), "probes": {}, "probe_samples": [],
               "rows": [],
               "compile_seconds": {}}
    wanted = None  # the (d, granularity, T, threads) rows to measure; None: all
    if args.rerun_noisy:
        args.merge = True
    if args.merge and os.path.exists(args.json):
        with open(args.json) as f:
            old = json.load(f)
        results["rows"] = old.get("rows", [])
        results["probe_samples"] = old.get("probe_samples", [])
        results["compile_seconds"] = old.get("compile_seconds", {})
        if args.rerun_noisy:
            wanted = {(r["d"], r["granularity"], r["tokens"], r["threads"])
                      for r in results["rows"]
                      if noise(r) >= args.quiet or not r["check_ok"]}
            log("rerunning %d noisy row(s)" % len(wanted))
    print("CPU: %s, %d CPUs, L3 %d MiB; commit %s%s; OMP_WAIT_POLICY=%s, OMP/OPENBLAS/MKL "
          "_NUM_THREADS = thread count" % (
              results["cpu"], results["cpus"], results["l3_bytes"] >> 20, state["commit"],
              " + uncommitted changes in " + ", ".join(state["modified"])
              if state["modified"] else "", results["omp_wait_policy"]), flush=True)

    results["atmoe_compile_built"] = time.strftime(
        "%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(compiler)))

    def measure_limits():
        for threads in threads_list:
            if args.wait_quiet:
                wait_for_quiet(args.quiet, args.wait_quiet)
            meter = CpuMeter()
            sample = probe(drivers["atmoe-probe"], threads)
            sample.update(threads=threads, other_cpu_percent=round(meter.other_percent()[0], 1),
                          time=time.strftime("%Y-%m-%d %H:%M:%S"))
            results["probe_samples"].append(sample)
            log("probe, %d thread(s): %s" % (threads, sample))
        results["probes"] = best_limits(results["probe_samples"])

    measure_limits()

    work = args.work or tempfile.mkdtemp(prefix="atmoe-bench-")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(0)
    try:
        for d in [int(v) for v in args.d.split(",")]:
            copies = copies_for(d, args.copies)
            for granularity in args.granularity.split(","):
                if wanted is not None and not any(
                        w[:2] == (d, granularity) for w in wanted):
                    continue
                package, compiled, seconds = prepare_package(work, compiler, d, granularity,
                                                             copies)
                results["compile_seconds"]["d%d-%s-x%d" % (d, granularity, copies)] = \
                    round(seconds, 2)
                log("d=%d %s: K=%d copies (%.0f MiB of weights), compiled in %.1f s" % (
                    d, granularity, copies, 2 * copies * layer_bytes(d, True) / 2**20, seconds))
                for tokens in [int(v) for v in args.tokens.split(",")]:
                    for threads in threads_list:
                        if wanted is not None and (d, granularity, tokens, threads) not in wanted:
                            continue
                        row = None
                        for attempt in range(1 + args.retries):
                            if args.wait_quiet:
                                wait_for_quiet(args.quiet, args.wait_quiet)
                            again = measure_row(args, drivers, torch_python, package, compiled,
                                                d, granularity, tokens, threads, copies, work,
                                                rng, results["probes"][str(threads)][
                                                    "peak_gflops"])
                            if row is None or noise(again) < noise(row):
                                row = again
                            if noise(row) < args.quiet:
                                break
                            log("d=%d %s T=%d %d thr: noisy (other processes %.0f%%, FMA rate "
                                "%.0f%% of the best)%s" % (
                                    d, granularity, tokens, threads, again["other_cpu_percent"],
                                    again["capacity_percent"],
                                    ", measuring again" if attempt < args.retries else ""))
                        row["attempts"] = attempt + 1
                        key = (d, granularity, tokens, threads)
                        results["rows"] = [r for r in results["rows"] if (
                            r["d"], r["granularity"], r["tokens"], r["threads"]) != key]
                        results["rows"].append(row)
                        log("d=%d %s T=%d %d thr: %s, other CPU %.0f%%, FMA rate %.0f%%%s" % (
                            d, granularity, tokens, threads, ", ".join(
                                "%s %.0f" % (n, row["impl"][n]["median_us"])
                                for n in IMPLS if n in row["impl"]),
                            row["other_cpu_percent"], row["capacity_percent"],
                            "" if row["check_ok"] else ", CHECK FAILED: "
                            + ",".join(row["check_failed"])))
                shutil.rmtree(package, ignore_errors=True)
            measure_limits()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    print(report(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print("\nrows saved to %s" % args.json)
    if args.plot and plot_python:
        plot(results, args.plot, plot_python)
        print("plot written to %s" % args.plot)


if __name__ == "__main__":
    main()
