#!/usr/bin/env python3
# ===- fuzz/make_seeds.py - regenerate the fuzzers' seed corpora ------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
#
# Writes test/fuzz/{safetensors,npy,importer,dialect,pyregex,outputs}/ from the test suite's
# own valid and invalid inputs, one file per seed named by its SHA-1 (as
# libFuzzer names corpus files):
#
#   importer     every package the lit tests generate with model_package.py
#                (test/**/*.test RUN lines), its model.json with the weight
#                and PEFT paths rewritten into the fuzzer's package root (see
#                fuzz/ImporterFuzzer.cpp); edited adapter_config.json files
#                go after the "#adapter" line;
#   safetensors  the small .safetensors files of those packages (including
#                the damaged ones) and a few hand-made files for what the
#                packages lack (metadata, integer dtypes, scalars, F64);
#   npy          numpy's own writer in every version and spelling atmoe
#                reads, and the misspellings it must reject;
#   dialect      every `// -----` chunk of the .mlir tests and examples, with
#                comment lines dropped;
#   pyregex      the patterns of unittests/Support/PythonRegexTest.cpp and
#                of the PEFT presets, each with a few module names;
#   outputs      the -o and atmoe-run output cases of
#                test/atmoe-compile/outputs.test, test/atmoe-run/outputs.test
#                and test/Importer/errors-names.test, in the layout
#                fuzz/OutputsFuzzer.cpp describes.
#
# Minimized inputs of past findings (crash-*, ...) beside the seeds are kept.
#
# Usage: /usr/bin/python3 fuzz/make_seeds.py   (needs numpy; run from anywhere)
#
# ===-----------------------------------------------------------------------===#

import glob
import hashlib
import io
import json
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fuzz")
GEN = os.path.join(ROOT, "test", "helpers", "model_package.py")
# Larger inputs slow every fuzzing iteration down for little new coverage.
MAX_SEED = 8192
ADAPTER_MARKER = b"\n#adapter\n"
TARGETS = ("safetensors", "npy", "importer", "dialect", "pyregex", "outputs")


def save(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def generator_runs():
    """(test file, argument list) for every model_package.py run of a test."""
    for test in sorted(glob.glob(os.path.join(ROOT, "test", "**", "*.test"), recursive=True)):
        text = open(test).read()
        for line in text.splitlines():
            m = re.match(r"\s*#?\s*RUN:\s*(.*)", line)
            if not m:
                continue
            cmd = m.group(1)
            cmd = cmd.replace("%{gen}", "GEN").replace(
                "%python %atmoe_src_root/test/helpers/model_package.py", "GEN")
            if not cmd.startswith("GEN "):
                continue
            cmd = cmd.split("&&")[0].split("|")[0].split(">")[0]
            try:
                args = shlex.split(cmd)[1:]
            except ValueError:
                continue
            args = [a.replace("%S", os.path.dirname(test)) for a in args]
            yield test, args


def rewrite_paths(text, preset, adapter_file):
    """Points model.json's relative paths into <root>/<preset>/."""
    try:
        model = json.loads(text)
    except (ValueError, RecursionError):
        return text.encode()  # Broken JSON is a seed as it is.
    if not isinstance(model, dict):
        return text.encode()
    if isinstance(model.get("weights"), list):
        model["weights"] = [preset + "/" + w if isinstance(w, str) else w
                            for w in model["weights"]]
    experts = model.get("experts")
    if isinstance(experts, dict):
        for entry in experts.values():
            if isinstance(entry, dict) and isinstance(entry.get("peft"), str):
                if adapter_file and adapter_file.startswith(entry["peft"].rstrip("/") + "/"):
                    entry["peft"] = "fuzz_adapter"
                else:
                    entry["peft"] = preset + "/" + entry["peft"]
    return json.dumps(model, separators=(",", ":")).encode()


def importer_and_safetensors_seeds(tmp):
    seen = set()
    for n, (test, args) in enumerate(generator_runs()):
        key = tuple(a for a in args if not a.startswith("%t"))
        if key in seen:
            continue
        seen.add(key)
        out = os.path.join(tmp, "pkg%d" % n)
        # The package directory is the one %t argument, wherever it stands.
        args = [out if a.startswith("%t") else a for a in args]
        if "--desc" in args:
            preset = None
        else:
            preset = args[args.index("--preset") + 1] if "--preset" in args else "demo"
        if subprocess.run([sys.executable, GEN] + args, capture_output=True).returncode:
            continue
        for st in glob.glob(os.path.join(out, "**", "*.safetensors"), recursive=True):
            if os.path.isfile(st):
                save("safetensors", open(st, "rb").read())
        model_path = os.path.join(out, "model.json")
        if preset is None or not os.path.isfile(model_path):
            continue
        # An edited adapter_config.json (--set FILE:PATH=...) travels with
        # the seed; unedited ones are in the fuzzer's package root already.
        adapter_file = None
        for a in args:
            m = re.match(r"(\S*adapter_config\.json):", a)
            if m:
                adapter_file = m.group(1)
        seed = rewrite_paths(open(model_path).read(), preset, adapter_file)
        if adapter_file and os.path.isfile(os.path.join(out, adapter_file)):
            seed += ADAPTER_MARKER + open(os.path.join(out, adapter_file), "rb").read()
        save("importer", seed)


def safetensors_file(tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


def handmade_safetensors():
    f32 = np.arange(6, dtype="<f4").tobytes()
    save("safetensors", safetensors_file([("w", "F32", [2, 3], f32)], {"format": "pt"}))
    save("safetensors", safetensors_file([
        ("h", "F16", [4], np.array([1, -2, 65504, np.inf], "<f2").tobytes()),
        ("b", "BF16", [2], b"\x80\x3f\x00\xc0"),
        ("d", "F64", [2], np.array([1e300, -0.5], "<f8").tobytes()),
        ("i", "I64", [1], struct.pack("<q", -1)),
        ("u", "U8", [3], b"abc"),
        ("k", "BOOL", [1], b"\x01"),
        ("s", "F32", [], struct.pack("<f", 2.5)),
        ("e", "F32", [0, 4], b""),
    ]))
    save("safetensors", safetensors_file([("a", "I32", [1], b"\0\0\0\0"),
                                          ("b", "I16", [2], b"\0\0\0\0"),
                                          ("c", "I8", [1], b"\0")]))
    save("safetensors", struct.pack("<Q", 2) + b"{}")
    save("safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    save("safetensors", struct.pack("<Q", 100) + b"{}")
    save("safetensors", b"\x02\x00\x00")
    save("safetensors", safetensors_file([("w", "F32", [1 << 62, 1 << 62], b"")]))
    save("safetensors", safetensors_file([("w", "F32", [2], f32[:8]), ("v", "F32", [1], f32[:4])])
         .replace(b"[8,12]", b"[4,8]"))


def npy_seeds():
    arrays = [np.arange(6, dtype="<f4").reshape(2, 3), np.float32(3.5),
              np.zeros((0, 4), "<f4"), np.arange(3, dtype="<f8"),
              np.ones((2, 1, 2), "<f4")]
    for a in arrays:
        for version in [(1, 0), (2, 0), (3, 0)]:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a), version=version)
            save("npy", buf.getvalue())
    for a in [np.asfortranarray(np.ones((2, 3), "<f4")), np.ones(2, ">f4"),
              np.ones(2, "<i4"), np.ones(2, "<f2")]:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, version=(1, 0))
        save("npy", buf.getvalue())
    good = io.BytesIO()
    np.save(good, np.arange(4, dtype="<f4").reshape(2, 2))
    good = good.getvalue()
    save("npy", good[:-3])                       # truncated data
    save("npy", good + b"\0\0\0\0")              # trailing data
    save("npy", b"\x93NUMPY\x01\x00\xff\xff{")   # header past the end
    save("npy", b"\x93NUMPY\x04\x00")            # unknown version
    save("npy", b"\x93NUMPY\x01\x00\x1a\x00{'descr': '<f4', 'shape': (3L,), 'fortran_order': False}\n"
         + b"\0" * 12)
    save("npy", b"\x93NUMPY\x01\x00\x3c\x00{'descr': '<f4', 'fortran_order': False, "
         + b"'shape': (99999999999999999999,), }\n")


def pyregex_seeds():
    """Every pattern of the Python-regex unit test and of the PEFT test
    presets, each before a NUL and a few module names."""
    names = "\n".join([
        "model.layers.0.self_attn.q_proj", "model.layers.12.self_attn.k_proj",
        "model.layers.3.mlp.down_proj", "decoder.block.0.layer.0.SelfAttention.q",
        "lm_head", "", "a{x}", "]a", "q_q", "\u00e9.q_proj"]).encode()
    test = open(os.path.join(ROOT, "unittests", "Support", "PythonRegexTest.cpp")).read()
    patterns = re.findall(r'R"\((.*?)\)"', test)
    patterns += [r"model\.layers\.\d+\.self_attn\.[qv]_\w+", r"(.*\.)?(layers\.2\..*?)$",
                 r"(.*\.)?((?:k|v)_proj)$", r".*\.layers\.(\d+)\.", r"(^|.*\.)v_proj($|\..*)"]
    for pattern in patterns:
        save("pyregex", pattern.encode() + b"\0" + names)


def outputs_seeds():
    """What exists at the output (each OutputsFuzzer Setup), a writer that
    fails or not, one -o path or staged projection names (committed or not):
    the names of the output and name tests."""
    paths = [b"out.mlir", b"model.so", b"d/x", b"", b".", b"./model.so", b"a//b",
             b"dir/", b"-", b"real", b"loop"]
    names = [b"q_proj\nv_proj\nrouting", b"../x\n./q\nq/../v\n..\n.\nq",
             b"q\x00v\nq\nv", b"a b\n" + b"x" * 129 + b"\nq-1.b_2",
             b"q_proj\nq_proj\nk_proj"]
    for setup in range(7):
        for path in paths:
            for fails in (0, 1):
                save("outputs", bytes([setup, fails]) + path)
        for listed in names:
            for flags in (2, 3, 6, 7):
                save("outputs", bytes([setup, flags]) + listed)


def dialect_seeds():
    files = sorted(glob.glob(os.path.join(ROOT, "test", "**", "*.mlir"), recursive=True))
    files += sorted(glob.glob(os.path.join(ROOT, "examples", "**", "*.mlir"), recursive=True))
    for path in files:
        for chunk in open(path).read().split("// -----"):
            lines = [l for l in chunk.splitlines() if not l.lstrip().startswith("//")]
            text = "\n".join(l for l in lines if l.strip()) + "\n"
            if text.strip():
                save("dialect", text)


def main():
    # Past findings (crash-*, leak-*, timeout-*, oom-*) stay: they are
    # regression inputs, not seeds.
    for target in TARGETS:
        d = os.path.join(OUT, target)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if not re.match(r"(crash|leak|timeout|oom)-", name):
                os.remove(os.path.join(d, name))
    with tempfile.TemporaryDirectory() as tmp:
        importer_and_safetensors_seeds(tmp)
    handmade_safetensors()
    npy_seeds()
    dialect_seeds()
    pyregex_seeds()
    outputs_seeds()
    for target in TARGETS:
        d = os.path.join(OUT, target)
        files = os.listdir(d)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        print("%s: %d seeds, %d bytes" % (target, len(files), size))


if __name__ == "__main__":
    main()
