#!/usr/bin/env python3
# ===- torch_swap.py - compiled AT-MoE projections inside a torch module --===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""A small PyTorch module with LoRA-MoE projections written in torch (a
frozen base linear per projection, LoRA experts mixed by a softmax router,
SPEC §2), then the same module with those projections swapped for the layer
atmoe compiled, checked against the module's own output.

  PYTHONPATH=python ATMOE_RUNTIME=build/lib/libatmoe_runtime.so \\
      /usr/bin/python3 examples/python/torch_swap.py MODEL.so PKG [--tokens T]

PKG is a model package with one layer (index 0), a flat softmax router and
biasless projections (e.g. test/helpers/model_package.py --preset softmax
--gen-set 'router={"kind": "softmax"}'); MODEL.so is atmoe-compile PKG.
"""

import argparse
import json
import os
import struct

import numpy as np
import torch

import atmoe


def read_safetensors(path):
    """name -> float32 torch tensor (the header, then little-endian data)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    types = {"F32": np.float32, "F16": np.float16}
    return {name: torch.from_numpy(np.frombuffer(
                data[info["data_offsets"][0]:info["data_offsets"][1]],
                dtype=types[info["dtype"]]).reshape(info["shape"]).astype(np.float32))
            for name, info in header.items() if name != "__metadata__"}


class TorchLoraMoe(torch.nn.Module):
    """y_p = W_p x + sum_e softmax(W_r h + b_r)_e (alpha_e / r_e) B_pe A_pe x
    for each projection p: what atmoe compiles, in torch."""

    def __init__(self, package):
        super().__init__()
        with open(os.path.join(package, "model.json")) as f:
            self.spec = json.load(f)
        weights = {}
        for name in self.spec["weights"]:
            weights.update(read_safetensors(os.path.join(package, name)))
        self.experts = [e for g in self.spec["groups"] for e in g["experts"]]
        self.router = torch.nn.Linear(self.spec["layers"][0]["hidden_size"], len(self.experts))
        self.router.weight.data = weights["layers.0.router.expert.weight"]
        self.router.bias.data = weights["layers.0.router.expert.bias"]
        self.names = [p["name"] for p in self.spec["layers"][0]["projections"]]
        self.base = torch.nn.ModuleDict()
        self.adapters = {}
        for name in self.names:
            self.base[name] = torch.nn.Linear(1, 1, bias=False)
            self.base[name].weight.data = weights["layers.0.%s.weight" % name]
            self.adapters[name] = [
                (weights["layers.0.%s.lora_A.%s.weight" % (name, e)],
                 weights["layers.0.%s.lora_B.%s.weight" % (name, e)],
                 self.spec["experts"][e]["alpha"] / self.spec["experts"][e]["rank"])
                for e in self.experts]

    def forward(self, x, h):
        routing = torch.softmax(self.router(h), dim=-1)
        ys = {}
        for name in self.names:
            y = self.base[name](x)
            for e, (a, b, scale) in enumerate(self.adapters[name]):
                y = y + routing[:, e:e + 1] * scale * ((x @ a.T) @ b.T)
            ys[name] = y
        return ys, routing


class Block(torch.nn.Module):
    """A stand-in for a transformer block: its LoRA-MoE projections, then
    something of its own on their outputs."""

    def __init__(self, package):
        super().__init__()
        self.lora_moe = TorchLoraMoe(package)

    def forward(self, x, h):
        ys, routing = self.lora_moe(x, h)
        return torch.tanh(torch.stack(list(ys.values())).sum(dim=0)), routing


class CompiledProjections(torch.nn.Module):
    """The layer's projections and router, run by the compiled model (no
    autograd: inference only)."""

    def __init__(self, model, layer):
        super().__init__()
        self.model, self.layer = model, layer
        self.calls = 0

    def forward(self, x, h):
        self.calls += 1
        ys, routing = self.model.forward(self.layer, x.detach().numpy(), h=h.detach().numpy())
        return {name: torch.from_numpy(y) for name, y in ys.items()}, torch.from_numpy(routing)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("compiled")
    parser.add_argument("package")
    parser.add_argument("--tokens", type=int, default=6)
    args = parser.parse_args()

    block = Block(args.package)
    d = block.lora_moe.spec["layers"][0]["hidden_size"]
    x = torch.randn(args.tokens, d, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = block(x, x)
        compiled = CompiledProjections(atmoe.load(args.compiled, args.package), 0)
        block.lora_moe = compiled
        got = block(x, x)
    assert compiled.calls == 1, "the compiled projections did not run"
    failed = False
    for what, ours, theirs in (("output", got[0], expected[0]),
                               ("routing", got[1], expected[1])):
        error = float((ours - theirs).abs().max())
        bound = 1e-3 * (1 + float(theirs.abs().max()))
        failed |= error > bound
        print("%s: torch module vs. compiled projections: max_abs_error=%.3g bound=%.3g %s"
              % (what, error, bound, "MISMATCH" if error > bound else "ok"))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
