#!/usr/bin/env python3
"""Runs a command and prints its exit code, for tests of exit codes.

  exit_code.py COMMAND [ARGS...]

The command's stdout and stderr pass through; then one line `exit: N` (or
`exit: signal NAME`) goes to stdout. Always exits 0, so that a lit RUN line
can pipe everything into FileCheck.
"""

import signal
import subprocess
import sys

status = subprocess.run(sys.argv[1:]).returncode
sys.stdout.flush()
if status < 0:
    print("exit: signal %s" % signal.Signals(-status).name)
else:
    print("exit: %d" % status)
