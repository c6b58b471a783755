#!/usr/bin/env python3
# ===- model_package.py - write atmoe model packages for tests -------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Writes atmoe model packages (SPEC section 3) for tests.

A package is described by a dict shaped like model.json itself; the generator
resolves it the way the importer does (per-layer expert sets, rank overrides,
PEFT target modules, ...) and writes every tensor the description implies
with deterministic random weights. Descriptions may carry generator-only keys
under "_gen":

    "_gen": {"seed": 0,              # numpy.random.default_rng seed
             "router_bias": true,     # write the optional router biases
             "cosine_dim": 16,        # d_p of cosine routers
             "adapter_dtype": "bf16"} # storage dtype of PEFT adapters

A PEFT expert is written as {"peft": "adapters/icd", "r": 8, "lora_alpha":
16, "target_modules": [...], ...}: every key but "peft" goes to the adapter's
adapter_config.json, and model.json keeps only {"peft": ...}.

Command line:

    model_package.py --preset demo OUT_DIR
    model_package.py --preset minimal OUT_DIR \
        --gen-set 'router={"kind": "softmax", "top_k": 1}' \
        --set 'experts.icd.rank=0' --corrupt truncate-header=weights.safetensors

--gen-set edits the description before the weights are generated (the weights
follow it); --set and --delete edit only the written model.json (or, as FILE:PATH, another
JSON file such as adapters/icd/adapter_config.json), with the value inserted
verbatim (so `1e999` or duplicate keys can be written);
--corrupt damages the package after it is written (see CORRUPTIONS).

Only the Python standard library and numpy are used.
"""

import argparse
import copy
import json
import os
import re
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_rules  # noqa: E402

# ===-----------------------------------------------------------------------===#
# safetensors
# ===-----------------------------------------------------------------------===#

_ST_DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
_INT_DTYPES = {"i32": "I32"}


def _to_storage(array, dtype):
    """Returns (safetensors dtype name, raw little-endian bytes)."""
    if dtype == "i32":
        return "I32", np.ascontiguousarray(array).astype("<i4").tobytes()
    array = np.ascontiguousarray(array, dtype=np.float32)
    if dtype == "f32":
        return "F32", array.astype("<f4").tobytes()
    if dtype == "f16":
        return "F16", array.astype("<f2").tobytes()
    if dtype == "bf16":
        # bfloat16 is the top half of an f32; round to nearest even.
        bits = array.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return "BF16", rounded.astype("<u2").tobytes()
    raise ValueError("unknown storage dtype %r" % dtype)


def bf16_to_f32(raw):
    """Decodes BF16 bytes (for tests that check a round trip)."""
    halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
    return (halves << 16).view(np.float32)


def write_safetensors(path, tensors, dtypes=None, corrupt=None):
    """Writes `tensors` (name -> float array, in order) to `path`.

    `dtypes` maps a name to its storage dtype ("f32", "f16", "bf16"; default
    f32). `corrupt` maps a tensor name to a damage kind applied while writing:
    "missing-tensor", "wrong-shape", "wrong-dtype" or "offsets-past-end".
    """
    dtypes = dtypes or {}
    corrupt = corrupt or {}
    header = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    past_end = []
    for name, array in tensors.items():
        damage = corrupt.get(name)
        if damage == "missing-tensor":
            continue
        kind = dtypes.get(name, "f32")
        array = np.asarray(array, dtype=np.int32 if kind == "i32" else np.float32)
        if damage == "wrong-shape":
            # One extra row keeps the rank but breaks the shape.
            array = np.concatenate([array, array[:1]], axis=0)
        dtype_name, raw = _to_storage(array, kind)
        if damage == "wrong-dtype":
            dtype_name, raw = ("F32", array.astype("<f4").tobytes()) if kind == "i32" \
                else ("I32", array.astype("<i4").tobytes())
        header[name] = {
            "dtype": dtype_name,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        if damage == "offsets-past-end":
            past_end.append(name)
        chunks.append(raw)
        offset += len(raw)
    for name in past_end:
        # Same length, but starting where the data section ends.
        begin, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = [offset, offset + end - begin]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for raw in chunks:
            out.write(raw)


def read_safetensors(path):
    """Returns {name: (dtype, shape, raw bytes)} (for tests)."""
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
        result[name] = (info["dtype"], info["shape"], data[base + begin : base + end])
    return result


# ===-----------------------------------------------------------------------===#
# Resolving a description (the importer's rules, SPEC section 3)
# ===-----------------------------------------------------------------------===#

ROUTER_DEFAULTS = {
    "kind": "grouped_softmax",
    "granularity": "token",
    "temperature": 1.0,
    "group_temperature": None,
    "expert_temperature": None,
    "top_k": None,
    "top_k_groups": None,
}


def merged_router(desc, layer):
    """The router of a layer: built-in defaults, then the top-level router,
    then the layer's; a null value (or a null router) means the default."""
    router = dict(ROUTER_DEFAULTS)
    for source in (desc.get("router"), layer.get("router", {})):
        if source is None:
            router = dict(ROUTER_DEFAULTS)
        for key, value in (source or {}).items():
            router[key] = ROUTER_DEFAULTS[key] if value is None else value
    return router


def layer_shared_expert(desc, layer):
    """(name, lambda) of the layer's shared expert, or None."""
    shared = desc.get("shared_expert")
    if "shared_expert" in layer:
        override = layer["shared_expert"]
        if override is None:
            return None
        shared = dict(shared or {}, **override)
    if not shared:
        return None
    name = shared["name"]
    if name in (layer.get("experts") or {}) and layer["experts"][name] is None:
        return None
    return name, shared["lambda"]


def layer_structure(desc, layer):
    """(groups, routed experts, shared expert or None) of a layer.

    groups is a list of (name, [experts]) with the layer's removals applied
    and empty groups dropped; routed experts are in routing order.
    """
    removed = {k for k, v in (layer.get("experts") or {}).items() if v is None}
    groups = []
    for group in desc.get("groups") or []:
        kept = [e for e in group["experts"] if e not in removed]
        if kept:
            groups.append((group["name"], kept))
    routed = [e for _, experts in groups for e in experts]
    return groups, routed, layer_shared_expert(desc, layer)


def _peft_module(index, proj):
    return "model.layers.%d.self_attn.%s" % (index, proj)


def peft_targets(config, index, proj):
    return peft_rules.targets(config, _peft_module(index, proj))


def expert_config(desc, name):
    """The top-level entry of expert `name` (PEFT keys included)."""
    return desc["experts"][name]


def adapter_rank_alpha(desc, layer, proj, name):
    """(rank, alpha) of expert `name` in projection `proj`, or None if the
    projection has no such adapter."""
    entry = expert_config(desc, name)
    index = layer["index"]
    if "peft" in entry:
        if not peft_targets(entry, index, proj["name"]):
            return None
        module = _peft_module(index, proj["name"])
        rank, alpha = peft_rules.rank_alpha(entry, module)
        if entry.get("use_rslora"):
            alpha = alpha * rank**0.5
        rank = entry.get("rank", rank)
        alpha = entry.get("alpha", alpha)
    else:
        rank, alpha = entry["rank"], entry["alpha"]
    for overrides in (layer.get("experts"), proj.get("experts")):
        if overrides and name in overrides:
            if overrides[name] is None:
                return None
            rank = overrides[name].get("rank", rank)
            alpha = overrides[name].get("alpha", alpha)
    return rank, alpha


def projection_adapters(desc, layer, proj):
    """[(expert, rank, alpha)] in adapter order: routed experts in layer
    order, then the shared expert."""
    _, routed, shared = layer_structure(desc, layer)
    names = list(routed) + ([shared[0]] if shared else [])
    adapters = []
    for name in names:
        ra = adapter_rank_alpha(desc, layer, proj, name)
        if ra is not None:
            adapters.append((name, ra[0], ra[1]))
    return adapters


# ===-----------------------------------------------------------------------===#
# Writing a package
# ===-----------------------------------------------------------------------===#

# Keys of a PEFT expert description that stay in model.json.
_MODEL_JSON_EXPERT_KEYS = ("peft", "rank", "alpha")


def _normal(rng, shape, scale=0.1):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


TENSOR_ROLES = ("base", "bias", "adapter", "router")


def projection_quantization(desc, layer, proj):
    """The GPTQ settings of a projection (top level, layer, projection; null
    clears), or None."""
    config = None
    for level in (desc, layer, proj):
        if "quantization" in level:
            value = level["quantization"]
            config = None if value is None else dict(config or {}, **value)
    return config


def pack(values, bits, axis):
    """Packs unsigned `bits`-bit integers along `axis`, 32 / bits per int32
    word, lowest bits first."""
    per_word = 32 // bits
    values = np.moveaxis(values.astype(np.uint32), axis, 0)
    words = np.zeros((values.shape[0] // per_word,) + values.shape[1:], np.uint32)
    for p in range(per_word):
        words |= values[p::per_word] << np.uint32(bits * p)
    return np.moveaxis(words, 0, axis).view(np.int32)


def gptq_tensors(weight, config, gen):
    """Round-to-nearest GPTQ tensors of `weight` (d_out x d_in) in Hugging
    Face's layout: {suffix: (array, dtype)}."""
    bits, d_out, d_in = config["bits"], weight.shape[0], weight.shape[1]
    group = config.get("group_size", 128)
    group = d_in if group == -1 else group
    maxq = (1 << bits) - 1
    v1 = config.get("checkpoint_format", "gptq") == "gptq"
    w = weight.reshape(d_out, d_in // group, group)
    if config.get("sym", True):
        scale = np.maximum(np.abs(w).max(axis=2), 1e-8) * 2 / maxq
        zero = np.full(scale.shape, float((maxq + 1) // 2))
    else:
        low, high = np.minimum(w.min(axis=2), 0), np.maximum(w.max(axis=2), 0)
        scale = np.maximum(high - low, 1e-8) / maxq
        # v1 stores zero - 1, so a zero point of 0 is not representable.
        zero = np.clip(np.round(-low / scale), 1 if v1 else 0, maxq)
    scale_dtype = gen.get("scale_dtype", "f16")
    scale = bf16_to_f32(_to_storage(scale, scale_dtype)[1]).reshape(scale.shape) \
        if scale_dtype == "bf16" else scale.astype(np.float16).astype(np.float64)
    q = np.clip(np.round(w / scale[:, :, None]) + zero[:, :, None], 0, maxq)
    tensors = {"qweight": (pack(q.reshape(d_out, d_in).T, bits, 0), "i32"),
               "scales": (scale.T.astype(np.float32), scale_dtype)}
    if not (config.get("sym", True) and gen.get("omit_qzeros")):
        stored = zero.T - (1 if v1 else 0)
        tensors["qzeros"] = (pack(stored, bits, 1), "i32")
    if gen.get("g_idx"):
        g_idx = np.arange(d_in) // group
        if gen["g_idx"] == "act_order":
            # What desc_act checkpoints hold: groups in another order.
            g_idx = (d_in // group - 1) - g_idx
        tensors["g_idx"] = (g_idx.astype(np.int32), "i32")
    return tensors


def tensor_role(name):
    """The role of a SPEC tensor name: base, bias, adapter or router."""
    if ".router." in name:
        return "router"
    if ".lora_A." in name or ".lora_B." in name:
        return "adapter"
    return "bias" if name.endswith(".bias") else "base"


def build_package(desc, out_dir, corruptions=(), json_edits=()):
    """Writes the package described by `desc` into `out_dir`.

    `corruptions` is a list of "KIND=ARG" strings (see CORRUPTIONS);
    `json_edits` a list of ("set", path, raw text) / ("delete", path, None)
    applied to the written model.json only (or, for a path `FILE:PATH`, to
    another JSON file of the package). Returns {tensor name: array} of
    the canonical (SPEC-named) tensors, in f32, as stored (before rounding
    to f16/bf16).
    """
    desc = copy.deepcopy(desc)
    gen = desc.pop("_gen", {})
    rng = np.random.default_rng(gen.get("seed", 0))
    dtype = desc.get("dtype", "f32")
    router_bias = gen.get("router_bias", True)
    os.makedirs(out_dir, exist_ok=True)

    tensor_damage = {}
    for item in corruptions:
        kind, _, arg = item.partition("=")
        if kind in ("missing-tensor", "wrong-shape", "wrong-dtype", "offsets-past-end"):
            tensor_damage[arg] = kind

    files = desc.get("weights") or ["weights.safetensors"]
    main_tensors = {f: {} for f in files}
    base_file, extra_file = files[0], files[-1]
    canonical = {}
    stored_dtypes = {}  # tensors whose dtype no role decides (GPTQ)
    peft_tensors = {}  # expert -> {peft name: array}

    def put(file, name, array):
        main_tensors[file][name] = array
        canonical[name] = array

    for layer in desc["layers"]:
        i = layer["index"]
        groups, routed, shared = layer_structure(desc, layer)
        if routed:
            router = merged_router(desc, layer)
            d_h = layer["hidden_size"]
            prefix = "layers.%d.router." % i
            if router["kind"] == "cosine":
                d_p = gen.get("cosine_dim", 16)
                put(extra_file, prefix + "proj.weight", _normal(rng, (d_p, d_h), 0.5))
                put(extra_file, prefix + "expert_embedding", _normal(rng, (len(routed), d_p), 0.5))
            else:
                if router["kind"] == "grouped_softmax":
                    put(extra_file, prefix + "group.weight", _normal(rng, (len(groups), d_h), 0.5))
                    if router_bias:
                        put(extra_file, prefix + "group.bias", _normal(rng, (len(groups),), 0.5))
                put(extra_file, prefix + "expert.weight", _normal(rng, (len(routed), d_h), 0.5))
                if router_bias:
                    put(extra_file, prefix + "expert.bias", _normal(rng, (len(routed),), 0.5))
        for proj in layer["projections"]:
            p = "layers.%d.%s." % (i, proj["name"])
            d_in, d_out = proj["in_features"], proj["out_features"]
            weight = _normal(rng, (d_out, d_in))
            quant = projection_quantization(desc, layer, proj)
            if quant:
                for suffix, (array, kind) in gptq_tensors(weight, quant, gen).items():
                    main_tensors[base_file][p + suffix] = array
                    stored_dtypes[p + suffix] = kind
            else:
                put(base_file, p + "weight", weight)
            if proj.get("bias"):
                put(base_file, p + "bias", _normal(rng, (d_out,)))
            for name, rank, _ in projection_adapters(desc, layer, proj):
                a = _normal(rng, (rank, d_in))
                b = _normal(rng, (d_out, rank))
                canonical[p + "lora_A.%s.weight" % name] = a
                canonical[p + "lora_B.%s.weight" % name] = b
                entry = expert_config(desc, name)
                if "peft" in entry:
                    module = "base_model.model." + _peft_module(i, proj["name"])
                    peft_tensors.setdefault(name, {})
                    peft_tensors[name][module + ".lora_A.weight"] = a
                    peft_tensors[name][module + ".lora_B.weight"] = b
                    if entry.get("lora_bias"):
                        peft_tensors[name][module + ".lora_B.bias"] = _normal(rng, (d_out,))
                    if entry.get("use_dora"):
                        # A trained magnitude: the weight's row norms, moved
                        # by up to 30% so that DoRA's scale c is not 1.
                        norms = np.linalg.norm(weight, axis=1)
                        moved = norms * rng.uniform(0.7, 1.3, d_out)
                        peft_tensors[name][module + ".lora_magnitude_vector"] = moved.astype(np.float32)
                else:
                    main_tensors[extra_file][p + "lora_A.%s.weight" % name] = a
                    main_tensors[extra_file][p + "lora_B.%s.weight" % name] = b

    role_dtypes = gen.get("role_dtypes", {})
    for file, tensors in main_tensors.items():
        path = os.path.join(out_dir, file)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        dtypes = {n: stored_dtypes.get(n) or role_dtypes.get(tensor_role(n), dtype)
                  for n in tensors}
        write_safetensors(path, tensors, dtypes, tensor_damage)

    # PEFT adapter directories; model.json keeps only the reference.
    for name, entry in list(desc.get("experts", {}).items()):
        if not isinstance(entry, dict) or "peft" not in entry:
            continue
        adapter_dir = os.path.join(out_dir, entry["peft"])
        os.makedirs(adapter_dir, exist_ok=True)
        config = {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "bias": "none",
            "lora_dropout": 0.0,
            "fan_in_fan_out": False,
        }
        config.update({k: v for k, v in entry.items() if k not in _MODEL_JSON_EXPERT_KEYS})
        with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
            json.dump(config, f, indent=2)
        tensors = peft_tensors.get(name, {})
        adapter_dtype = role_dtypes.get("adapter", gen.get("adapter_dtype", dtype))
        write_safetensors(
            os.path.join(adapter_dir, "adapter_model.safetensors"),
            tensors,
            {n: adapter_dtype for n in tensors},
            tensor_damage,
        )
        desc["experts"][name] = {k: v for k, v in entry.items() if k in _MODEL_JSON_EXPERT_KEYS}

    desc.setdefault("weights", files)
    # json_edits address model.json or, as FILE:PATH, another JSON file of
    # the package (an adapter_config.json).
    by_file = {}
    for action, where, raw in json_edits:
        file, path = _split_edit_target(where)
        by_file.setdefault(file, []).append((action, path, raw))
    _write_json(desc, os.path.join(out_dir, "model.json"), by_file.pop("model.json", []))
    for file, edits in by_file.items():
        path = os.path.join(out_dir, file)
        with open(path) as f:
            value = json.load(f)
        _write_json(value, path, edits)

    for item in corruptions:
        kind, _, arg = item.partition("=")
        if kind not in CORRUPTIONS:
            raise SystemExit("model_package.py: unknown corruption %r" % kind)
        CORRUPTIONS[kind](out_dir, arg)
    return canonical


def _parse_path(path):
    """`layers[0].experts.icd` -> ["layers", 0, "experts", "icd"]."""
    parts = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def _write_json(value, path, edits):
    """Writes `value` to `path` after applying `edits` (see build_package)."""
    raws = []
    for action, where, raw in edits:
        parts = _parse_path(where)
        node = value
        for part in parts[:-1]:
            if isinstance(node, dict) and isinstance(part, str) and part not in node:
                node[part] = {}
            node = node[part]
        if action == "delete":
            del node[parts[-1]]
            continue
        # The raw text replaces a unique placeholder after dumping, so that
        # values json.dumps cannot write (1e999, duplicate keys) get through.
        token = "@@raw%d@@" % len(raws)
        raws.append(raw)
        if isinstance(node, list) and parts[-1] == len(node):
            node.append(token)
        else:
            node[parts[-1]] = token
    text = json.dumps(value, indent=2)
    for n, raw in enumerate(raws):
        text = text.replace('"@@raw%d@@"' % n, raw)
    with open(path, "w") as f:
        f.write(text + "\n")


def _split_edit_target(where):
    """`FILE:PATH` -> (FILE, PATH); a bare PATH edits model.json."""
    file, sep, path = where.rpartition(":")
    return (file, path) if sep else ("model.json", where)


# ===-----------------------------------------------------------------------===#
# Corruptions applied after writing (file-level)
# ===-----------------------------------------------------------------------===#


def _truncate_header(out_dir, file):
    path = os.path.join(out_dir, file)
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    with open(path, "wb") as f:
        f.write(data[: 8 + length // 2])


def _oversize_header(out_dir, file):
    path = os.path.join(out_dir, file)
    with open(path, "r+b") as f:
        f.write(struct.pack("<Q", 1 << 40))


def _delete(out_dir, file):
    os.remove(os.path.join(out_dir, file))


def _truncate_json(out_dir, file):
    path = os.path.join(out_dir, file)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])


def _nest_json(out_dir, file):
    # Deeper than any parser should recurse into.
    depth = 100000
    with open(os.path.join(out_dir, file), "w") as f:
        f.write('{"format": "atmoe-model/1", "name": ' + "[" * depth + "]" * depth + "}\n")


def _tensor_damage(out_dir, arg):
    # Applied while writing (see write_safetensors).
    del out_dir, arg


CORRUPTIONS = {
    # FILE: cut the JSON header of a safetensors file in half.
    "truncate-header": _truncate_header,
    # FILE: a header length far beyond the end of the file.
    "oversize-header": _oversize_header,
    # FILE: remove a file of the package (model.json, a weights file, ...).
    "delete": _delete,
    # FILE: cut a JSON file (model.json, adapter_config.json) in half.
    "truncate-json": _truncate_json,
    # FILE: replace a JSON file by one nested 100000 levels deep.
    "nest-json": _nest_json,
    # TENSOR (the name stored in its file): omit it.
    "missing-tensor": _tensor_damage,
    # TENSOR: one extra row.
    "wrong-shape": _tensor_damage,
    # TENSOR: stored as I32.
    "wrong-dtype": _tensor_damage,
    # TENSOR: data_offsets that start at the end of the data section.
    "offsets-past-end": _tensor_damage,
}

# ===-----------------------------------------------------------------------===#
# Presets
# ===-----------------------------------------------------------------------===#


def _expert(rank, alpha=None):
    return {"rank": rank, "alpha": 2 * rank if alpha is None else alpha}


def _proj(name, d_in, d_out, **extra):
    proj = {"name": name, "in_features": d_in, "out_features": d_out, "bias": False}
    proj.update(extra)
    return proj


def preset_demo():
    """The bundled example (examples/demo): d = 64, two layers, two task
    groups of two experts with heterogeneous ranks, a shared expert; layer 1
    drops @symptom, gives q_proj a bias and a smaller @icd, and its v_proj
    carries no expert."""
    d = 64
    return {
        "format": "atmoe-model/1",
        "name": "demo",
        "dtype": "f32",
        "weights": ["weights.safetensors"],
        "router": {"kind": "grouped_softmax", "granularity": "token", "temperature": 1.0},
        "groups": [
            {"name": "diagnosis", "experts": ["icd", "symptom"]},
            {"name": "dialogue", "experts": ["qa", "summary"]},
        ],
        "experts": {
            "icd": _expert(16),
            "symptom": _expert(8),
            "qa": _expert(16),
            "summary": _expert(4),
            "general": _expert(8),
        },
        "shared_expert": {"name": "general", "lambda": 0.8},
        "layers": [
            {
                "index": 0,
                "hidden_size": d,
                "projections": [_proj("q_proj", d, d), _proj("v_proj", d, d)],
            },
            {
                "index": 1,
                "hidden_size": d,
                "experts": {"symptom": None},
                "projections": [
                    _proj("q_proj", d, d, bias=True, experts={"icd": {"rank": 4, "alpha": 8}}),
                    _proj(
                        "v_proj",
                        d,
                        d,
                        experts={"icd": None, "qa": None, "summary": None, "general": None},
                    ),
                ],
            },
        ],
    }


def preset_minimal():
    """One layer, one projection (8 -> 4), two groups of one and two
    experts, no shared expert: small packages for error tests."""
    return {
        "format": "atmoe-model/1",
        "name": "minimal",
        "weights": ["weights.safetensors"],
        "groups": [
            {"name": "g0", "experts": ["a"]},
            {"name": "g1", "experts": ["b", "c"]},
        ],
        "experts": {"a": _expert(2), "b": _expert(4), "c": _expert(2, 1.0)},
        "layers": [
            {"index": 0, "hidden_size": 6, "projections": [_proj("proj", 8, 4)]},
        ],
    }


def preset_hetero():
    """GuiLoMo-style heterogeneous allocation: layer-level and
    projection-level rank/alpha overrides and removals over three layers,
    one layer without routed experts, layer indexes out of order."""
    return {
        "format": "atmoe-model/1",
        "name": "hetero",
        "weights": ["base.safetensors", "lora.safetensors"],
        "groups": [
            {"name": "t0", "experts": ["e0", "e1"]},
            {"name": "t1", "experts": ["e2"]},
            {"name": "t2", "experts": ["e3", "e4"]},
        ],
        "experts": {n: _expert(4) for n in ("e0", "e1", "e2", "e3", "e4")},
        "layers": [
            {
                "index": 2,
                "hidden_size": 12,
                "experts": {"e1": {"rank": 2}, "e2": None},
                "projections": [
                    _proj("up", 16, 32, experts={"e0": {"rank": 8, "alpha": 3.5}}),
                    _proj("down", 32, 16, bias=True, experts={"e3": None}),
                ],
            },
            {
                "index": 0,
                "hidden_size": 16,
                "router": {"top_k_groups": 2},
                "projections": [_proj("up", 16, 32), _proj("down", 32, 16)],
            },
            {
                "index": 5,
                "experts": {n: None for n in ("e0", "e1", "e2", "e3", "e4")},
                "projections": [_proj("up", 16, 32, bias=True)],
            },
        ],
    }


def preset_router(kind):
    """One layer with a router of `kind` and top-k where the kind allows."""
    router = {"kind": kind, "temperature": 0.5}
    if kind == "grouped_softmax":
        router.update(group_temperature=2.0, expert_temperature=0.25, top_k_groups=1)
    else:
        router["top_k"] = 2
    return {
        "format": "atmoe-model/1",
        "name": "router_" + kind,
        "weights": ["weights.safetensors"],
        "router": router,
        "groups": [
            {"name": "g0", "experts": ["a", "b"]},
            {"name": "g1", "experts": ["c"]},
        ],
        "experts": {"a": _expert(2), "b": _expert(2), "c": _expert(2)},
        "_gen": {"cosine_dim": 5},
        "layers": [
            {"index": 0, "hidden_size": 8, "projections": [_proj("proj", 8, 8)]},
        ],
    }


def preset_sequence():
    """Sequence granularity: h is one instruction embedding per sequence."""
    desc = preset_minimal()
    desc["name"] = "sequence"
    desc["router"] = {"granularity": "sequence"}
    desc["shared_expert"] = {"name": "s", "lambda": 0.5}
    desc["experts"]["s"] = _expert(2)
    desc["layers"][0]["hidden_size"] = 10
    desc["layers"][0]["projections"].append(_proj("out", 4, 8, bias=True))
    return desc


def preset_peft():
    """Experts given as PEFT adapter directories: target_modules,
    layers_to_transform, rank_pattern and rsLoRA, bf16 adapters."""
    d = 16
    return {
        "format": "atmoe-model/1",
        "name": "peft",
        "weights": ["weights.safetensors"],
        "groups": [{"name": "tasks", "experts": ["icd", "qa"]}],
        "experts": {
            "icd": {
                "peft": "adapters/icd",
                "r": 8,
                "lora_alpha": 16,
                "target_modules": ["q_proj", "v_proj"],
                "rank_pattern": {"v_proj": 4},
            },
            "qa": {
                "peft": "adapters/qa",
                "r": 4,
                "lora_alpha": 4,
                "use_rslora": True,
                "target_modules": ["q_proj"],
                "layers_to_transform": [1],
            },
            "general": _expert(2),
        },
        "shared_expert": {"name": "general", "lambda": 0.75},
        "_gen": {"adapter_dtype": "bf16"},
        "layers": [
            {
                "index": i,
                "hidden_size": d,
                "projections": [_proj("q_proj", d, d), _proj("v_proj", d, d)],
            }
            for i in range(2)
        ],
    }


def preset_peft_patterns():
    """PEFT adapters selected by Python re patterns, as PEFT reads them: a
    regex target_modules with \\d and \\w (which select nothing as POSIX
    regexes), exclude_modules as a list and as a regex, layers_to_transform
    with layers_pattern, rank_pattern and alpha_pattern in first-match order
    with (?:...) and a lazy quantifier."""
    d = 16
    return {
        "format": "atmoe-model/1",
        "name": "peft-patterns",
        "weights": ["weights.safetensors"],
        "groups": [{"name": "tasks", "experts": ["icd", "qa"]}],
        "experts": {
            "icd": {
                "peft": "adapters/icd",
                "r": 8,
                "lora_alpha": 16,
                "target_modules": r"model\.layers\.\d+\.self_attn\.[qv]_\w+",
                "exclude_modules": ["layers.0.self_attn.v_proj"],
                # First match in file order: layer 2's q_proj gets 2, not 6.
                "rank_pattern": {r"layers\.2\..*?": 2, "q_proj": 6},
                "alpha_pattern": {r"(?:k|v)_proj": 32},
            },
            "qa": {
                "peft": "adapters/qa",
                "r": 4,
                "lora_alpha": 8,
                "use_rslora": True,
                "target_modules": ["q_proj", "k_proj", "v_proj"],
                "exclude_modules": r".*\.k_proj",
                "layers_to_transform": [0, 2],
                "layers_pattern": "layers",
            },
            "general": _expert(2),
        },
        "shared_expert": {"name": "general", "lambda": 0.75},
        "layers": [
            {
                "index": i,
                "hidden_size": d,
                "projections": [_proj(p, d, d) for p in ("q_proj", "k_proj", "v_proj")],
            }
            for i in range(3)
        ],
    }


def preset_peft_variants():
    """PEFT's variants in one mixture: a DoRA expert, a plain one and one
    with lora_bias routed together, and a DoRA shared expert."""
    d = 16
    peft = lambda name, r, alpha, targets, **extra: dict(
        peft="adapters/" + name, r=r, lora_alpha=alpha, target_modules=targets, **extra)
    return {
        "format": "atmoe-model/1",
        "name": "peft-variants",
        "weights": ["weights.safetensors"],
        "groups": [{"name": "tasks", "experts": ["dora", "plain", "biased"]}],
        "experts": {
            "dora": peft("dora", 4, 8, ["q_proj", "v_proj"], use_dora=True),
            "plain": peft("plain", 4, 4, ["q_proj"]),
            "biased": peft("biased", 2, 4, ["q_proj", "v_proj"], lora_bias=True),
            "general": peft("general", 2, 2, "all-linear", use_dora=True, use_rslora=True),
        },
        "shared_expert": {"name": "general", "lambda": 0.6},
        "layers": [
            {
                "index": i,
                "hidden_size": d,
                "projections": [_proj("q_proj", d, d, bias=True), _proj("v_proj", d, 8)],
            }
            for i in range(2)
        ],
    }


def preset_plain():
    """No experts at all: every projection is a plain linear."""
    return {
        "format": "atmoe-model/1",
        "name": "plain",
        "weights": ["weights.safetensors"],
        "experts": {},
        "layers": [
            {"index": 0, "projections": [_proj("q_proj", 8, 8, bias=True), _proj("o_proj", 8, 4)]},
        ],
    }


def preset_shared_only():
    """A layer whose only expert is the shared one: no router."""
    return {
        "format": "atmoe-model/1",
        "name": "shared_only",
        "weights": ["weights.safetensors"],
        "experts": {"general": _expert(2)},
        "shared_expert": {"name": "general", "lambda": 0.25},
        "layers": [{"index": 0, "projections": [_proj("proj", 8, 8)]}],
    }


def preset_layer_shared():
    """Per-layer shared experts: top-level lambda, a per-layer lambda, a
    per-layer different expert and a layer without one."""
    return {
        "format": "atmoe-model/1",
        "name": "layer_shared",
        "weights": ["weights.safetensors"],
        "groups": [{"name": "g", "experts": ["a", "b"]}],
        "experts": {"a": _expert(2), "b": _expert(2), "s1": _expert(2), "s2": _expert(4)},
        "shared_expert": {"name": "s1", "lambda": 0.9},
        "layers": [
            {"index": 0, "hidden_size": 8, "projections": [_proj("p", 8, 8)]},
            {
                "index": 1,
                "hidden_size": 8,
                "shared_expert": {"lambda": 0.5},
                "projections": [_proj("p", 8, 8)],
            },
            {
                "index": 2,
                "hidden_size": 8,
                "shared_expert": {"name": "s2", "lambda": 0.0},
                "projections": [_proj("p", 8, 8)],
            },
            {
                "index": 3,
                "hidden_size": 8,
                "shared_expert": None,
                "projections": [_proj("p", 8, 8)],
            },
        ],
    }


def preset_llama():
    """A tiny Llama-shaped model (hidden 32, 4 heads of 8 with 2 key-value
    heads, intermediate 48, two layers, q/k/v/o and gate/up/down): PEFT
    adapters on the attention, a model.json expert on every projection, a
    shared expert. test/helpers/hf_checkpoint.py turns its base into a
    Hugging Face checkpoint."""
    d, kv, inter = 32, 16, 48

    def projections():
        return [_proj("q_proj", d, d), _proj("k_proj", d, kv), _proj("v_proj", d, kv),
                _proj("o_proj", d, d), _proj("gate_proj", d, inter),
                _proj("up_proj", d, inter), _proj("down_proj", inter, d)]
    return {
        "format": "atmoe-model/1",
        "name": "llama",
        "weights": ["weights.safetensors"],
        "groups": [{"name": "tasks", "experts": ["icd", "qa"]}, {"name": "all", "experts": ["mlp"]}],
        "experts": {
            "icd": {"peft": "adapters/icd", "r": 4, "lora_alpha": 8,
                    "target_modules": ["q_proj", "v_proj"]},
            "qa": {"peft": "adapters/qa", "r": 2, "lora_alpha": 2,
                   "target_modules": ["q_proj", "k_proj", "o_proj"]},
            "mlp": _expert(2),
            "general": _expert(2),
        },
        "shared_expert": {"name": "general", "lambda": 0.8},
        "_gen": {"heads": 4, "kv_heads": 2},
        "layers": [{"index": i, "hidden_size": d, "projections": projections()}
                   for i in range(2)],
    }


def preset_assistant():
    """The main job's example (examples/demo): a small Llama-shaped model
    (hidden 64, 4 heads of 16 with 2 key-value heads, intermediate 128, two
    layers) whose experts are all PEFT adapters, as a user has them: two task
    groups with heterogeneous ranks and targets (symptom only in layer 0,
    summary on the MLP, a rank_pattern), a shared expert; layer 1's q_proj
    has a bias. test/helpers/hf_checkpoint.py turns its base into a Hugging
    Face checkpoint and atmoe-package init packages it."""
    d, kv, inter = 64, 32, 128

    def projections(index):
        return [_proj("q_proj", d, d, bias=index == 1), _proj("k_proj", d, kv),
                _proj("v_proj", d, kv), _proj("o_proj", d, d),
                _proj("gate_proj", d, inter), _proj("up_proj", d, inter),
                _proj("down_proj", inter, d)]
    return {
        "format": "atmoe-model/1",
        "name": "assistant",
        "weights": ["weights.safetensors"],
        "router": {"kind": "grouped_softmax", "granularity": "token"},
        "groups": [{"name": "diagnosis", "experts": ["icd", "symptom"]},
                   {"name": "dialogue", "experts": ["qa", "summary"]}],
        "experts": {
            "icd": {"peft": "adapters/icd", "r": 16, "lora_alpha": 32,
                    "target_modules": ["q_proj", "v_proj"], "rank_pattern": {"v_proj": 8}},
            "symptom": {"peft": "adapters/symptom", "r": 8, "lora_alpha": 16,
                        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                        "layers_to_transform": [0]},
            "qa": {"peft": "adapters/qa", "r": 16, "lora_alpha": 16,
                   "target_modules": ["q_proj", "v_proj", "o_proj"]},
            "summary": {"peft": "adapters/summary", "r": 4, "lora_alpha": 8,
                        "target_modules": ["gate_proj", "up_proj", "down_proj"]},
            "general": {"peft": "adapters/general", "r": 8, "lora_alpha": 16,
                        "target_modules": ["q_proj", "v_proj"]},
        },
        "shared_expert": {"name": "general", "lambda": 0.8},
        "_gen": {"heads": 4, "kv_heads": 2},
        "layers": [{"index": i, "hidden_size": d, "projections": projections(i)}
                   for i in range(2)],
    }


PRESETS = {
    "assistant": preset_assistant,
    "demo": preset_demo,
    "llama": preset_llama,
    "minimal": preset_minimal,
    "hetero": preset_hetero,
    "grouped_softmax": lambda: preset_router("grouped_softmax"),
    "softmax": lambda: preset_router("softmax"),
    "sigmoid": lambda: preset_router("sigmoid"),
    "cosine": lambda: preset_router("cosine"),
    "sequence": preset_sequence,
    "peft": preset_peft,
    "peft-patterns": preset_peft_patterns,
    "peft-variants": preset_peft_variants,
    "plain": preset_plain,
    "shared_only": preset_shared_only,
    "layer_shared": preset_layer_shared,
}


def _apply_gen_set(desc, where, value):
    parts = _parse_path(where)
    node = desc
    for part in parts[:-1]:
        if isinstance(node, dict) and isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write an atmoe model package.")
    parser.add_argument("out_dir", help="package directory to create")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--desc", help="JSON file with a description instead of a preset")
    parser.add_argument("--dtype", choices=sorted(_ST_DTYPES), help="storage dtype of all tensors")
    parser.add_argument(
        "--role-dtype",
        action="append",
        default=[],
        metavar="ROLE=DTYPE",
        help="storage dtype of one role (%s), overriding --dtype" % ", ".join(TENSOR_ROLES),
    )
    parser.add_argument(
        "--quantize",
        metavar="KEY=VALUE,...",
        help="GPTQ base weights (round to nearest): bits=4|8, group_size=N|-1, "
        "sym=true|false, checkpoint_format=gptq|gptq_v2 (model.json's quantization "
        "object), and for the files: g_idx=true|\"act_order\" (write g_idx), omit_qzeros=true "
        "(symmetric only), scale_dtype=f16|bf16|f32",
    )
    parser.add_argument("--seed", type=int, help="random seed of the weights")
    parser.add_argument(
        "--gen-set",
        action="append",
        default=[],
        metavar="PATH=JSON",
        help="edit the description before generating weights",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=RAW",
        help="edit only the written model.json, or with FILE:PATH=RAW another JSON "
        "file of the package (RAW is inserted verbatim)",
    )
    parser.add_argument(
        "--delete",
        action="append",
        default=[],
        metavar="[FILE:]PATH",
        help="remove a key from model.json (or FILE)",
    )
    parser.add_argument(
        "--corrupt",
        action="append",
        default=[],
        metavar="KIND=ARG",
        help="damage the package: " + ", ".join(sorted(CORRUPTIONS)),
    )
    args = parser.parse_args(argv)

    if args.desc:
        with open(args.desc) as f:
            desc = json.load(f)
    else:
        desc = PRESETS[args.preset]()
    if args.dtype:
        desc["dtype"] = args.dtype
    if args.seed is not None:
        desc.setdefault("_gen", {})["seed"] = args.seed
    if args.quantize:
        quant, gen = {"method": "gptq"}, desc.setdefault("_gen", {})
        for item in args.quantize.split(","):
            key, _, value = item.partition("=")
            parsed = json.loads(value) if value not in ("gptq", "gptq_v2", "f16", "bf16", "f32") \
                else value
            if key in ("g_idx", "omit_qzeros", "scale_dtype"):
                gen[key] = parsed
            else:
                quant[key] = parsed
        desc["quantization"] = quant
    for item in args.role_dtype:
        role, _, dtype = item.partition("=")
        if role not in TENSOR_ROLES or dtype not in _ST_DTYPES:
            parser.error("--role-dtype %s: expected ROLE=DTYPE with ROLE in %s" % (item, TENSOR_ROLES))
        desc.setdefault("_gen", {}).setdefault("role_dtypes", {})[role] = dtype
    for item in args.gen_set:
        where, _, value = item.partition("=")
        _apply_gen_set(desc, where, json.loads(value))
    edits = []
    for item in args.set:
        where, _, raw = item.partition("=")
        edits.append(("set", where, raw))
    edits += [("delete", where, None) for where in args.delete]
    build_package(desc, args.out_dir, args.corrupt, edits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
