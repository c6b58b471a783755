#!/usr/bin/env python3
# ===- workload.py - the SPEC section 6 benchmark package description -----===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Writes the SPEC §6 benchmark workload as a model-package description.

Layer 0 is the LoRA-MoE layer (one d x d projection, E = 8 experts in G = 4
groups of 2, r = 16, alpha = 32, grouped-softmax router over h = x); layer 1
is the same projection with every expert removed: the compiled base linear,
the baseline of every ratio. Feed the output to
test/helpers/model_package.py --desc.

With --copies K the package holds K identical-shape copies of each, with
their own weights, as a K-layer model does: layers 0 .. K-1 are LoRA-MoE
layers, layers K .. 2K-1 base linears (K = 1, the default, is the layout
above). A benchmark that runs the copies round-robin reads weights that are
not cache-resident once K copies exceed the last-level cache.
"""

import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--d", type=int, default=4096)
parser.add_argument("--granularity", choices=["token", "sequence"], default="token")
parser.add_argument("--copies", type=int, default=1,
                    help="K: LoRA-MoE layers 0..K-1, base linears K..2K-1 (default 1)")
parser.add_argument("out")
args = parser.parse_args()
if args.copies < 1:
    parser.error("--copies must be >= 1")

experts = ["e%d" % i for i in range(8)]
projections = [{"name": "proj", "in_features": args.d, "out_features": args.d, "bias": False}]
layers = []
for k in range(args.copies):
    layers.append({"index": k, "hidden_size": args.d, "projections": projections})
for k in range(args.copies):
    layers.append({"index": args.copies + k, "hidden_size": args.d,
                   "experts": {e: None for e in experts}, "projections": projections})
name = "spec6-d%d-%s" % (args.d, args.granularity)
if args.copies > 1:
    name += "-x%d" % args.copies
description = {
    "format": "atmoe-model/1",
    "name": name,
    "dtype": "f32",
    "weights": ["weights.safetensors"],
    "router": {"kind": "grouped_softmax", "granularity": args.granularity},
    "groups": [{"name": "g%d" % g, "experts": experts[2 * g:2 * g + 2]} for g in range(4)],
    "experts": {e: {"rank": 16, "alpha": 32} for e in experts},
    "layers": layers,
}
with open(args.out, "w") as f:
    json.dump(description, f, indent=1)
