#!/usr/bin/env python3
"""Writes a model description with one d = 64 layer of E rank-2 experts in G
groups (grouped softmax, top_k_groups = 4) and P projections, for
test/helpers/model_package.py --desc.

  wide_layer.py EXPERTS GROUPS PROJECTIONS OUT.json
"""
import json
import sys

experts, groups, projections = (int(v) for v in sys.argv[1:4])
names = ["e%d" % i for i in range(experts)]
size = experts // groups
json.dump({
    "format": "atmoe-model/1", "name": "wide", "weights": ["weights.safetensors"],
    "groups": [{"name": "g%d" % g, "experts": names[g * size:(g + 1) * size]}
               for g in range(groups)],
    "experts": {name: {"rank": 2, "alpha": 4} for name in names},
    "router": {"kind": "grouped_softmax", "top_k_groups": min(4, groups)},
    "layers": [{"index": 0, "hidden_size": 64, "projections": [
        {"name": "p%d" % p, "in_features": 64, "out_features": 64, "bias": False}
        for p in range(projections)]}],
}, open(sys.argv[4], "w"))
