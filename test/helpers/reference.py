#!/usr/bin/env python3
"""Float64 reference for one AT-MoE layer, written from SPEC §2-§3 alone.

It reads a model package (model.json + safetensors) itself and shares no
code with the compiler, so a bug in the importer or the lowering cannot hide
in both. Usage:

  reference.py MODEL_DIR --layer L --x X.npy [--x PROJ=X.npy ...] [--h H.npy]
               [--segments 2,3] --check OUT_DIR

compares OUT_DIR/{proj}.npy and OUT_DIR/routing.npy with the reference under
SPEC §2's tolerance (max-abs-error <= 1e-3 * (1 + max|y_ref|)) and exits
non-zero on a mismatch.
"""

import argparse
import json
import os
import re
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_rules  # noqa: E402

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32}


def read_raw_safetensors(path):
    """{name: (header entry, raw bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    data = blob[8 + length:]
    return {name: (info, data[info["data_offsets"][0]:info["data_offsets"][1]])
            for name, info in header.items() if name != "__metadata__"}


def read_safetensors(path):
    tensors = {}
    for name, (info, raw) in read_raw_safetensors(path).items():
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            values = bits.view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        # Packed integers (GPTQ) stay integers; floats are widened exactly.
        wide = np.int64 if info["dtype"] == "I32" else np.float64
        tensors[name] = values.astype(wide).reshape(info["shape"])
    return tensors


def quantization(model, layer, proj):
    """The GPTQ settings of a projection: top level, then layer, then
    projection, each null (not quantised) or keys over the inherited ones."""
    config = None
    for level in (model, layer, proj):
        if "quantization" in level:
            value = level["quantization"]
            config = None if value is None else merged(config or {}, value)
    return config


def unpack(words, bits, axis):
    """The 32 / bits values of each int32 word, lowest bits first, laid out
    along `axis`."""
    per_word = 32 // bits
    words = words.astype(np.uint32)
    parts = [(words >> np.uint32(bits * p)) & np.uint32((1 << bits) - 1) for p in range(per_word)]
    stacked = np.stack(parts, axis=axis + 1)
    shape = list(words.shape)
    shape[axis] *= per_word
    return stacked.reshape(shape).astype(np.float64)


def dequantize(tensors, prefix, config, d_in):
    """W (d_out x d_in) of a GPTQ checkpoint: scales[g, o] * (q[i, o] -
    zero[g, o]), g = g_idx[i] (i / group_size without g_idx)."""
    bits = config["bits"]
    group = config.get("group_size", 128)
    group = d_in if group == -1 else group
    q = unpack(tensors[prefix + "qweight"], bits, 0)  # d_in x d_out
    scales = tensors[prefix + "scales"]
    g_idx = tensors.get(prefix + "g_idx")
    g = np.arange(d_in) // group if g_idx is None else g_idx
    if prefix + "qzeros" in tensors:
        offset = 1 if config.get("checkpoint_format", "gptq") == "gptq" else 0
        zeros = unpack(tensors[prefix + "qzeros"], bits, 1) + offset
    else:
        zeros = np.full(scales.shape, float(1 << (bits - 1)))
    return (scales[g] * (q - zeros[g])).T


def int8_activation_block(config, d_in):
    """Activations per block when --int8-activations rounds them (docs/
    Numerics.md): the largest divisor of the group size up to 128 that is a
    multiple of the values per packed word."""
    group = config.get("group_size", 128)
    group = d_in if group == -1 else group
    per_word = 32 // config["bits"]
    for size in range(min(group, 128), per_word, -1):
        if group % size == 0 and size % per_word == 0:
            return size
    return per_word


def int8_activation_allowance(x, w, block):
    """The documented bound on what rounding each block of x to int8 (scale
    max|x| / 127) changes in x w^T: sum over blocks of max|x_b| / 254 times
    sum |w_b| (T x d_out)."""
    tokens, d_in = x.shape
    blocks = d_in // block
    amax = np.abs(x).reshape(tokens, blocks, block).max(axis=2)  # T x blocks
    weight_sums = np.abs(w).reshape(w.shape[0], blocks, block).sum(axis=2)  # out x blocks
    return (amax / 254.0) @ weight_sums.T


def merged(base, override):
    """Dictionary `base` updated with the non-null entries of `override`."""
    result = dict(base or {})
    for key, value in (override or {}).items():
        if value is not None:
            result[key] = value
    return result


def softmax(v):
    v = v - v.max(axis=-1, keepdims=True)
    e = np.exp(v)
    return e / e.sum(axis=-1, keepdims=True)


def keep_top_k(scores, k):
    """Boolean mask of the k largest scores per row; the lower index wins ties."""
    mask = np.zeros(scores.shape, dtype=bool)
    for row in range(scores.shape[0]):
        order = sorted(range(scores.shape[1]), key=lambda j: (-scores[row, j], j))
        mask[row, order[:k]] = True
    return mask


def masked_softmax(v, mask):
    v = np.where(mask, v, -np.inf)
    return softmax(v)


HF_MODULES = {"q_proj": "model.layers.{i}.self_attn.q_proj",
              "k_proj": "model.layers.{i}.self_attn.k_proj",
              "v_proj": "model.layers.{i}.self_attn.v_proj",
              "o_proj": "model.layers.{i}.self_attn.o_proj",
              "gate_proj": "model.layers.{i}.mlp.gate_proj",
              "up_proj": "model.layers.{i}.mlp.up_proj",
              "down_proj": "model.layers.{i}.mlp.down_proj"}


def hf_sizes(config):
    """in/out features of the Llama-style projections from config.json."""
    hidden, heads = config["hidden_size"], config.get("num_attention_heads")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (hidden // heads if heads else None)
    sizes = {}
    if heads:
        sizes.update(q_proj=(hidden, heads * head_dim), k_proj=(hidden, kv_heads * head_dim),
                     v_proj=(hidden, kv_heads * head_dim), o_proj=(heads * head_dim, hidden))
    if config.get("intermediate_size"):
        inter = config["intermediate_size"]
        sizes.update(gate_proj=(hidden, inter), up_proj=(hidden, inter), down_proj=(inter, hidden))
    return sizes


def hf_base(model_dir, model):
    """model.json's "base": the checkpoint's tensors under the canonical
    names (layers.{i}.{proj}.weight / .bias), and the layers it implies."""
    folder = os.path.join(model_dir, model["base"]["huggingface"])
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(folder, "model.safetensors.index.json")
    files = ["model.safetensors"]
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    checkpoint = {}
    for name in files:
        checkpoint.update(read_safetensors(os.path.join(folder, name)))
    modules = dict(HF_MODULES, **model["base"].get("modules", {}))
    sizes = hf_sizes(config)
    layers = model.get("layers") or [
        {"index": i, "projections": [{"name": n} for n in HF_MODULES if n in sizes]}
        for i in range(config["num_hidden_layers"])]
    tensors = {}
    for layer in layers:
        layer.setdefault("hidden_size", config["hidden_size"])
        for p in layer["projections"]:
            module = modules.get(p["name"], "").replace("{i}", str(layer["index"]))
            for suffix in ("weight", "bias", "qweight", "qzeros", "scales", "g_idx"):
                if module + "." + suffix in checkpoint:
                    tensors["layers.%d.%s.%s" % (layer["index"], p["name"], suffix)] = \
                        checkpoint[module + "." + suffix]
            if p["name"] in sizes:
                p.setdefault("in_features", sizes[p["name"]][0])
                p.setdefault("out_features", sizes[p["name"]][1])
            p.setdefault("bias", "layers.%d.%s.bias" % (layer["index"], p["name"]) in tensors)
    model["layers"] = layers
    if "quantization_config" in config:
        # A GPTQ checkpoint; model.json's "quantization" overrides key by key.
        model["quantization"] = merged(config["quantization_config"],
                                       model.get("quantization"))
    return tensors


class Layer:
    def __init__(self, model_dir, index):
        with open(os.path.join(model_dir, "model.json")) as f:
            model = json.load(f)
        self.tensors = hf_base(model_dir, model) if "base" in model else {}
        for name in model.get("weights", []):
            self.tensors.update(read_safetensors(os.path.join(model_dir, name)))
        layer = next(l for l in model["layers"] if l["index"] == index)
        self.index = index
        self.hidden_size = layer.get("hidden_size")

        experts = {}
        self.peft = {}
        for name, spec in model["experts"].items():
            if "peft" in spec:
                # SPEC §3: rank and alpha from adapter_config.json, tensors
                # under PEFT names, only in the target modules.
                folder = os.path.join(model_dir, spec["peft"])
                with open(os.path.join(folder, "adapter_config.json")) as f:
                    config = json.load(f)
                # model.json's rank / alpha, where given, override PEFT's.
                spec = dict({k: v for k, v in spec.items() if k in ("rank", "alpha")},
                            config=config)
                self.peft[name] = read_safetensors(
                    os.path.join(folder, "adapter_model.safetensors"))
            experts[name] = dict(spec)
        for name, spec in (layer.get("experts") or {}).items():
            if spec is None:
                experts.pop(name, None)
            else:
                experts[name] = merged(experts.get(name), spec)
        self.experts = experts

        # A layer's shared_expert overrides the top-level one key by key;
        # null removes it.
        shared = model.get("shared_expert")
        if "shared_expert" in layer:
            shared = layer["shared_expert"] and merged(shared, layer["shared_expert"])
        self.shared = shared["name"] if shared and shared["name"] in experts else None
        self.lam = float(shared["lambda"]) if self.shared else 1.0

        self.groups = []
        for group in model.get("groups", []):
            members = [e for e in group["experts"] if e in experts and e != self.shared]
            if members:
                self.groups.append(members)
        self.routed = [e for g in self.groups for e in g]

        self.router = merged(model.get("router"), layer.get("router"))
        self.projections = layer["projections"]
        self.quantization = {p["name"]: quantization(model, layer, p) for p in self.projections}

    def weight(self, name):
        return self.tensors["layers.%d.%s" % (self.index, name)]

    def route(self, h):
        r = self.router
        kind = r.get("kind", "grouped_softmax")
        tau = float(r.get("temperature", 1.0))
        top_k = r.get("top_k")

        def logits(prefix):
            v = h @ self.weight("router.%s.weight" % prefix).T
            bias = "layers.%d.router.%s.bias" % (self.index, prefix)
            if bias in self.tensors:
                v = v + self.tensors[bias]
            return v

        if kind == "grouped_softmax":
            tau_g = float(r.get("group_temperature") or tau)
            tau_e = float(r.get("expert_temperature") or tau)
            u = logits("group") / tau_g
            keep = np.ones(u.shape, dtype=bool)
            if r.get("top_k_groups"):
                keep = keep_top_k(u, int(r["top_k_groups"]))
            p = masked_softmax(u, keep)
            v = logits("expert") / tau_e
            w = np.zeros(v.shape)
            first = 0
            for g, members in enumerate(self.groups):
                cols = slice(first, first + len(members))
                w[:, cols] = p[:, g:g + 1] * softmax(v[:, cols])
                first += len(members)
            return w
        if kind == "cosine":
            z = h @ self.weight("router.proj.weight").T
            c = self.weight("router.expert_embedding")
            norms = np.linalg.norm(z, axis=1)[:, None] * np.linalg.norm(c, axis=1)[None, :]
            v = (z @ c.T) / np.maximum(norms, 1e-12) / tau
        else:
            v = logits("expert") / tau
        keep = np.ones(v.shape, dtype=bool) if not top_k else keep_top_k(v, int(top_k))
        if kind == "sigmoid":
            if not top_k:
                return 1.0 / (1.0 + np.exp(-v))
            # sigmoid(v_j) / sum over kept k of sigmoid(v_k), computed as a
            # softmax of log sigmoid(v) (identical in exact arithmetic), which
            # stays defined where every kept sigmoid underflows to 0.
            return masked_softmax(-np.logaddexp(0.0, -v), keep)
        return masked_softmax(v, keep)

    def peft_adapter(self, expert, spec, name):
        """(A, B, scale) of PEFT expert `expert` in projection `name`, or None
        where PEFT's rules (peft_rules.py, Python's re) do not adapt it."""
        tensors, config = self.peft[expert], spec["config"]
        suffix = ".layers.%d.self_attn.%s.lora_A.weight" % (self.index, name)
        modules = [k[: -len(".lora_A.weight")] for k in tensors if k.endswith(suffix)]
        module = modules[0] if modules else "base_model.model.model" + suffix[: -len(".lora_A.weight")]
        module_name = module[len("base_model.model."):]
        if not peft_rules.targets(config, module_name):
            return None
        a, b = tensors[module + ".lora_A.weight"], tensors[module + ".lora_B.weight"]
        variants = {}
        if config.get("lora_bias"):
            variants["bias"] = tensors[module + ".lora_B.bias"]
        if config.get("use_dora"):
            variants["magnitude"] = tensors.get(module + ".lora_magnitude_vector")
            if variants["magnitude"] is None:
                variants["magnitude"] = tensors[module + ".lora_magnitude_vector.weight"]
        if "rank" not in spec and "alpha" not in spec:
            return a, b, peft_rules.scale(config, module_name), variants
        rank, alpha = peft_rules.rank_alpha(config, module_name)
        if config.get("use_rslora"):
            alpha = alpha * rank**0.5
        scale = float(spec.get("alpha", alpha)) / float(spec.get("rank", rank))
        return a, b, scale, variants

    def int8_allowance(self, proj, x):
        """What --int8-activations may add to the error of a GPTQ projection
        (zeros for other projections)."""
        config = self.quantization[proj["name"]]
        if not config:
            return np.zeros((x.shape[0], proj["out_features"]))
        prefix = "layers.%d.%s." % (self.index, proj["name"])
        w = dequantize(self.tensors, prefix, config, proj["in_features"])
        return int8_activation_allowance(
            x, w, int8_activation_block(config, proj["in_features"]))

    def project(self, proj, x, w_tokens):
        name = proj["name"]
        config = self.quantization[name]
        if config:
            prefix = "layers.%d.%s." % (self.index, name)
            w = dequantize(self.tensors, prefix, config, proj["in_features"])
        else:
            w = self.weight(name + ".weight")
        base = x @ w.T
        y = base
        if proj.get("bias"):
            y = y + self.weight(name + ".bias")
        experts = dict(self.experts)
        for expert, spec in (proj.get("experts") or {}).items():
            if spec is None:
                experts.pop(expert, None)
            else:
                experts[expert] = merged(experts.get(expert), spec)
        for expert, spec in experts.items():
            if expert not in self.routed and expert != self.shared:
                continue
            if expert in self.peft:
                found = self.peft_adapter(expert, spec, name)
                if found is None:
                    continue
                a, b, scale, variants = found
            else:
                a = self.weight("%s.lora_A.%s.weight" % (name, expert))
                b = self.weight("%s.lora_B.%s.weight" % (name, expert))
                scale = float(spec["alpha"]) / float(spec["rank"])
                variants = {}
            update = ((x @ a.T) @ b.T) * scale
            if "bias" in variants:
                # PEFT's lora_bias: lora_B is a Linear with a bias.
                update = update + variants["bias"] * scale
            if "magnitude" in variants:
                # DoRA (PEFT's DoraLinearLayer): c = m / ||W + s B A|| per
                # output row; (c - 1) * base(x) + c * s * B A x.
                norms = np.linalg.norm(w + scale * (b @ a), axis=1)
                c = variants["magnitude"] / norms
                update = (c - 1.0) * base + c * update
            if expert == self.shared:
                y = y + (1.0 - self.lam) * update
            else:
                column = self.routed.index(expert)
                y = y + self.lam * w_tokens[:, column:column + 1] * update
        return y


def load(path):
    return np.load(path).astype(np.float64)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--layer", type=int, required=True)
    parser.add_argument("--x", action="append", required=True)
    parser.add_argument("--h")
    parser.add_argument("--segments")
    parser.add_argument("--check", required=True)
    parser.add_argument("--int8-activations", action="store_true",
                        help="the model was compiled with --int8-activations: "
                        "GPTQ projections may also be off by the documented "
                        "bound of rounding activations to int8")
    args = parser.parse_args()

    layer = Layer(args.model_dir, args.layer)
    inputs, bare = {}, None
    for item in args.x:
        if "=" in item:
            proj, path = item.split("=", 1)
            inputs[proj] = load(path)
        else:
            bare = load(item)
    x_of = lambda name: inputs.get(name, bare)
    tokens = x_of(layer.projections[0]["name"]).shape[0]
    h = load(args.h) if args.h else bare

    w = w_tokens = None
    if layer.routed:
        w = layer.route(h)
        if layer.router.get("granularity", "token") == "sequence":
            lengths = [int(s) for s in args.segments.split(",")] if args.segments else [tokens]
            w_tokens = np.repeat(w, lengths, axis=0)
        else:
            w_tokens = w

    failures = 0
    results = [(p["name"], layer.project(p, x_of(p["name"]), w_tokens)) for p in layer.projections]
    allowances = {}
    if args.int8_activations:
        allowances = {p["name"]: layer.int8_allowance(p, x_of(p["name"]))
                      for p in layer.projections}
    if w is not None:
        results.append(("routing", w))
    for name, expected in results:
        got = np.load(os.path.join(args.check, name + ".npy"))
        if got.shape != expected.shape:
            print("%s: shape %s, expected %s" % (name, got.shape, expected.shape))
            failures += 1
            continue
        error = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        bound = 1e-3 * (1.0 + float(np.max(np.abs(expected))) if expected.size else 1.0)
        if name in allowances and expected.size:
            # Elementwise: SPEC's bound plus each output's own allowance.
            excess = np.abs(got - expected) - allowances[name]
            status = "ok" if float(np.max(excess)) <= bound else "MISMATCH"
            print("%s: max_abs_error=%.3g bound=%.3g + int8 allowance (max %.3g, "
                  "error/allowance max %.2f) %s"
                  % (name, error, bound, float(np.max(allowances[name])),
                     float(np.max(np.abs(got - expected) / np.maximum(allowances[name], 1e-30))),
                     status))
            failures += status != "ok"
            continue
        status = "ok" if error <= bound else "MISMATCH"
        failures += status != "ok"
        print("%s: max_abs_error=%.3g bound=%.3g %s" % (name, error, bound, status))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
