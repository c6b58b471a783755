#!/usr/bin/env python3
"""SPEC §6 benchmark: the compiled LoRA-MoE layer against the compiled base
linear and a naive per-expert loop, side by side in one run.

  python3 bench/run_bench.py [--build build] [--d 4096,2048]
                             [--tokens 1,16,128,512] [--repeat 20]
                             [--granularity token,sequence] [--threads 2]

For each shape it writes the workload package (bench/workload.py), compiles
it with atmoe-compile, times layer 0 (LoRA-MoE) and layer 1 (the same
projection without experts) with `atmoe-run --repeat`, and times the naive
per-expert loop in numpy (what PEFT-style code does: one pair of matmuls per
expert, summed). Prints medians in microseconds and the ratios. Not a test:
nothing here asserts a speed.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
import reference  # noqa: E402


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def atmoe_run_median(build, compiled, package, layer, x, h, segments, repeat, out):
    command = [os.path.join(build, "bin", "atmoe-run"), compiled, "--model", package,
               "--layer", str(layer), "--x", x, "--out-dir", out, "--repeat", str(repeat)]
    if h:
        command += ["--h", h]
    if segments:
        command += ["--segments", segments]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    match = re.search(r"median_us=([0-9.]+)", result.stdout)
    return float(match.group(1))


def naive_loop_median(layer, x, repeat):
    """Per-expert loop in float32 numpy (OpenBLAS underneath)."""
    proj = layer.projections[0]
    name = proj["name"]
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    weight = f32(layer.weight(name + ".weight"))
    adapters = [(f32(layer.weight("%s.lora_A.%s.weight" % (name, e))),
                 f32(layer.weight("%s.lora_B.%s.weight" % (name, e))),
                 float(layer.experts[e]["alpha"]) / float(layer.experts[e]["rank"]))
                for e in layer.routed]
    router = {k: f32(v) for k, v in layer.tensors.items() if ".router." in k}
    x = f32(x)

    def forward():
        h = x
        u = h @ router["layers.0.router.group.weight"].T
        v = h @ router["layers.0.router.expert.weight"].T
        p = np.exp(u - u.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w = np.empty_like(v)
        for g in range(4):
            q = np.exp(v[:, 2 * g:2 * g + 2] - v[:, 2 * g:2 * g + 2].max(1, keepdims=True))
            w[:, 2 * g:2 * g + 2] = p[:, g:g + 1] * q / q.sum(1, keepdims=True)
        y = x @ weight.T
        for e, (a, b, scale) in enumerate(adapters):
            y += (w[:, e:e + 1] * scale) * ((x @ a.T) @ b.T)
        return y

    forward()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--d", default="4096,2048")
    parser.add_argument("--tokens", default="1,16,128,512")
    parser.add_argument("--granularity", default="token,sequence")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    print("CPU: %s, %d thread(s), repeat %d, medians in us" % (cpu_model(), args.threads, args.repeat))
    print("%6s %-9s %5s %11s %11s %11s %10s %11s" % (
        "d", "gran", "T", "lora_moe", "base", "naive_loop", "moe/base", "naive/moe"))
    work = tempfile.mkdtemp(prefix="atmoe-bench-")
    rng = np.random.default_rng(0)
    for d in [int(v) for v in args.d.split(",")]:
        for granularity in args.granularity.split(","):
            package = os.path.join(work, "d%d-%s" % (d, granularity))
            description = package + ".json"
            subprocess.run([sys.executable, os.path.join(HERE, "workload.py"), "--d", str(d),
                            "--granularity", granularity, description], check=True)
            subprocess.run([sys.executable, os.path.join(ROOT, "test", "lib", "model_package.py"),
                            "--desc", description, package], check=True, stdout=subprocess.DEVNULL)
            compiled = package + ".so"
            subprocess.run([os.path.join(args.build, "bin", "atmoe-compile"), package, "-o", compiled],
                           check=True)
            layer = reference.Layer(package, 0)
            for tokens in [int(v) for v in args.tokens.split(",")]:
                x = rng.standard_normal((tokens, d)).astype(np.float32)
                x_path = os.path.join(work, "x.npy")
                np.save(x_path, x)
                h_path, segments = None, None
                if granularity == "sequence":
                    # Two sequences (one when T = 1), each with its own plan.
                    lengths = [tokens] if tokens == 1 else [tokens // 2, tokens - tokens // 2]
                    segments = ",".join(map(str, lengths))
                    h_path = os.path.join(work, "h.npy")
                    np.save(h_path, rng.standard_normal((len(lengths), d)).astype(np.float32))
                out = os.path.join(work, "out")
                moe = atmoe_run_median(args.build, compiled, package, 0, x_path, h_path, segments,
                                       args.repeat, out)
                base = atmoe_run_median(args.build, compiled, package, 1, x_path, None, None,
                                        args.repeat, out)
                naive = naive_loop_median(layer, x, args.repeat) if granularity == "token" else float("nan")
                print("%6d %-9s %5d %11.1f %11.1f %11.1f %10.3f %11.2f" % (
                    d, granularity, tokens, moe, base, naive, moe / base, naive / moe))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
