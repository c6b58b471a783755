#!/usr/bin/env python3
"""End-to-end check of one compiled layer: random inputs -> atmoe-run ->
comparison with the float64 reference (reference.py).

  e2e.py --atmoe-run BIN --compiled MODEL.so --model PKG --layer L --tokens T
         [--segments 2,3] [--per-projection] [--launcher "mpiexec -n 2"]
         --work DIR

Inputs are deterministic (seeded by layer and T). Without --per-projection
one bare --x feeds every projection (all must share d_in); with it each
projection gets its own file. h is always passed explicitly: T rows for token
granularity, one per sequence for sequence granularity.
"""

import argparse
import os
import shlex
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--atmoe-run", required=True)
    parser.add_argument("--compiled", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--layer", type=int, required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--segments")
    parser.add_argument("--per-projection", action="store_true")
    parser.add_argument("--launcher", default="",
                        help="runs atmoe-run under it (a model split over "
                        "processes); the outputs must come from rank 0 alone")
    parser.add_argument("--work", required=True)
    parser.add_argument("--int8-activations", action="store_true",
                        help="checked with reference.py --int8-activations")
    args = parser.parse_args()

    layer = reference.Layer(args.model, args.layer)
    os.makedirs(args.work, exist_ok=True)
    rng = np.random.default_rng(1000 * args.layer + args.tokens)
    tokens = args.tokens
    run = shlex.split(args.launcher) + [args.atmoe_run, args.compiled, "--model", args.model,
           "--layer", str(args.layer), "--out-dir", os.path.join(args.work, "out")]
    check = [args.model, "--layer", str(args.layer)]

    def write(name, rows, cols):
        path = os.path.join(args.work, name + ".npy")
        np.save(path, rng.standard_normal((rows, cols)).astype(np.float32))
        return path

    if args.per_projection:
        for proj in layer.projections:
            path = write("x_" + proj["name"], tokens, proj["in_features"])
            run += ["--x", "%s=%s" % (proj["name"], path)]
            check += ["--x", "%s=%s" % (proj["name"], path)]
    else:
        widths = {p["in_features"] for p in layer.projections}
        assert len(widths) == 1, "projections differ in d_in: use --per-projection"
        path = write("x", tokens, widths.pop())
        run += ["--x", path]
        check += ["--x", path]

    if layer.routed:
        sequence = layer.router.get("granularity", "token") == "sequence"
        rows = tokens
        if sequence:
            rows = len(args.segments.split(",")) if args.segments else 1
        path = write("h", rows, layer.hidden_size)
        run += ["--h", path]
        check += ["--h", path]
    if args.segments:
        run += ["--segments", args.segments]
        check += ["--segments", args.segments]

    result = subprocess.run(run, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit("atmoe-run failed with exit code %d" % result.returncode)
    sys.argv = ["reference.py"] + check + ["--check", os.path.join(args.work, "out")]
    if args.int8_activations:
        sys.argv.append("--int8-activations")
    reference.main()


if __name__ == "__main__":
    main()
