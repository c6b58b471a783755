# ===- __init__.py - the atmoe runtime from Python -------------------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Run models compiled by atmoe-compile from Python, with NumPy arrays.

    import atmoe
    model = atmoe.load("model.so", "PKG")           # open, then bind PKG's weights
    ys, routing = model.forward(layer=0, x=x)       # x: T x d_in float32
    ys["q_proj"]                                    # T x d_out float32

A thin layer over the runtime's C API (libatmoe_runtime.so, through ctypes:
nothing is compiled to use it); see docs/Python.md.
"""

import collections
import collections.abc
import ctypes
import threading

import numpy as np

from . import _runtime

__all__ = ["AtmoeError", "Model", "Projection", "Router", "load", "runtime_version"]

Projection = collections.namedtuple("Projection", "name d_in d_out")
Projection.__doc__ = "A projection of a layer: its name and widths."
Router = collections.namedtuple("Router", "d_h experts granularity")
Router.__doc__ = ("A layer's router: input width, routed expert names (the routing "
                  "columns) and granularity ('token' or 'sequence').")

_STATUS_OK = 0
_GRANULARITIES = {0: "token", 1: "sequence"}


class AtmoeError(RuntimeError):
    """A runtime call failed. ``status`` is the runtime's status name
    ('invalid argument', 'input error', 'internal error'); the message is the
    runtime's, naming the file, layer, tensor or argument at fault."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def runtime_version(runtime=None):
    """The version of the runtime library that would be loaded."""
    return _runtime.library(runtime).atmoe_rt_version().decode()


def load(compiled, package=None, runtime=None):
    """Opens the compiled model at ``compiled`` and, if ``package`` is given,
    binds that model package's weights."""
    model = Model(compiled, runtime=runtime)
    if package is not None:
        try:
            model.bind(package)
        except BaseException:
            model.close()
            raise
    return model


class _SharedLock:
    """Forward calls share the model; bind and close need it alone (the C
    API's rule: they must not overlap forward calls)."""

    def __init__(self):
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False

    def shared(self):
        return _Held(self, exclusive=False)

    def exclusive(self):
        return _Held(self, exclusive=True)

    def acquire(self, exclusive):
        with self._condition:
            self._condition.wait_for(
                lambda: not self._writing and (not exclusive or self._readers == 0))
            if exclusive:
                self._writing = True
            else:
                self._readers += 1

    def release(self, exclusive):
        with self._condition:
            if exclusive:
                self._writing = False
            else:
                self._readers -= 1
            self._condition.notify_all()


class _Held:
    def __init__(self, lock, exclusive):
        self._lock, self._exclusive = lock, exclusive

    def __enter__(self):
        self._lock.acquire(self._exclusive)

    def __exit__(self, *exc):
        self._lock.release(self._exclusive)


class Model:
    """A compiled model, with or without bound weights. Layers are named by
    their package index (``"index"`` in model.json, atmoe-run's --layer)."""

    def __init__(self, compiled, runtime=None):
        self._lib = _runtime.library(runtime)
        self._lock = _SharedLock()
        handle = ctypes.c_void_p()
        self._check(self._lib.atmoe_rt_model_open(_path(compiled), ctypes.byref(handle)))
        self._handle = handle
        self._layers = self._describe_layers()

    # -- lifetime ----------------------------------------------------------

    def close(self):
        """Releases the model, its weights and the library. Idempotent."""
        with self._lock.exclusive():
            if getattr(self, "_handle", None) is not None:
                self._lib.atmoe_rt_model_close(self._handle)
                self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            self._lib.atmoe_rt_model_close(self._handle)
            self._handle = None

    def bind(self, package):
        """Binds the weights of model package ``package`` (a directory): the
        one the model was compiled from, or one of the same structure with
        other weights. A package whose structure or hyper-parameters differ
        is an AtmoeError naming the first difference; the previous weights
        then stay bound."""
        with self._lock.exclusive():
            self._check(self._lib.atmoe_rt_model_bind_weights(self._open(), _path(package)))

    def check_weights(self):
        """Raises AtmoeError if a bound weight file changed in place."""
        with self._lock.shared():
            self._check(self._lib.atmoe_rt_model_check_weights(self._open()))

    # -- queries -----------------------------------------------------------

    @property
    def name(self):
        name = ctypes.c_char_p()
        self._check(self._lib.atmoe_rt_model_get_info(self._open(), ctypes.byref(name), None))
        return name.value.decode()

    @property
    def layers(self):
        """The package indices of the layers, in the compiled order."""
        return tuple(self._layers)

    def projections(self, layer):
        """The projections of ``layer`` (in the order of forward's outputs)."""
        return self._layer(layer)["projections"]

    def experts(self, layer):
        """The routed experts of ``layer``: the columns of its routing."""
        return self._layer(layer)["router"].experts

    def router(self, layer):
        """The router of ``layer``, or None for a layer without routed experts."""
        router = self._layer(layer)["router"]
        return router if router.d_h else None

    # -- running -----------------------------------------------------------

    def forward(self, layer, x, h=None, segments=None):
        """Runs ``layer`` on T tokens and returns ``(ys, routing)``.

        ``x`` is one T x d_in array for every projection, or a mapping from
        projection name to its input. ``h`` is the router input (T x d_h, or
        S x d_h at sequence granularity); it defaults to ``x`` when that is a
        single array of width d_h. ``segments`` lists the S sequence lengths
        (summing to T; default one sequence). Arrays are float32, row-major:
        others of a floating type are converted (a copy), the rest rejected.

        ``ys`` maps each projection name to its T x d_out float32 output;
        ``routing`` is T x E (S x E) float32, or None without a router. Calls
        may run concurrently from several threads."""
        spec = self._layer(layer)
        inputs = _projection_inputs(spec["projections"], x, layer)
        tokens = inputs[0].shape[0]
        router = spec["router"]
        h = _router_input(router, h, x, layer) if router.d_h else None
        lengths = None if segments is None else np.ascontiguousarray(segments, dtype=np.int64)
        ys = collections.OrderedDict(
            (p.name, np.empty((tokens, p.d_out), np.float32)) for p in spec["projections"])
        routing = None
        if router.d_h:
            rows = tokens if router.granularity == "token" else (
                1 if lengths is None else len(lengths))
            routing = np.empty((rows, len(router.experts)), np.float32)
        self._run(spec["position"], tokens, inputs, h, lengths, list(ys.values()), routing)
        return ys, routing

    def _run(self, position, tokens, inputs, h, lengths, outputs, routing):
        x_pointers = (_runtime.c_float_p * len(inputs))(*map(_pointer, inputs))
        y_pointers = (_runtime.c_float_p * len(outputs))(*map(_pointer, outputs))
        with self._lock.shared():
            status = self._lib.atmoe_rt_layer_forward(
                self._open(), position, tokens, len(inputs), x_pointers,
                None if h is None else _pointer(h),
                0 if lengths is None else len(lengths),
                None if lengths is None else lengths.ctypes.data_as(_runtime.c_int64_p),
                y_pointers, None if routing is None else _pointer(routing))
            self._check(status)

    # -- helpers -----------------------------------------------------------

    def _open(self):
        if getattr(self, "_handle", None) is None:
            raise ValueError("the model is closed")
        return self._handle

    def _check(self, status):
        if status != _STATUS_OK:
            message = self._lib.atmoe_rt_last_error().decode(errors="replace")
            name = self._lib.atmoe_rt_status_string(status).decode()
            raise AtmoeError(name, message)

    def _layer(self, layer):
        try:
            return self._layers[layer]
        except (KeyError, TypeError):
            raise KeyError("the model has no layer %r (it has %s)" % (
                layer, ", ".join(map(str, self._layers)))) from None

    def _describe_layers(self):
        count = ctypes.c_size_t()
        self._check(self._lib.atmoe_rt_model_get_num_layers(self._handle, ctypes.byref(count)))
        layers = collections.OrderedDict()
        for position in range(count.value):
            index = ctypes.c_int64()
            self._check(self._lib.atmoe_rt_layer_get_index(self._handle, position,
                                                           ctypes.byref(index)))
            layers[index.value] = {"position": position,
                                   "projections": self._describe_projections(position),
                                   "router": self._describe_router(position)}
        return layers

    def _describe_projections(self, position):
        count = ctypes.c_size_t()
        self._check(self._lib.atmoe_rt_layer_get_num_projections(self._handle, position,
                                                                 ctypes.byref(count)))
        projections = []
        for p in range(count.value):
            name, d_in, d_out = ctypes.c_char_p(), ctypes.c_int64(), ctypes.c_int64()
            self._check(self._lib.atmoe_rt_layer_get_projection(
                self._handle, position, p, ctypes.byref(name), ctypes.byref(d_in),
                ctypes.byref(d_out)))
            projections.append(Projection(name.value.decode(), d_in.value, d_out.value))
        return tuple(projections)

    def _describe_router(self, position):
        d_h, experts, granularity = ctypes.c_int64(), ctypes.c_size_t(), ctypes.c_int()
        self._check(self._lib.atmoe_rt_layer_get_router(
            self._handle, position, ctypes.byref(d_h), ctypes.byref(experts),
            ctypes.byref(granularity)))
        names = []
        for e in range(experts.value):
            name = ctypes.c_char_p()
            self._check(self._lib.atmoe_rt_layer_get_expert_name(self._handle, position, e,
                                                                 ctypes.byref(name)))
            names.append(name.value.decode())
        return Router(d_h.value, tuple(names), _GRANULARITIES.get(granularity.value, "token"))


def _path(path):
    return str(path).encode()


def _pointer(array):
    return array.ctypes.data_as(_runtime.c_float_p)


def _as_rows(value, width, what):
    """``value`` as a C-contiguous float32 ? x width array (no copy when it
    already is one)."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError("%s: expected a floating-point array, got %s" % (what, array.dtype))
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError("%s: expected shape (T, %d), got %s" % (what, width, array.shape))
    return np.ascontiguousarray(array, dtype=np.float32)


def _projection_inputs(projections, x, layer):
    if isinstance(x, collections.abc.Mapping):
        names = ", ".join(p.name for p in projections)
        unknown = sorted(map(str, set(x) - {p.name for p in projections}))
        if unknown:
            raise KeyError("layer %s: x names %s, not a projection of the layer (it has %s)"
                           % (layer, ", ".join(unknown), names))
        missing = [p.name for p in projections if p.name not in x]
        if missing:
            raise KeyError("layer %s: x has no input for %s (the layer has %s)"
                           % (layer, ", ".join(missing), names))
        inputs = [_as_rows(x[p.name], p.d_in, "layer %s: x[%r]" % (layer, p.name))
                  for p in projections]
    else:
        inputs = [_as_rows(x, p.d_in, "layer %s: x (for %s)" % (layer, p.name))
                  for p in projections]
    rows = {array.shape[0] for array in inputs}
    if len(rows) != 1:
        raise ValueError("layer %s: the projection inputs have different token counts %s"
                         % (layer, sorted(rows)))
    return inputs


def _router_input(router, h, x, layer):
    if h is None:
        if isinstance(x, collections.abc.Mapping):
            raise ValueError("layer %s has a router: pass h (the router input, width %d)"
                             % (layer, router.d_h))
        h = x
    return _as_rows(h, router.d_h, "layer %s: h" % layer)
