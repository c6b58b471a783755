#!/usr/bin/env python3
# ===- fake_package.py - package, inputs and reference of fake_model.c -----===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""The model package, test inputs and float64 reference of fake_model.c.

    fake_package.py make-package DIR [--corrupt KIND]
    fake_package.py make-inputs DIR
    fake_package.py check --model DIR --layer L --x [PROJ=]FILE ... [--h FILE]
                          [--segments T1,T2,...] --out-dir DIR

make-package writes weights.safetensors (F32, aligned: used in place) and
extra.safetensors (layer 3: F16 and BF16 tensors and an F32 tensor at an
address that is not 4-byte aligned: all converted at bind time). --corrupt
damages it: missing-tensor, wrong-shape, wrong-dtype (in weights.safetensors,
tensor layers.0.v_proj.weight) or missing-file (no extra.safetensors).

check recomputes the layer in float64 from the package and compares every
output file of atmoe-run with it, and fails if DIR holds any other file.

Only the Python standard library and numpy are used.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

# Layer structure, as in fake_model.c: projections (name, d_in, d_out, bias),
# experts, LoRA rank and scale, router width and granularity.
LAYERS = {
    0: {
        "projections": [("q_proj", 4, 3, True, True), ("v_proj", 4, 2, False, False)],
        "experts": ["a", "b"],
        "rank": 2,
        "scale": 2.0,
        "d_h": 4,
        "router_bias": True,
        "granularity": "token",
        "file": "weights.safetensors",
    },
    3: {
        "projections": [("o_proj", 3, 4, False, True)],
        "experts": ["x", "y", "z"],
        "rank": 1,
        "scale": 0.5,
        "d_h": 5,
        "router_bias": False,
        "granularity": "sequence",
        "file": "extra.safetensors",
    },
    5: {
        "projections": [("down_proj", 4, 2, True, False)],
        "experts": [],
        "file": "weights.safetensors",
    },
}

# Layer 3's base weight is stored under another name than its canonical one
# (the manifest maps "tensor" to "source").
SOURCE_NAMES = {"layers.3.o_proj.weight": "base.layers.3.o_proj"}


def layer_tensors(index, rng):
    """{canonical name: float32 array} of one layer, in manifest order."""
    layer = LAYERS[index]
    tensors = {}
    for name, d_in, d_out, bias, lora in layer["projections"]:
        prefix = "layers.%d.%s" % (index, name)
        tensors[prefix + ".weight"] = rng.standard_normal((d_out, d_in))
        if bias:
            tensors[prefix + ".bias"] = rng.standard_normal(d_out)
        if lora:
            for expert in layer["experts"]:
                tensors["%s.lora_A.%s.weight" % (prefix, expert)] = rng.standard_normal(
                    (layer["rank"], d_in)
                )
                tensors["%s.lora_B.%s.weight" % (prefix, expert)] = rng.standard_normal(
                    (d_out, layer["rank"])
                )
    if layer["experts"]:
        router = "layers.%d.router.expert" % index
        tensors[router + ".weight"] = rng.standard_normal(
            (len(layer["experts"]), layer["d_h"])
        )
        if layer["router_bias"]:
            tensors[router + ".bias"] = rng.standard_normal(len(layer["experts"]))
    return {k: v.astype(np.float32) for k, v in tensors.items()}


# ===-----------------------------------------------------------------------===#
# safetensors
# ===-----------------------------------------------------------------------===#


def encode(array, dtype):
    array = np.ascontiguousarray(array, dtype=np.float32)
    if dtype == "F32":
        return array.astype("<f4").tobytes()
    if dtype == "F16":
        return array.astype("<f2").tobytes()
    if dtype == "BF16":
        # Round to nearest even on the upper half of the f32 bits.
        bits = array.view(np.uint32).astype(np.uint64)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()
    if dtype == "I32":
        return array.astype("<i4").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, entries, data_misalignment=0):
    """entries: list of (name, array, dtype). The header is padded so that
    the data section starts at an address = data_misalignment (mod 8)."""
    header, chunks, offset = {}, [], 0
    for name, array, dtype in entries:
        raw = encode(array, dtype)
        header[name] = {
            "dtype": dtype,
            "shape": list(np.shape(array)),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((data_misalignment - 8 - len(text)) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        out.write(b"".join(chunks))


def read_safetensors(path):
    """{name: float64 array} of a safetensors file (F32, F16, BF16)."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    base = 8 + length
    result = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        if info["dtype"] == "F32":
            array = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            array = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":
            halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
            array = (halves << 16).view(np.float32)
        else:
            raise ValueError("%s: %s: dtype %s" % (path, name, info["dtype"]))
        result[name] = array.astype(np.float64).reshape(info["shape"])
    return result


def make_package(directory, corrupt):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(1234)
    main = []
    for index in (0, 5):
        for name, array in layer_tensors(index, rng).items():
            main.append([name, array, "F32"])
    damaged = "layers.0.v_proj.weight"
    if corrupt == "missing-tensor":
        main = [e for e in main if e[0] != damaged]
    for entry in main:
        if entry[0] == damaged and corrupt == "wrong-shape":
            entry[1] = np.zeros((3, 4), np.float32)
        if entry[0] == damaged and corrupt == "wrong-dtype":
            entry[2] = "I32"
    write_safetensors(os.path.join(directory, "weights.safetensors"), main)

    if corrupt == "missing-file":
        return
    extra = []
    for name, array in layer_tensors(3, rng).items():
        if name.startswith("layers.3.router"):
            dtype = "F32"
        elif name in SOURCE_NAMES:
            dtype = "F16"
        else:
            dtype = "BF16"
        extra.append((SOURCE_NAMES.get(name, name), array, dtype))
    # The F32 router weight first, at data offset 0 of a data section that
    # starts 2 bytes past an 8-byte boundary: readable only by conversion.
    extra.sort(key=lambda e: e[2] != "F32")
    write_safetensors(
        os.path.join(directory, "extra.safetensors"), extra, data_misalignment=2
    )


# ===-----------------------------------------------------------------------===#
# Inputs
# ===-----------------------------------------------------------------------===#


def make_inputs(directory):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(99)

    def save(name, array, dtype="<f4"):
        np.save(os.path.join(directory, name), np.asarray(array).astype(dtype))

    save("x.npy", rng.standard_normal((5, 4)))
    save("xv.npy", rng.standard_normal((5, 4)))
    save("h0.npy", rng.standard_normal((5, 4)))
    save("x64.npy", rng.standard_normal((5, 4)), "<f8")
    save("x3.npy", rng.standard_normal((6, 3)))
    save("h3.npy", rng.standard_normal((2, 5)))
    save("h3one.npy", rng.standard_normal((1, 5)))
    save("h3three.npy", rng.standard_normal((3, 5)))
    save("h5.npy", rng.standard_normal((5, 5)))
    save("h6.npy", rng.standard_normal((5, 6)))
    # Bad inputs.
    save("xint.npy", rng.integers(0, 9, (5, 4)), "<i8")
    save("xcols.npy", rng.standard_normal((5, 5)))
    save("xrows.npy", rng.standard_normal((4, 4)))
    save("x1d.npy", rng.standard_normal(4))
    save("xempty.npy", np.zeros((0, 4)))
    with open(os.path.join(directory, "notnpy.npy"), "w") as f:
        f.write("not a numpy file\n")


# ===-----------------------------------------------------------------------===#
# Reference and check
# ===-----------------------------------------------------------------------===#


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def reference(package, index, inputs, h, segments):
    """{output name: float64 array} of layer `index`."""
    layer = LAYERS[index]
    weights = {}
    for file in ("weights.safetensors", "extra.safetensors"):
        path = os.path.join(package, file)
        if os.path.exists(path):
            weights.update(read_safetensors(path))
    for canonical, source in SOURCE_NAMES.items():
        if source in weights:
            weights[canonical] = weights[source]

    outputs = {}
    num_tokens = next(iter(inputs.values())).shape[0]
    routing_per_token = None
    if layer["experts"]:
        router = "layers.%d.router.expert" % index
        logits = h @ weights[router + ".weight"].T
        if layer["router_bias"]:
            logits = logits + weights[router + ".bias"]
        routing = softmax(logits)
        outputs["routing"] = routing
        if layer["granularity"] == "sequence":
            lengths = segments or [num_tokens]
            routing_per_token = np.repeat(routing, lengths, axis=0)
        else:
            routing_per_token = routing

    for name, _, _, bias, lora in layer["projections"]:
        prefix = "layers.%d.%s" % (index, name)
        x = inputs[name]
        y = x @ weights[prefix + ".weight"].T
        if bias:
            y = y + weights[prefix + ".bias"]
        if lora:
            for e, expert in enumerate(layer["experts"]):
                a = weights["%s.lora_A.%s.weight" % (prefix, expert)]
                b = weights["%s.lora_B.%s.weight" % (prefix, expert)]
                w = layer["scale"] * routing_per_token[:, e : e + 1]
                y = y + w * ((x @ a.T) @ b.T)
        outputs[name] = y
    return outputs


def check(args):
    layer = LAYERS[args.layer]
    bare, named = None, {}
    for value in args.x:
        name, sep, file = value.partition("=")
        if sep and "/" not in name:
            named[name] = file
        else:
            bare = value
    load = lambda path: np.load(path).astype(np.float64)
    inputs = {
        name: load(named.get(name, bare)) for name, *_ in layer["projections"]
    }
    h = None
    if layer["experts"]:
        h = load(args.h or bare)
    segments = [int(s) for s in args.segments.split(",")] if args.segments else None

    expected = reference(args.model, args.layer, inputs, h, segments)
    failures = []
    files = sorted(os.listdir(args.out_dir))
    wanted = sorted(name + ".npy" for name in expected)
    if files != wanted:
        failures.append("files %s, expected %s" % (files, wanted))
    report = []
    for name, ref in expected.items():
        path = os.path.join(args.out_dir, name + ".npy")
        if not os.path.exists(path):
            continue
        got = np.load(path)
        if got.dtype != np.dtype("<f4") or got.shape != ref.shape:
            failures.append(
                "%s: %s %s, expected float32 %s"
                % (path, got.dtype, got.shape, ref.shape)
            )
            continue
        error = np.abs(got.astype(np.float64) - ref).max()
        bound = 1e-5 * (1 + np.abs(ref).max())
        if not error <= bound:
            failures.append("%s: max abs error %g > %g" % (path, error, bound))
            continue
        report.append("%s %dx%d ok" % (name, ref.shape[0], ref.shape[1]))
    if failures:
        for failure in failures:
            print("check: FAIL: " + failure)
        return 1
    print("check: layer %d: %s" % (args.layer, ", ".join(report)))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    package = sub.add_parser("make-package")
    package.add_argument("dir")
    package.add_argument(
        "--corrupt",
        choices=["missing-tensor", "wrong-shape", "wrong-dtype", "missing-file"],
    )
    inputs = sub.add_parser("make-inputs")
    inputs.add_argument("dir")
    checker = sub.add_parser("check")
    checker.add_argument("--model", required=True)
    checker.add_argument("--layer", type=int, required=True)
    checker.add_argument("--x", action="append", required=True)
    checker.add_argument("--h")
    checker.add_argument("--segments")
    checker.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    if args.command == "make-package":
        make_package(args.dir, args.corrupt)
        return 0
    if args.command == "make-inputs":
        make_inputs(args.dir)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
