#!/usr/bin/env python3
"""Interrupts atmoe-compile at many points of a compilation and checks that
it never leaves a partial output or a temporary file.

  interrupt_compile.py ATMOE_COMPILE PACKAGE WORK_DIR [--runs N]

Compiles PACKAGE once undisturbed (the reference library) and times it. Then
starts the same compilation N times and interrupts each at a different point
of that time:

  - SIGINT to the whole process group, as Ctrl-C in a terminal does (the
    linker child dies too): afterwards the output directory holds nothing or
    a library identical to the reference, and TMPDIR holds nothing;
  - SIGTERM to atmoe-compile alone, as a process manager does: the same for
    the output directory (a linker that outlives it may only write to TMPDIR).

Prints one summary line; exits 1 if any check failed.
"""

import argparse
import os
import signal
import subprocess
import sys
import time


def wait_group(pgid, timeout=60):
    """Waits until no process of group `pgid` is left."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise SystemExit("interrupt_compile.py: process group %d did not end" % pgid)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("compiler")
    parser.add_argument("package")
    parser.add_argument("work")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    def start(out_dir, tmp_dir):
        os.makedirs(out_dir)
        os.makedirs(tmp_dir)
        env = dict(os.environ, TMPDIR=tmp_dir)
        return subprocess.Popen(
            [args.compiler, args.package, "-o", os.path.join(out_dir, "model.so")],
            env=env, stderr=subprocess.DEVNULL, start_new_session=True)

    began = time.time()
    reference = start(os.path.join(args.work, "ref"), os.path.join(args.work, "ref-tmp"))
    if reference.wait() != 0:
        raise SystemExit("interrupt_compile.py: the reference compilation failed")
    duration = time.time() - began
    with open(os.path.join(args.work, "ref", "model.so"), "rb") as f:
        expected = f.read()

    problems = []
    interrupted = completed = 0
    for run in range(args.runs):
        sig = signal.SIGINT if run % 2 == 0 else signal.SIGTERM
        out_dir = os.path.join(args.work, "run%d" % run)
        tmp_dir = os.path.join(args.work, "run%d-tmp" % run)
        process = start(out_dir, tmp_dir)
        time.sleep(duration * (run + 0.5) / args.runs)
        if sig == signal.SIGINT:
            os.killpg(process.pid, sig)
        else:
            os.kill(process.pid, sig)
        status = process.wait()
        wait_group(process.pid)
        if status == 0:
            completed += 1
        else:
            interrupted += 1
        left = sorted(os.listdir(out_dir))
        if left not in ([], ["model.so"]):
            problems.append("run %d (%s): left %s beside the output" % (run, sig.name, left))
        if left == ["model.so"]:
            with open(os.path.join(out_dir, "model.so"), "rb") as f:
                if f.read() != expected:
                    problems.append("run %d (%s): a partial or different library" % (run, sig.name))
        if sig == signal.SIGINT and os.listdir(tmp_dir):
            problems.append("run %d (%s): left %s in TMPDIR" % (run, sig.name, sorted(os.listdir(tmp_dir))))

    for problem in problems:
        print("interrupt_compile.py: " + problem)
    print("interrupt_compile.py: %d runs, %d interrupted, %d completed, %d problems"
          % (args.runs, interrupted, completed, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
