# -*- Python -*-
# lit configuration of the atmoe regression tests.

import os
import stat

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "ATMOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py", "Unit", "Inputs", "helpers", "tools"]
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
    [ToolSubst("atmoe-compile", unresolved="fatal"),
     ToolSubst("atmoe-package", unresolved="fatal"),
     ToolSubst("atmoe-quantize", unresolved="fatal")], [config.atmoe_tools_dir])
llvm_config.add_tool_substitutions(["llvm-nm", "llvm-objcopy"], [config.llvm_tools_dir])
# mlir-runner executes lowered test programs (test/Integration/GPUEmulation)
# with MLIR's C runner utilities for printing.
llvm_config.add_tool_substitutions(
    [ToolSubst("mlir-runner", unresolved="fatal")], [config.llvm_tools_dir])
config.substitutions.append(
    ("%mlir_c_runner_utils",
     os.path.join(os.path.dirname(config.llvm_tools_dir), "lib",
                  "libmlir_c_runner_utils.so")))
# atmoe-run and the runtime's hand-written test models (runtime/test), which
# are built into the build's lib directory.
llvm_config.add_tool_substitutions(
    [ToolSubst("atmoe-run", unresolved="fatal")], [config.atmoe_tools_dir])
# Models split over processes run under MPICH's launcher; -launcher fork keeps
# every process on this machine (no ssh), as CI's loopback job does.
config.substitutions.append(("%mpiexec", config.mpiexec + " -launcher fork"))
config.substitutions.append(("%atmoe_lib_dir", config.atmoe_obj_root + "/lib"))
llvm_config.add_tool_substitutions(
    [ToolSubst("atmoe-stress-forward", unresolved="fatal")],
    [config.atmoe_tools_dir])
# End-to-end tests run compiled models through atmoe-run.
config.substitutions.append(
    ("%atmoe_run", os.path.join(config.atmoe_tools_dir, "atmoe-run")))
# Instrumented builds (docs/Testing.md): features for REQUIRES/UNSUPPORTED,
# and in the ASan + UBSan build the fuzz targets, linked to replay the
# checked-in corpora (test/fuzz/).
#
# Every sanitizer report aborts (abort_on_error): a report in a test that
# expects a failing exit (`not tool ...`) must still fail the test, and
# `not` only treats a crash, not exit code 1, as unexpected.
# allow_user_poisoning=0: see fuzz/SanitizerOptions.cpp (false reports where
# atmoe code and the uninstrumented libMLIR.so share an allocator).
# Options from the environment are appended, so they win.
def sanitizer_options(name, defaults):
    config.environment[name] = ":".join(
        [defaults] + ([os.environ[name]] if os.environ.get(name) else []))

if config.atmoe_enable_sanitizers:
    config.available_features.add("asan")
    sanitizer_options("ASAN_OPTIONS",
                      "abort_on_error=1:allow_user_poisoning=0:detect_leaks=1")
    sanitizer_options("UBSAN_OPTIONS", "abort_on_error=1:print_stacktrace=1")
    llvm_config.add_tool_substitutions(
        [ToolSubst("atmoe-fuzz-" + t, unresolved="fatal")
         for t in ("safetensors", "npy", "importer", "dialect", "pyregex",
                   "outputs")],
        [config.atmoe_tools_dir])
# "mknod": this user may create device nodes (root with CAP_MKNOD), so tests
# can make a private one instead of touching /dev.
def can_make_device_nodes():
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        try:
            os.mknod(os.path.join(scratch, "null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            return True
        except OSError:
            return False

if can_make_device_nodes():
    config.available_features.add("mknod")

if config.atmoe_enable_tsan:
    config.available_features.add("tsan")
    sanitizer_options("TSAN_OPTIONS", "abort_on_error=1:halt_on_error=1")

# --int8-activations runs on hosts with VNNI dot products (AVX512-VNNI on an
# AVX-512 CPU, AVX-VNNI on an AVX2 one), as the CPU target decides.
def host_has_vnni():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                          if line.startswith("flags")), [])
    except OSError:
        return False
    if "avx512f" in flags:
        return "avx512_vnni" in flags
    return "avx_vnni" in flags

if host_has_vnni():
    config.available_features.add("vnni")

# GPU targets (docs/targets.md). Compiling for nvptx needs ptxas (cubin
# inside the fatbin); running needs the CUDA support library, the NVIDIA
# driver and a device. Tests that need a GPU are UNSUPPORTED elsewhere.
import shutil
if shutil.which("ptxas") or os.path.exists("/usr/local/cuda/bin/ptxas"):
    config.available_features.add("ptxas")
if config.atmoe_has_cuda_support:
    config.available_features.add("cuda-support")

def cuda_device_present():
    import ctypes
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 \
        and count.value > 0

if config.atmoe_has_cuda_support and cuda_device_present():
    config.available_features.add("cuda-device")
