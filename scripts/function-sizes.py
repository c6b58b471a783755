#!/usr/bin/env python3
# ===- scripts/function-sizes.py - the longest functions of the tree ------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Lists the C and C++ function bodies in lib/, runtime/ and tools/ longer
than a limit (default 100 lines, the project's rule, docs/Building.md), the
longest first, as `lines file:first-line name`; exits 1 if there is any.

A function body is a `{ ... }` block that opens after a `)` (optionally
followed by qualifiers, a trailing return type, a member-initialiser list)
at namespace or class scope; lambdas and nested blocks count towards the
function around them, as clang-tidy's readability-function-size does.
Comments, strings and character literals are skipped.
"""

import argparse
import os
import re
import sys

ROOTS = ("lib", "runtime", "tools")
SUFFIXES = (".cpp", ".h", ".c", ".cc")


def strip(text):
    """`text` with comments, strings and char literals blanked (newlines
    kept, so line numbers stay)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not text[i - 1].isalnum()):
            k = text.find("(", i)
            delim = ")" + text[i + 2:k] + '"'
            j = text.find(delim, k)
            j = n if j < 0 else j + len(delim)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


HEAD = re.compile(r"\)\s*(const|override|final|noexcept|volatile|&|&&|\s|"
                  r"->\s*[\w:<>,*&\s]+|:\s*[\w:]+\s*[({][^{}]*[)}]"
                  r"(\s*,\s*[\w:]+\s*[({][^{}]*[)}])*)*$")
NAME = re.compile(r"([~\w:]+(?:<[^<>]*>)?)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)"
                  r"[^()]*$")


def functions(path):
    text = strip(open(path, encoding="utf-8", errors="replace").read())
    depth_kinds = []  # for each open brace: True if it opened a function
    in_function = 0
    start = None
    for match in re.finditer(r"[{}]", text):
        pos = match.start()
        if match.group() == "{":
            before = text[max(0, pos - 400):pos]
            is_function = (in_function == 0 and
                           HEAD.search(before.rstrip() + " ") is not None and
                           not re.search(r"\b(if|for|while|switch|catch)\s*\($",
                                         before.rstrip()[:-1].rstrip() + "(")
                           and "=" not in before.rstrip()[-3:])
            depth_kinds.append(is_function)
            if is_function:
                in_function = 1
                start = pos
                name = NAME.search(before[:before.rfind(")") + 1])
                fname = name.group(1) if name else "?"
            elif in_function:
                in_function += 1
        else:
            kind = depth_kinds.pop() if depth_kinds else False
            if in_function:
                in_function -= 1
                if in_function == 0 and kind:
                    first = text.count("\n", 0, start) + 1
                    last = text.count("\n", 0, pos) + 1
                    yield last - first, first, fname


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--root", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), ".."))
    args = parser.parse_args()
    found = []
    for top in ROOTS:
        for directory, _, files in os.walk(os.path.join(args.root, top)):
            for name in files:
                if name.endswith(SUFFIXES):
                    path = os.path.join(directory, name)
                    rel = os.path.relpath(path, args.root)
                    for lines, first, fname in functions(path):
                        found.append((lines, rel, first, fname))
    found.sort(reverse=True)
    over = [f for f in found if f[0] > args.limit]
    for lines, rel, first, fname in over:
        print("%4d %s:%d %s" % (lines, rel, first, fname))
    print("%d functions, %d over %d lines; the longest has %d" %
          (len(found), len(over), args.limit, found[0][0] if found else 0))
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
