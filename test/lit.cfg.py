# -*- Python -*-
# lit configuration of the atmoe regression tests.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "ATMOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py", "Unit", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.atmoe_obj_root, "test")

config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

config.substitutions.append(("%atmoe_src_root", config.atmoe_src_root))
# Test model packages are written with numpy, which Debian installs for
# /usr/bin/python3; lit itself may run under another interpreter, so this
# replaces the default %python.
config.substitutions = [s for s in config.substitutions if s[0] != "%python"]
config.substitutions.append(("%python", "/usr/bin/python3"))

tools = [ToolSubst("atmoe-opt", unresolved="fatal")]
tools.append(ToolSubst("atmoe-translate", unresolved="fatal"))
llvm_config.add_tool_substitutions(tools, [config.atmoe_tools_dir])
llvm_config.add_tool_substitutions(
    [ToolSubst("atmoe-compile", unresolved="fatal")], [config.atmoe_tools_dir])
llvm_config.add_tool_substitutions(["llvm-nm"], [config.llvm_tools_dir])
# atmoe-run and the runtime's hand-written test models (runtime/test), which
# are built into the build's lib directory.
llvm_config.add_tool_substitutions(
    [ToolSubst("atmoe-run", unresolved="fatal")], [config.atmoe_tools_dir])
config.substitutions.append(("%atmoe_lib_dir", config.atmoe_obj_root + "/lib"))
# End-to-end tests run compiled models through atmoe-run.
config.substitutions.append(
    ("%atmoe_run", os.path.join(config.atmoe_tools_dir, "atmoe-run")))
