#!/usr/bin/env python3
"""Checks of the Python API (python/atmoe) against atmoe-run and the float64
reference (test/helpers/reference.py).

  api_check.py compare COMPILED PKG ATMOE_RUN WORK LAYER TOKENS [SEGMENTS]
      the same inputs through atmoe-run and model.forward: bitwise equal
      outputs, and the API's within SPEC's tolerance of the reference
  api_check.py threads COMPILED PKG LAYER
      8 threads x 20 calls with different T equal the single-threaded results
  api_check.py rebind COMPILED PKG OTHER CHANGED
      OTHER (same structure, other weights) binds and matches the reference;
      CHANGED (another alpha) is refused, and the weights stay as they were
  api_check.py errors COMPILED PKG
      prints each misuse's exception
"""

import os
import subprocess
import sys
import threading

import numpy as np

import atmoe

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "helpers"))
import reference  # noqa: E402


def inputs(model, layer, tokens, segments, seed):
    """x per projection and h, as arrays."""
    rng = np.random.default_rng(seed)
    xs = {p.name: rng.standard_normal((tokens, p.d_in)).astype(np.float32)
          for p in model.projections(layer)}
    router = model.router(layer)
    h = None
    if router:
        rows = tokens if router.granularity == "token" else len(segments or [tokens])
        h = rng.standard_normal((rows, router.d_h)).astype(np.float32)
    return xs, h


def save_all(directory, ys, routing):
    os.makedirs(directory, exist_ok=True)
    for name, y in ys.items():
        np.save(os.path.join(directory, name + ".npy"), y)
    if routing is not None:
        np.save(os.path.join(directory, "routing.npy"), routing)


def check_reference(package, layer, work, xs, h, segments, outputs):
    arguments = [package, "--layer", str(layer)]
    for name, x in xs.items():
        path = os.path.join(work, "x_%s.npy" % name)
        np.save(path, x)
        arguments += ["--x", "%s=%s" % (name, path)]
    if h is not None:
        np.save(os.path.join(work, "h.npy"), h)
        arguments += ["--h", os.path.join(work, "h.npy")]
    if segments:
        arguments += ["--segments", ",".join(map(str, segments))]
    sys.argv = ["reference.py"] + arguments + ["--check", outputs]
    try:
        reference.main()
    except SystemExit as exit:
        if exit.code:
            raise


def compare(compiled, package, atmoe_run, work, layer, tokens, segments=None):
    layer, tokens = int(layer), int(tokens)
    segments = [int(s) for s in segments.split(",")] if segments else None
    os.makedirs(work, exist_ok=True)
    with atmoe.load(compiled, package) as model:
        xs, h = inputs(model, layer, tokens, segments, 100 * layer + tokens)
        ys, routing = model.forward(layer, xs, h=h, segments=segments)
    save_all(os.path.join(work, "api"), ys, routing)
    check_reference(package, layer, work, xs, h, segments, os.path.join(work, "api"))
    command = [atmoe_run, compiled, "--model", package, "--layer", str(layer),
               "--out-dir", os.path.join(work, "run")]
    command += sum((["--x", "%s=%s" % (n, os.path.join(work, "x_%s.npy" % n))]
                    for n in xs), [])
    if h is not None:
        command += ["--h", os.path.join(work, "h.npy")]
    if segments:
        command += ["--segments", ",".join(map(str, segments))]
    subprocess.run(command, check=True)
    names = list(ys) + (["routing"] if routing is not None else [])
    for name in names:
        ours = np.load(os.path.join(work, "api", name + ".npy"))
        theirs = np.load(os.path.join(work, "run", name + ".npy"))
        if not np.array_equal(ours, theirs):
            sys.exit("%s differs from atmoe-run's" % name)
    print("layer %d: %s equal to atmoe-run's" % (layer, ", ".join(names)))


def threads(compiled, package, layer):
    layer = int(layer)
    model = atmoe.load(compiled, package)
    cases = [inputs(model, layer, tokens, None, tokens) for tokens in (1, 3, 8, 17)]
    expected = [model.forward(layer, xs, h=h) for xs, h in cases]
    failures = []

    def work(worker):
        for call in range(20):
            case = (worker + call) % len(cases)
            ys, routing = model.forward(layer, cases[case][0], h=cases[case][1])
            want_ys, want_routing = expected[case]
            if any(not np.array_equal(ys[n], want_ys[n]) for n in ys) or \
                    not np.array_equal(routing, want_routing):
                failures.append((worker, call))

    workers = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    model.close()
    if failures:
        sys.exit("results differ from the single-threaded ones: %s" % failures[:5])
    print("8 threads x 20 calls: equal to the single-threaded results")


def rebind(compiled, package, other, changed):
    model = atmoe.load(compiled, package)
    xs, h = inputs(model, 0, 5, None, 7)
    before, _ = model.forward(0, xs, h=h)
    model.bind(other)
    after, routing = model.forward(0, xs, h=h)
    work = os.path.join(os.path.dirname(other), "rebind")
    save_all(os.path.join(work, "out"), after, routing)
    check_reference(other, 0, work, xs, h, None, os.path.join(work, "out"))
    if all(np.array_equal(before[n], after[n]) for n in before):
        sys.exit("binding other weights did not change the outputs")
    try:
        model.bind(changed)
        sys.exit("a package of another structure was bound")
    except atmoe.AtmoeError as error:
        print("refused (%s): %s" % (error.status, error))
    again, _ = model.forward(0, xs, h=h)
    if any(not np.array_equal(again[n], after[n]) for n in after):
        sys.exit("a refused bind changed the weights")
    print("rebound: other weights used, refused package left them bound")


def errors(compiled, package):
    def show(what, call):
        try:
            call()
            print("%s: no error" % what)
        except (atmoe.AtmoeError, ValueError, TypeError, KeyError, OSError) as error:
            print("%s: %s: %s" % (what, type(error).__name__, error))

    show("open", lambda: atmoe.load(os.path.join(package, "model.json")))
    model = atmoe.Model(compiled)
    x = np.zeros((2, model.projections(0)[0].d_in), np.float32)
    show("unbound", lambda: model.forward(0, x))
    model.bind(package)
    show("layer", lambda: model.forward(9, x))
    show("width", lambda: model.forward(0, x[:, :3]))
    show("dtype", lambda: model.forward(0, x.astype(np.int32)))
    show("rank", lambda: model.forward(0, x[0]))
    show("names", lambda: model.forward(0, {"nope": x}))
    show("missing", lambda: model.forward(0, {"q_proj": x}, h=x))
    show("h", lambda: model.forward(0, {p.name: x for p in model.projections(0)}))
    show("segments", lambda: model.forward(0, x, segments=[1, 5]))
    show("package", lambda: model.bind(os.path.join(package, "missing")))
    model.close()
    show("closed", lambda: model.forward(0, x))
    show("runtime", lambda: atmoe.Model(compiled, runtime="/nonexistent/libatmoe_runtime.so"))
    print("Fortran-ordered and float64 inputs are converted:",
          np.array_equal(atmoe.load(compiled, package).forward(0, np.asfortranarray(x))[0][
              model.projections(0)[0].name],
              atmoe.load(compiled, package).forward(0, x.astype(np.float64))[0][
              model.projections(0)[0].name]))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
