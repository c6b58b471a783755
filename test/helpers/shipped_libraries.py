#!/usr/bin/env python3
# ===- shipped_libraries.py - what a deployed binary needs at run time -----===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Checks the shared libraries each binary loads (ldd) against what a
deployment may ship (docs/Deployment.md): the C and C++ runtime libraries,
OpenMP for compiled CPU models, the atmoe runtime itself (glibc's libresolv:
the sanitizer runtime of instrumented builds needs it). Prints one line per
binary, "<name>: ok" or "<name>: unexpected <library> (<path>)" for each
library outside that set, and exits 1 if there was any.
"""

import os
import re
import subprocess
import sys

ALLOWED = re.compile(
    r"^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|"
    r"libstdc\+\+|libgcc_s|libomp|libatmoe_runtime)\.so")


def needed(binary):
    """The library names and paths ldd reports for `binary`."""
    output = subprocess.run(["ldd", binary], capture_output=True, text=True,
                            check=True).stdout
    for line in output.splitlines():
        parts = line.strip().split()
        if parts:
            yield os.path.basename(parts[0]), parts[2] if len(parts) > 3 else ""


def main():
    failed = False
    for binary in sys.argv[1:]:
        bad = [(name, path) for name, path in needed(binary)
               if not ALLOWED.match(name)]
        for name, path in bad:
            print("%s: unexpected %s (%s)" % (os.path.basename(binary), name,
                                             path))
        if not bad:
            print("%s: ok" % os.path.basename(binary))
        failed = failed or bool(bad)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
