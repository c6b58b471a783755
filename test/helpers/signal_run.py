#!/usr/bin/env python3
"""Runs a command repeatedly, sending it a signal after a delay, and reports
how each run ended; for tests that tools end promptly on signals.

  signal_run.py --signal QUIT --delay 0.3 [--times N] [--closed-stdout] -- COMMAND...

Prints one line, `ended: NAME xN` per way the runs ended (a signal such as SIGINT, or
an exit code), or `hung: N` for runs still alive 10 s after the signal
(they are then killed). With --closed-stdout the command's stdout is a pipe
whose reading end is already closed and no signal is sent.
"""

import argparse
import collections
import os
import signal
import subprocess
import sys
import time


def run_once(args):
    if args.closed_stdout:
        read_end, write_end = os.pipe()
        os.close(read_end)
        status = subprocess.run(args.command, stdout=write_end).returncode
        os.close(write_end)
        return status
    process = subprocess.Popen(args.command, stdout=subprocess.DEVNULL)
    time.sleep(args.delay)
    process.send_signal(signal.Signals["SIG" + args.signal])
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def describe(status):
    if status is None:
        return "hung"
    if status < 0:
        return signal.Signals(-status).name
    return "exit %d" % status


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--signal", default="INT")
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--closed-stdout", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    # lit's workers ignore SIGINT, and ignored signals are inherited: give the
    # command the dispositions an interactive shell would.
    for name in ("SIGINT", "SIGQUIT", "SIGTERM"):
        signal.signal(signal.Signals[name], signal.SIG_DFL)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    endings = collections.Counter(describe(run_once(args)) for _ in range(args.times))
    for ending, count in sorted(endings.items()):
        print("ended: %s x%d" % (ending, count))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
