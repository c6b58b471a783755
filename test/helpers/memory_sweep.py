#!/usr/bin/env python3
# ===- memory_sweep.py - a command under shrinking memory limits ----------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Runs a command under many address-space limits (RLIMIT_AS, `ulimit -v`)
around the least it needs, so that each of its allocations fails in one run
or another (issue 14, item 10: running out of memory must be an error
message, never an abort).

  memory_sweep.py [--points N] -- CMD...

Finds the least limit (to 1 MiB) under which CMD succeeds, then runs it
under N limits from 60% of that up to it. Each run must succeed, or fail
with exit status 1 or 3 and only error lines naming the tool (or be
refused by the dynamic loader before the tool runs, status 127, or be
aborted by LLVM's OpenMP runtime with only its own "OMP:" messages, which
atmoe cannot prevent). Prints a summary, or
the first run that did otherwise and exits 1.
"""

import argparse
import os
import re
import resource
import signal
import subprocess
import sys

MIB = 1 << 20


def run(command, limit):
    def restrict():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return subprocess.run(command, preexec_fn=restrict, capture_output=True,
                          text=True, errors="replace")


def least_limit(command):
    low, high = 1, 64 * 1024  # MiB
    if run(command, high * MIB).returncode != 0:
        sys.exit("fails even with %d MiB: %s" % (high, " ".join(command)))
    while high - low > 1:
        middle = (low + high) // 2
        if run(command, middle * MIB).returncode == 0:
            high = middle
        else:
            low = middle
    return high * MIB


def clean(result, tool):
    if result.returncode == 0:
        return True
    # LLVM's OpenMP runtime aborts when it cannot allocate (its heap, a
    # worker's stack): outside atmoe's code, documented in docs/Runtime.md.
    if result.returncode == -signal.SIGABRT:
        return re.fullmatch(r"(OMP: [^\n]*\n)+", result.stderr) is not None
    if result.returncode == 127:  # the dynamic loader, before main
        return tool + ":" not in result.stderr
    lines = result.stderr.strip().splitlines()
    return (result.returncode in (1, 3) and len(lines) >= 1
            and all(line.startswith(tool + ":") for line in lines)
            and "terminate called" not in result.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=24)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    tool = os.path.basename(args.command[0])
    least = least_limit(args.command)
    failed = 0
    for point in range(args.points):
        limit = int(least * (0.6 + 0.4 * point / max(1, args.points - 1)))
        result = run(args.command, limit)
        if not clean(result, tool):
            sys.exit("under %d KiB: exit %d\n%s" % (limit // 1024, result.returncode,
                                                    result.stderr))
        failed += result.returncode != 0
    print("%d limits up to %d MiB: %d succeeded, %d failed with a message"
          % (args.points, least // MIB, args.points - failed, failed))


if __name__ == "__main__":
    main()
