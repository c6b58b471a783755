#!/usr/bin/env python3
# ===- torch_bench.py - PyTorch eager baselines of the SPEC 6 layer -------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""PyTorch eager baselines of the SPEC §6 LoRA-MoE layer (run by run_bench.py).

  torch_bench.py --package DIR --d D --tokens T --x X.bin [--h H.bin]
                 [--segments T1,T2] --layers 0,1,.. --threads N [--dump DIR]

On the weights of the LoRA-MoE layers LAYERS of bench/workload.py's package,
times two float32 implementations round-robin over the copies (like
LayerBench.cpp), each call timed on its own:

  torch_naive   the per-expert loop PEFT-style code runs: router, base
                F.linear, then per expert y += w_e * scale * B_e(A_e(x));
  torch_concat  the concatenated-LoRA layer: adapters and router weights
                stacked once, y = x W^T, z = x A_cat^T, z scaled per token and
                expert, y += z B_cat^T (addmm).

Threads: torch.set_num_threads(N); the caller also sets OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and OMP_WAIT_POLICY=PASSIVE before Python starts.
Prints "NAME median_us=... min_us=... calls=N" per implementation, and with
--dump writes DIR/NAME.bin (y of the first layer) for the cross-check.
"""

import argparse
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

GROUPS, RANK, SCALE = 4, 16, 32.0 / 16.0


def read_tensors(path, names):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length)
    result = {}
    for name in names:
        info = header[name]
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        result[name] = torch.from_numpy(array.copy())
    return result


def load_layer(path, index, experts):
    p = "layers.%d." % index
    names = [p + "proj.weight", p + "router.group.weight", p + "router.group.bias",
             p + "router.expert.weight", p + "router.expert.bias"]
    for e in range(experts):
        names += [p + "proj.lora_A.e%d.weight" % e, p + "proj.lora_B.e%d.weight" % e]
    t = read_tensors(path, names)
    layer = {
        "W": t[p + "proj.weight"],
        "Wg": t[p + "router.group.weight"], "bg": t[p + "router.group.bias"],
        "We": t[p + "router.expert.weight"], "be": t[p + "router.expert.bias"],
        "A": [t[p + "proj.lora_A.e%d.weight" % e] for e in range(experts)],
        "B": [t[p + "proj.lora_B.e%d.weight" % e] for e in range(experts)],
    }
    # Stacked once, at load time, for the concatenated version.
    layer["R"] = torch.cat([layer["Wg"], layer["We"]]).contiguous()
    layer["b"] = torch.cat([layer["bg"], layer["be"]]).contiguous()
    layer["Acat"] = torch.cat(layer["A"]).contiguous()
    layer["Bcat"] = torch.cat(layer["B"], dim=1).contiguous()
    return layer


def grouped_softmax(u, v):
    p = torch.softmax(u, dim=-1)
    q = torch.softmax(v.view(v.shape[0], GROUPS, -1), dim=-1)
    return (p.unsqueeze(-1) * q).reshape(v.shape[0], -1)


def per_token(w, lengths):
    return w if lengths is None else torch.repeat_interleave(w, lengths, dim=0)


def naive(layer, x, h, lengths):
    w = per_token(grouped_softmax(F.linear(h, layer["Wg"], layer["bg"]),
                                  F.linear(h, layer["We"], layer["be"])), lengths)
    y = F.linear(x, layer["W"])
    for e, (a, b) in enumerate(zip(layer["A"], layer["B"])):
        y += (w[:, e:e + 1] * SCALE) * F.linear(F.linear(x, a), b)
    return y


def concat(layer, x, h, lengths):
    groups = layer["Wg"].shape[0]
    logits = F.linear(h, layer["R"], layer["b"])
    w = per_token(grouped_softmax(logits[:, :groups], logits[:, groups:]), lengths)
    y = F.linear(x, layer["W"])
    z = F.linear(x, layer["Acat"])
    z *= torch.repeat_interleave(w * SCALE, RANK, dim=1)
    return y.addmm_(z, layer["Bcat"].t())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--x", required=True)
    parser.add_argument("--h")
    parser.add_argument("--segments")
    parser.add_argument("--layers", required=True)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--min-rounds", type=int, default=3)
    parser.add_argument("--max-rounds", type=int, default=50)
    parser.add_argument("--dump")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    path = os.path.join(args.package, "weights.safetensors")
    layers = [load_layer(path, int(i), args.experts) for i in args.layers.split(",")]
    x = torch.from_numpy(np.fromfile(args.x, dtype=np.float32).reshape(args.tokens, args.d))
    lengths = None
    h = x
    if args.segments:
        lengths = torch.tensor([int(s) for s in args.segments.split(",")])
        h = torch.from_numpy(np.fromfile(args.h, dtype=np.float32).reshape(len(lengths), args.d))

    impls = [("torch_naive", naive), ("torch_concat", concat)]
    times = {name: [] for name, _ in impls}
    with torch.inference_mode():
        for _, fn in impls:  # Warm-up round: faults the weights in.
            for layer in layers:
                fn(layer, x, h, lengths)
        start = time.perf_counter()
        for round_ in range(args.max_rounds):
            if round_ >= args.min_rounds and time.perf_counter() - start > args.budget:
                break
            for name, fn in impls:
                for layer in layers:
                    begin = time.perf_counter()
                    fn(layer, x, h, lengths)
                    times[name].append((time.perf_counter() - begin) * 1e6)
        for name, fn in impls:
            print("%s median_us=%.3f min_us=%.3f calls=%d" % (
                name, float(np.median(times[name])), min(times[name]), len(times[name])))
            if args.dump:
                y = fn(layers[0], x, h, lengths)
                y.numpy().astype(np.float32).tofile(os.path.join(args.dump, name + ".bin"))


if __name__ == "__main__":
    main()
