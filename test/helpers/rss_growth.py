#!/usr/bin/env python3
# ===- rss_growth.py - does memory grow with the number of calls? ---------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Runs a command twice, with few and with many calls, and checks that the
peak resident memory of its processes (the largest of them: the ranks of an
MPI job) does not grow with the calls (issue 17: 10,000 calls in one job
with no growth in communicators or memory).

  rss_growth.py --few 10 --many 10000 [--max-growth-kib 512] -- CMD...

Every `{calls}` in CMD is replaced by the number of calls. Prints both
peaks and "no growth", or the growth and exits 1; a failing command exits
with its status.
"""

import argparse
import subprocess
import sys

# Run in a child of its own, so that RUSAGE_CHILDREN covers one command's
# processes (and their descendants, once reaped) and nothing else.
MEASURE = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(status)
"""


def peak_kib(command, calls):
    argv = [part.replace("{calls}", str(calls)) for part in command]
    result = subprocess.run([sys.executable, "-c", MEASURE] + argv,
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(result.returncode)
    return int(result.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--few", type=int, default=10)
    parser.add_argument("--many", type=int, default=10000)
    parser.add_argument("--max-growth-kib", type=int, default=512)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    if not any("{calls}" in part for part in args.command):
        parser.error("CMD must contain {calls}")
    few = peak_kib(args.command, args.few)
    many = peak_kib(args.command, args.many)
    print("peak RSS: %d KiB after %d calls, %d KiB after %d" % (few, args.few, many,
                                                                args.many))
    if many - few > args.max_growth_kib:
        print("grew by %d KiB (more than %d KiB)" % (many - few, args.max_growth_kib))
        sys.exit(1)
    print("no growth")


if __name__ == "__main__":
    main()
