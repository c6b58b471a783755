#!/usr/bin/env python3
# ===- hf_checkpoint.py - a package's base as a Hugging Face checkpoint ----===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Rewrites a model package written by model_package.py (Llama-style
projection names) so that its base weights come from a Hugging Face model
directory, as users have them (issue 16):

  hf_checkpoint.py PKG [--dir hf] [--shards N] [--dtype bf16] [--keep-layers]
                   [--set KEY=JSON ...]

  - PKG/DIR/config.json: hidden_size, intermediate_size, num_hidden_layers,
    num_attention_heads, num_key_value_heads (from the description's
    "_gen": {"heads", "kv_heads"}), torch_dtype, architectures;
  - the base tensors (layers.{i}.{proj}.weight and .bias) renamed to
    model.layers.{i}.self_attn.{q,k,v,o}_proj.* and model.layers.{i}.mlp.
    {gate,up,down}_proj.*, with an embedding and norms beside them, in
    model.safetensors or N shards with model.safetensors.index.json;
  - PKG/weights.safetensors keeps the rest (router, model.json experts);
  - model.json gets "base": {"huggingface": DIR} and loses its layers (all
    of config.json's, with every projection) or, with --keep-layers, the
    projections' sizes and bias flags (config.json and the checkpoint say).

--set edits config.json (e.g. --set head_dim=4), to test disagreements;
--module PROJ=TEMPLATE stores PROJ under another module name ("{i}" for the
layer, as another architecture would) and declares it in model.json's
"base": {"modules": ...}.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_package  # noqa: E402
import reference  # noqa: E402

MODULES = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
           "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


SUFFIXES = ("weight", "bias", "qweight", "qzeros", "scales", "g_idx")


def hf_name(name, modules):
    """layers.{i}.{proj}.{weight,bias} (or a GPTQ tensor) -> the checkpoint's
    name, or None."""
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "layers" and parts[2] in MODULES and \
            parts[3] in SUFFIXES:
        if parts[2] in modules:
            return modules[parts[2]].replace("{i}", parts[1]) + "." + parts[3]
        return "model.layers.%s.%s.%s.%s" % (parts[1], MODULES[parts[2]], parts[2], parts[3])
    return None


def config_of(model, gen):
    layer = model["layers"][0]
    sizes = {p["name"]: (p["in_features"], p["out_features"]) for p in layer["projections"]}
    heads = gen.get("heads", 1)
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": layer["hidden_size"], "intermediate_size": sizes["gate_proj"][1],
        "num_hidden_layers": len(model["layers"]), "num_attention_heads": heads,
        "num_key_value_heads": gen.get("kv_heads", heads), "rms_norm_eps": 1e-5,
        "torch_dtype": "float32", "vocab_size": 16,
    }


def write_checkpoint(directory, tensors, shards, dtype):
    os.makedirs(directory, exist_ok=True)
    names = list(tensors)
    dtypes = {name: "i32" if np.issubdtype(np.asarray(tensors[name]).dtype, np.integer)
              else dtype for name in names}
    if shards == 1:
        model_package.write_safetensors(os.path.join(directory, "model.safetensors"),
                                        tensors, dtypes)
        return
    weight_map = {}
    for k in range(shards):
        shard = "model-%05d-of-%05d.safetensors" % (k + 1, shards)
        part = {n: tensors[n] for n in names[k::shards]}
        model_package.write_safetensors(os.path.join(directory, shard), part, dtypes)
        weight_map.update({n: shard for n in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package")
    parser.add_argument("--dir", default="hf")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--dtype", default="f32")
    parser.add_argument("--keep-layers", action="store_true")
    parser.add_argument("--gen", default="{}", help="the description's _gen, as JSON")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--module", action="append", default=[])
    args = parser.parse_args()
    modules = dict(item.split("=", 1) for item in args.module)

    model_path = os.path.join(args.package, "model.json")
    with open(model_path) as f:
        model = json.load(f)
    base, rest = {}, {}
    for file in model["weights"]:
        for name, array in reference.read_safetensors(os.path.join(args.package, file)).items():
            (base if hf_name(name, modules) else rest)[name] = array
    checkpoint = {"model.embed_tokens.weight": np.zeros((16, model["layers"][0]["hidden_size"]))}
    for name, array in base.items():
        checkpoint[hf_name(name, modules)] = array
    config = config_of(model, json.loads(args.gen))
    # A GPTQ package (atmoe-quantize): its "quantization" is the checkpoint's
    # quantization_config.
    if "quantization" in model:
        config["quantization_config"] = dict(model.pop("quantization"))
        config["quantization_config"]["quant_method"] = \
            config["quantization_config"].pop("method", "gptq")
    for item in args.set:
        key, value = item.split("=", 1)
        config[key] = json.loads(value)
    write_checkpoint(os.path.join(args.package, args.dir), checkpoint, args.shards, args.dtype)
    with open(os.path.join(args.package, args.dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    model_package.write_safetensors(os.path.join(args.package, "weights.safetensors"), rest)
    model["weights"] = ["weights.safetensors"]
    model["base"] = {"huggingface": args.dir}
    if modules:
        model["base"]["modules"] = modules
    if args.keep_layers:
        for layer in model["layers"]:
            for projection in layer["projections"]:
                for key in ("in_features", "out_features", "bias"):
                    projection.pop(key, None)
    else:
        del model["layers"]
    with open(model_path, "w") as f:
        json.dump(model, f, indent=1)


if __name__ == "__main__":
    main()
