#!/usr/bin/env python3
"""Writes the SPEC §6 benchmark workload as a model-package description.

Layer 0 is the LoRA-MoE layer (one d x d projection, E = 8 experts in G = 4
groups of 2, r = 16, alpha = 32, grouped-softmax router over h = x); layer 1
is the same projection with every expert removed: the compiled base linear,
the baseline of every ratio. Feed the output to
test/lib/model_package.py --desc.
"""

import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--d", type=int, default=4096)
parser.add_argument("--granularity", choices=["token", "sequence"], default="token")
parser.add_argument("out")
args = parser.parse_args()

experts = ["e%d" % i for i in range(8)]
description = {
    "format": "atmoe-model/1",
    "name": "spec6-d%d-%s" % (args.d, args.granularity),
    "dtype": "f32",
    "weights": ["weights.safetensors"],
    "router": {"kind": "grouped_softmax", "granularity": args.granularity},
    "groups": [{"name": "g%d" % g, "experts": experts[2 * g:2 * g + 2]} for g in range(4)],
    "experts": {e: {"rank": 16, "alpha": 32} for e in experts},
    "layers": [
        {"index": 0, "hidden_size": args.d,
         "projections": [{"name": "proj", "in_features": args.d,
                          "out_features": args.d, "bias": False}]},
        {"index": 1, "hidden_size": args.d,
         "experts": {e: None for e in experts},
         "projections": [{"name": "proj", "in_features": args.d,
                          "out_features": args.d, "bias": False}]},
    ],
}
with open(args.out, "w") as f:
    json.dump(description, f, indent=1)
