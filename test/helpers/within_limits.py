#!/usr/bin/env python3
# ===- within_limits.py - a command's peak memory and output size ----------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Runs a command and checks what it used against bounds (issue 14, item 13:
compile time and memory linear in the layer's width).

  within_limits.py [--max-rss-mib N] [--output FILE --max-output-mib N]
                   [--max-seconds S] -- CMD...

Prints "within limits" and exits 0, or names each bound exceeded with the
measured figure and exits 1; a failing command exits with its status.
"""

import argparse
import os
import resource
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-rss-mib", type=float)
    parser.add_argument("--output")
    parser.add_argument("--max-output-mib", type=float)
    parser.add_argument("--max-seconds", type=float)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    start = time.monotonic()
    try:
        status = subprocess.run(args.command, timeout=args.max_seconds).returncode
    except subprocess.TimeoutExpired:
        sys.exit("over %g s: %s" % (args.max_seconds, " ".join(args.command)))
    seconds = time.monotonic() - start
    if status != 0:
        sys.exit(status)
    problems = []
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if args.max_rss_mib is not None and rss > args.max_rss_mib:
        problems.append("peak RSS %.0f MiB > %g MiB" % (rss, args.max_rss_mib))
    if args.output and args.max_output_mib is not None:
        size = os.path.getsize(args.output) / 2.0**20
        if size > args.max_output_mib:
            problems.append("%s is %.1f MiB > %g MiB" % (args.output, size,
                                                        args.max_output_mib))
    if problems:
        sys.exit("; ".join(problems) + " (%.1f s)" % seconds)
    print("within limits")


if __name__ == "__main__":
    main()
