#!/usr/bin/env python3
# ===- compile_bench.py - compile time and memory against layer width ----===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""atmoe-compile's wall time and peak resident memory on wide layers, side by
side with another atmoe-compile (an older build) in one run (issue 14,
item 13).

  python3 bench/compile_bench.py [--build build] [--baseline OLD/atmoe-compile]
      [--timeout 300] [--cases NAME,...] [--run-tokens T,...] [--json FILE]

Each case is one layer (d = 64, rank-2 experts) written with
test/helpers/model_package.py:
  topk-E       E experts, flat softmax router with top_k = 2;
  grouped-E-G  E experts in G groups, grouped softmax with top_k_groups = 4;
  proj-P       P projections, 8 experts in 2 groups;
  llama7b-32   a 32-layer Llama-7B-shaped package: per layer q/k/v/o
               (4096 x 4096) and gate/up/down (4096 <-> 11008), 8 rank-16
               experts in 4 groups, grouped-softmax router over h = 4096.
               Its weights file is sparse (a header and a hole of 26 GB):
               atmoe-compile reads only tensor names, dtypes and shapes.
Every case is compiled to a shared library by each compiler in turn (the
one under test first); a compile past --timeout is reported as "> timeout".
It prints the host's processor and core count, then per case the seconds,
peak RSS and library size (MiB) of each compiler and baseline/current.

--run-tokens also times what each compiler built: per T, atmoe-run
--repeat 300 on the same random input, each library in turn, the median
microseconds of a forward call and baseline/current (the llama7b-32 case,
whose weights are a hole, and cases over 1000 experts are not run).
Each compiled library's size is reported too.

Not a test: nothing here asserts a speed.
"""

import argparse
import json
import math
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "test", "helpers", "model_package.py")

CASES = {
    "topk-64": ("topk", 64, 1, 1),
    "topk-150": ("topk", 150, 1, 1),
    "topk-512": ("topk", 512, 1, 1),
    "grouped-512-64": ("grouped", 512, 64, 1),
    "grouped-10000-100": ("grouped", 10000, 100, 1),
    "proj-16": ("proj", 8, 2, 16),
    "proj-64": ("proj", 8, 2, 64),
    "llama7b-32": ("llama", 8, 4, 32),
}

# Llama-7B's widths, and the small stand-ins the package is first written
# with (distinct from every other extent, so the shapes can be mapped back).
LLAMA_HIDDEN, LLAMA_INTERMEDIATE = 4096, 11008
SMALL_HIDDEN, SMALL_INTERMEDIATE = 12, 20


def llama_layers(layers, hidden, intermediate):
    square = [("q_proj", hidden, hidden), ("k_proj", hidden, hidden),
              ("v_proj", hidden, hidden), ("o_proj", hidden, hidden)]
    mlp = [("gate_proj", hidden, intermediate), ("up_proj", hidden, intermediate),
           ("down_proj", intermediate, hidden)]
    return [{"index": i, "hidden_size": hidden, "projections": [
        {"name": n, "in_features": d_in, "out_features": d_out, "bias": False}
        for n, d_in, d_out in square + mlp]} for i in range(layers)]


def description(kind, experts, groups, projections):
    names = ["e%d" % i for i in range(experts)]
    if kind == "llama":
        size = experts // groups
        return {
            "format": "atmoe-model/1", "name": "llama7b", "weights": ["weights.safetensors"],
            "groups": [{"name": "g%d" % g, "experts": names[g * size:(g + 1) * size]}
                       for g in range(groups)],
            "experts": {name: {"rank": 16, "alpha": 32} for name in names},
            "router": {"kind": "grouped_softmax"},
            "layers": llama_layers(projections, SMALL_HIDDEN, SMALL_INTERMEDIATE),
        }
    size = experts // groups
    router = {"kind": "softmax", "top_k": 2} if kind == "topk" else \
        {"kind": "grouped_softmax", "top_k_groups": min(4, groups)}
    return {
        "format": "atmoe-model/1", "name": "wide", "weights": ["weights.safetensors"],
        "groups": [{"name": "g%d" % g, "experts": names[g * size:(g + 1) * size]}
                   for g in range(groups)],
        "experts": {name: {"rank": 2, "alpha": 4} for name in names},
        "router": router,
        "layers": [{"index": 0, "hidden_size": 64, "projections": [
            {"name": "p%d" % p, "in_features": 64, "out_features": 64, "bias": False}
            for p in range(projections)]}],
    }


def write_package(work, name, case):
    desc = os.path.join(work, name + ".json")
    with open(desc, "w") as f:
        json.dump(description(*case), f)
    package = os.path.join(work, name)
    subprocess.run(["/usr/bin/python3", PACKAGE, "--desc", desc, package],
                   check=True, stdout=subprocess.DEVNULL)
    if case[0] == "llama":
        widen_to_llama(package, case[3])
    return package


def widen_to_llama(package, layers):
    """Rewrites the small stand-in package at Llama-7B's widths: model.json
    with the real extents, and weights.safetensors as its header (every
    tensor's shape mapped back) followed by a hole for the data."""
    widths = {SMALL_HIDDEN: LLAMA_HIDDEN, SMALL_INTERMEDIATE: LLAMA_INTERMEDIATE}
    path = os.path.join(package, "model.json")
    with open(path) as f:
        model = json.load(f)
    model["layers"] = llama_layers(layers, LLAMA_HIDDEN, LLAMA_INTERMEDIATE)
    with open(path, "w") as f:
        json.dump(model, f)
    path = os.path.join(package, "weights.safetensors")
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    offset = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        info["shape"] = [widths.get(extent, extent) for extent in info["shape"]]
        count = 4 * math.prod(info["shape"])
        info["dtype"] = "F32"
        info["data_offsets"] = [offset, offset + count]
        offset += count
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)


def compile_once(compiler, package, output, timeout):
    """(seconds, peak RSS in MiB, library MiB), or Nones past the timeout."""
    start = time.monotonic()
    process = subprocess.Popen([compiler, package, "-o", output],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            return None, None, None
        time.sleep(0.05)
    seconds = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("%s failed on %s: %s" % (compiler, package, process.stderr.read().decode()))
    return seconds, usage.ru_maxrss / 1024.0, os.path.getsize(output) / 2.0**20


def write_inputs(path, rows, cols):
    """A .npy file of rows x cols f32 values in [-1, 1) (numpy is not needed)."""
    import random
    rng = random.Random(0)
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    values = [rng.uniform(-1, 1) for _ in range(rows * cols)]
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % len(values), *values))


def time_forward(run, library, package, work, tokens):
    """Median microseconds of one forward call of layer 0 at T = tokens."""
    inputs = os.path.join(work, "x%d.npy" % tokens)
    write_inputs(inputs, tokens, 64)
    out = subprocess.run([run, library, "--model", package, "--layer", "0", "--x", inputs,
                          "--out-dir", os.path.join(work, "out"), "--repeat", "300"],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split("median_us=")[1].split()[0])


def processor():
    """The CPU's model name (/proc/cpuinfo), else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def describe(seconds, timeout):
    return "> %d" % timeout if seconds is None else "%.2f" % seconds


def compile_line(name, row, timeout):
    """The printed line of one case; adds baseline_over_current to row."""
    line = "%-17s current %8s s %7.0f MiB %8.1f MiB .so" % (
        name, describe(row["current"]["seconds"], timeout),
        row["current"]["peak_rss_mib"] or 0, row["current"]["library_mib"] or 0)
    base = row.get("baseline")
    if base:
        line += "   baseline %8s s %7s MiB %8s MiB .so" % (
            describe(base["seconds"], timeout),
            "-" if base["peak_rss_mib"] is None else "%.0f" % base["peak_rss_mib"],
            "-" if base["library_mib"] is None else "%.1f" % base["library_mib"])
        if base["seconds"] is not None:
            row["baseline_over_current"] = base["seconds"] / row["current"]["seconds"]
            line += "   baseline/current %.1fx" % row["baseline_over_current"]
        else:
            line += "   baseline/current > %.0fx" % (timeout / row["current"]["seconds"])
    return line


def time_runs(row, libraries, run, package, work, tokens):
    """Times each compiler's library at every T; prints one line per T."""
    for count in tokens:
        times = {label: time_forward(run, library, package, work, count)
                 for label, library in libraries.items()}
        row.setdefault("forward_us", {})[str(count)] = times
        line = "%-16s   T = %-4d current %9.1f us" % ("", count, times["current"])
        if "baseline" in times:
            line += "   baseline %9.1f us   baseline/current %.2fx" % (
                times["baseline"], times["baseline"] / times["current"])
        print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--baseline", help="another atmoe-compile to compare with")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--run-tokens", default="",
                        help="also time a forward call at these token counts")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    compilers = [("current", os.path.join(args.build, "bin", "atmoe-compile"))]
    if args.baseline:
        compilers.append(("baseline", args.baseline))
    run = os.path.join(args.build, "bin", "atmoe-run")
    tokens = [int(t) for t in args.run_tokens.split(",") if t]
    print("host: %s, %d cores" % (processor(), os.cpu_count()))
    results = []
    with tempfile.TemporaryDirectory(prefix="atmoe-compile-bench-") as work:
        for name in args.cases.split(","):
            package = write_package(work, name, CASES[name])
            row = {"case": name}
            libraries = {}
            for label, compiler in compilers:
                libraries[label] = os.path.join(work, "%s-%s.so" % (name, label))
                seconds, rss, size = compile_once(compiler, package, libraries[label],
                                                  args.timeout)
                row[label] = {"seconds": seconds, "peak_rss_mib": rss, "library_mib": size}
            print(compile_line(name, row, args.timeout), flush=True)
            kind, experts = CASES[name][0], CASES[name][1]
            if kind != "llama" and experts <= 1000 and all(
                    row[label]["seconds"] for label in libraries):
                time_runs(row, libraries, run, package, work, tokens)
            results.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"timeout_s": args.timeout, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
