#!/usr/bin/env python3
"""The main job on the bundled example model.

Generates the example package (deterministic weights: two layers, two task
groups, heterogeneous ranks, a shared expert), compiles it with
atmoe-compile, runs every layer with atmoe-run, checks the outputs against
the float64 reference and prints the routing weights and the timing.

  python3 examples/demo/run_demo.py BUILD_DIR WORK_DIR
"""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "helpers"))
import reference  # noqa: E402

TOKENS = 6


def main():
    build, work = sys.argv[1], sys.argv[2]
    package, compiled = os.path.join(work, "demo"), os.path.join(work, "demo.so")
    os.makedirs(work, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "test", "helpers", "model_package.py"),
                    "--preset", "demo", package], check=True, stdout=subprocess.DEVNULL)
    print("== atmoe-compile %s -o %s" % (package, compiled))
    subprocess.run([os.path.join(build, "bin", "atmoe-compile"), package, "-o", compiled], check=True)

    with open(os.path.join(package, "model.json")) as f:
        layers = [layer["index"] for layer in json.load(f)["layers"]]
    rng = np.random.default_rng(2026)
    x_path = os.path.join(work, "x.npy")
    np.save(x_path, rng.standard_normal((TOKENS, 64)).astype(np.float32))
    ok = True
    for index in layers:
        out = os.path.join(work, "layer%d" % index)
        command = [os.path.join(build, "bin", "atmoe-run"), compiled, "--model", package,
                   "--layer", str(index), "--x", x_path, "--out-dir", out, "--repeat", "200"]
        print("\n== " + " ".join(os.path.relpath(c) if os.path.exists(c) else c for c in command))
        subprocess.run(command, check=True)
        layer = reference.Layer(package, index)
        routing = np.load(os.path.join(out, "routing.npy"))
        print("routing weights (token x expert; groups %s):" % layer.groups)
        print("       " + " ".join("%9s" % e for e in layer.routed))
        for t, row in enumerate(routing):
            print("  t=%d  " % t + " ".join("%9.4f" % w for w in row))
        print("check against the float64 reference:")
        sys.argv = ["reference.py", package, "--layer", str(index), "--x", x_path, "--check", out]
        try:
            reference.main()
        except SystemExit as exit:
            ok = ok and exit.code == 0
    print("\n" + ("demo: all outputs match the reference" if ok else "demo: MISMATCH"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
