#!/usr/bin/env python3
"""The main job on the bundled example model, the way a user gets there.

The example is what users have: a small Llama-shaped Hugging Face model
directory (config.json, model.safetensors) and five PEFT adapter
directories, plus a trained router (test/helpers/model_package.py --preset
assistant, then test/helpers/hf_checkpoint.py). The main job packages them
with atmoe-package init (nothing renamed or copied), compiles the package
with atmoe-compile, runs every layer through the Python API (python/atmoe),
checks the outputs against the float64 reference and prints the routing
weights and the timing.

  python3 examples/demo/run_demo.py BUILD_DIR WORK_DIR
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELPERS = os.path.join(ROOT, "test", "helpers")
sys.path.insert(0, HELPERS)
sys.path.insert(0, os.path.join(ROOT, "python"))
import atmoe  # noqa: E402
import reference  # noqa: E402

TOKENS = 6
REPEATS = 200
ADAPTERS = ["icd", "symptom", "qa", "summary", "general"]


def show(command):
    print("\n== " + " ".join(os.path.relpath(c) if os.path.exists(c) else c for c in command))
    subprocess.run(command, check=True)


def write_example(source):
    """The user's files: source/hf, source/adapters/*, source/router.safetensors."""
    shutil.rmtree(source, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(HELPERS, "model_package.py"),
                    "--preset", "assistant", source], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(HELPERS, "hf_checkpoint.py"), source,
                    "--gen", '{"heads": 4, "kv_heads": 2}'], check=True)
    os.rename(os.path.join(source, "weights.safetensors"),
              os.path.join(source, "router.safetensors"))
    os.remove(os.path.join(source, "model.json"))


def package_and_compile(build, source, package, compiled):
    shutil.rmtree(package, ignore_errors=True)
    command = [os.path.join(build, "bin", "atmoe-package"), "init",
               "--base", os.path.join(source, "hf")]
    command += ["--adapter=%s=%s" % (a, os.path.join(source, "adapters", a)) for a in ADAPTERS]
    command += ["--group", "diagnosis=icd,symptom", "--group", "dialogue=qa,summary",
                "--shared", "general", "--lambda", "0.8",
                "--router-weights", os.path.join(source, "router.safetensors"), "-o", package]
    show(command)
    show([os.path.join(build, "bin", "atmoe-compile"), package, "-o", compiled])


def run_layer(model, index, xs, out):
    """Runs one layer, prints its timing, saves its outputs into `out`."""
    ys, routing = model.forward(index, xs, h=xs["q_proj"])
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.forward(index, xs, h=xs["q_proj"])
        times.append(1e6 * (time.perf_counter() - start))
    print("layer %d: median_us=%.3f min_us=%.3f repeats=%d (Python API, arrays included)"
          % (index, statistics.median(times), min(times), REPEATS))
    os.makedirs(out, exist_ok=True)
    for name, y in list(ys.items()) + [("routing", routing)]:
        np.save(os.path.join(out, name + ".npy"), y)
    return routing


def check_layer(package, index, work, xs, routing, out):
    layer = reference.Layer(package, index)
    print("routing weights (token x expert; groups %s):" % layer.groups)
    print("       " + " ".join("%9s" % e for e in layer.routed))
    for t, row in enumerate(routing):
        print("  t=%d  " % t + " ".join("%9.4f" % w for w in row))
    print("check against the float64 reference:")
    arguments = []
    for name, x in xs.items():
        path = os.path.join(work, "x_%s.npy" % name)
        np.save(path, x)
        arguments += ["--x", "%s=%s" % (name, path)]
    sys.argv = ["reference.py", package, "--layer", str(index)] + arguments + [
        "--h", os.path.join(work, "x_q_proj.npy"), "--check", out]
    try:
        reference.main()
    except SystemExit as exit:
        return exit.code == 0
    return True


def main():
    build, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    source, package = os.path.join(work, "example"), os.path.join(work, "demo")
    compiled = os.path.join(work, "demo.so")
    write_example(source)
    package_and_compile(build, source, package, compiled)

    runtime = os.path.join(build, "lib", "libatmoe_runtime.so")
    print("\n== atmoe.load(%r, %r)" % (os.path.relpath(compiled), os.path.relpath(package)))
    model = atmoe.load(compiled, package, runtime=runtime)
    rng = np.random.default_rng(2026)
    ok = True
    for index in model.layers:
        xs = {p.name: rng.standard_normal((TOKENS, p.d_in)).astype(np.float32)
              for p in model.projections(index)}
        print("\n== model.forward(layer=%d, x={%s}, h=x['q_proj'])"
              % (index, ", ".join("%s: %dx%d" % (n, *x.shape) for n, x in xs.items())))
        out = os.path.join(work, "layer%d" % index)
        routing = run_layer(model, index, xs, out)
        ok = check_layer(package, index, work, xs, routing, out) and ok
    model.close()
    print("\n" + ("demo: all outputs match the reference" if ok else "demo: MISMATCH"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
