# ===- peft_rules.py - which modules a PEFT LoRA config adapts --------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""PEFT's rules for a LoraConfig (adapter_config.json as a dict), written from
PEFT's documentation and behaviour with Python's own `re`, independently of
atmoe's C++ importer: the test generator and the float64 reference use them,
so that what atmoe selects is checked against Python's regex semantics.

    targets(config, module)     -> bool: does PEFT put a LoRA layer there
    rank_alpha(config, module)  -> (r, lora_alpha) after the patterns

`module` is the base model's module name, e.g. "model.layers.3.self_attn.q_proj".
"""

import re


def _listed(names, module):
    # A list entry names the module exactly or as a dotted suffix.
    return any(module == name or module.endswith("." + name) for name in names)


def _excluded(config, module):
    exclude = config.get("exclude_modules")
    if not exclude:
        return False
    if isinstance(exclude, str):
        return re.fullmatch(exclude, module) is not None
    return _listed(exclude, module)


def _layer_index(config, module):
    patterns = config.get("layers_pattern")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        match = re.match(r".*\.[^.]*\.(\d+)\.", module)
    else:
        match = None
        for pattern in patterns:
            match = re.match(r".*\.%s\.(\d+)\." % pattern, module)
            if match:
                break
    return int(match.group(1)) if match else None


def targets(config, module):
    if _excluded(config, module):
        return False
    target = config.get("target_modules")
    if isinstance(target, str):
        if target.lower() == "all-linear":
            return True
        return re.fullmatch(target, module) is not None
    if module in target:
        return True
    if not _listed(target, module):
        return False
    layers = config.get("layers_to_transform")
    if layers is None or layers == []:
        return True
    index = _layer_index(config, module)
    if index is None:
        return False
    return index == layers if isinstance(layers, int) else index in layers


def _first_match(patterns, module, default):
    # The first key, in file order, for which (.*\.)?(key)$ matches.
    for key, value in (patterns or {}).items():
        if re.match(r"(.*\.)?(%s)$" % key, module):
            return value
    return default


def rank_alpha(config, module):
    rank = _first_match(config.get("rank_pattern"), module, config["r"])
    alpha = _first_match(config.get("alpha_pattern"), module, config["lora_alpha"])
    return rank, alpha


def scale(config, module):
    """The factor on B A x: lora_alpha / r, or / sqrt(r) with rsLoRA."""
    rank, alpha = rank_alpha(config, module)
    return alpha / (rank**0.5 if config.get("use_rslora") else rank)
