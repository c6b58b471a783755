# ===- _runtime.py - ctypes declarations of the runtime's C API -----------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""The C API of libatmoe_runtime.so (runtime/include/atmoe_rt/atmoe_rt.h),
declared for ctypes. Which library is loaded:

  1. the ``runtime`` argument of :func:`atmoe.load`;
  2. the ``ATMOE_RUNTIME`` environment variable (a path to the library);
  3. ``lib/libatmoe_runtime.so`` beside this package's ``python/`` directory
     in a build tree or bundle (``build/lib``, ``BUNDLE/lib``);
  4. ``libatmoe_runtime.so`` on the dynamic loader's search path.
"""

import ctypes
import os
import threading

_LIBRARY_NAME = "libatmoe_runtime.so"

c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_char_pp = ctypes.POINTER(ctypes.c_char_p)
c_float_p = ctypes.POINTER(ctypes.c_float)

# name: (result type, argument types); every status-returning call returns
# an int (atmoe_rt_status_t).
_SIGNATURES = {
    "atmoe_rt_last_error": (ctypes.c_char_p, []),
    "atmoe_rt_status_string": (ctypes.c_char_p, [ctypes.c_int]),
    "atmoe_rt_version": (ctypes.c_char_p, []),
    "atmoe_rt_model_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]),
    "atmoe_rt_model_close": (None, [ctypes.c_void_p]),
    "atmoe_rt_model_bind_weights": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
    "atmoe_rt_model_check_weights": (ctypes.c_int, [ctypes.c_void_p]),
    "atmoe_rt_model_get_info": (ctypes.c_int, [ctypes.c_void_p, c_char_pp, c_char_pp]),
    "atmoe_rt_model_get_num_layers": (ctypes.c_int, [ctypes.c_void_p, c_size_p]),
    "atmoe_rt_layer_get_index": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, c_int64_p]),
    "atmoe_rt_layer_get_num_projections": (ctypes.c_int,
                                           [ctypes.c_void_p, ctypes.c_size_t, c_size_p]),
    "atmoe_rt_layer_get_projection": (ctypes.c_int,
                                      [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                                       c_char_pp, c_int64_p, c_int64_p]),
    "atmoe_rt_layer_get_router": (ctypes.c_int,
                                  [ctypes.c_void_p, ctypes.c_size_t, c_int64_p, c_size_p,
                                   ctypes.POINTER(ctypes.c_int)]),
    "atmoe_rt_layer_get_expert_name": (ctypes.c_int,
                                       [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                                        c_char_pp]),
    "atmoe_rt_layer_forward": (ctypes.c_int,
                               [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64,
                                ctypes.c_size_t, ctypes.POINTER(c_float_p), c_float_p,
                                ctypes.c_size_t, c_int64_p, ctypes.POINTER(c_float_p),
                                c_float_p]),
}

_loaded = {}
_loading = threading.Lock()


def _candidates(explicit):
    if explicit:
        return [explicit]
    if os.environ.get("ATMOE_RUNTIME"):
        return [os.environ["ATMOE_RUNTIME"]]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    found = [os.path.join(here, "build", "lib", _LIBRARY_NAME),
             os.path.join(here, "lib", _LIBRARY_NAME)]
    return [path for path in found if os.path.exists(path)] + [_LIBRARY_NAME]


def library(explicit=None):
    """The runtime library, declared; loaded once per path."""
    errors = []
    for path in _candidates(explicit):
        with _loading:
            if path in _loaded:
                return _loaded[path]
            try:
                lib = ctypes.CDLL(path)
            except OSError as error:
                errors.append(str(error))
                continue
            for name, (restype, argtypes) in _SIGNATURES.items():
                function = getattr(lib, name)
                function.restype = restype
                function.argtypes = argtypes
            _loaded[path] = lib
            return lib
    raise OSError("cannot load the atmoe runtime (set ATMOE_RUNTIME to the path of "
                  "libatmoe_runtime.so, or pass runtime=...): " + "; ".join(errors))
