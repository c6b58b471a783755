/*===- atmoe_rt.h - C API of the atmoe runtime --------------------*- C -*-===*\
|*                                                                            *|
|* Part of the atmoe project, under the Apache License v2.0 with LLVM         *|
|* Exceptions.                                                                *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* The runtime opens a model compiled by atmoe-compile (a shared library     *|
|* with a manifest in its .atmoe_manifest section and one                     *|
|* `atmoe_entry_<function>` per layer, see docs/RuntimeABI.md), binds the     *|
|* weights of a model package to it and runs its layers on caller-owned f32   *|
|* row-major buffers. docs/Runtime.md has the full description and an         *|
|* example.                                                                   *|
|*                                                                            *|
|* Conventions: every function that can fail returns an atmoe_rt_status_t;   *|
|* on failure atmoe_rt_last_error() describes it. Layers, projections and     *|
|* experts are addressed by their position (0-based) in the model; a layer's  *|
|* `index` from the model package is mapped to its position by                *|
|* atmoe_rt_model_find_layer. Strings returned by the runtime belong to the   *|
|* model and stay valid until atmoe_rt_model_close.                           *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef ATMOE_RT_ATMOE_RT_H
#define ATMOE_RT_ATMOE_RT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define ATMOE_RT_API __attribute__((visibility("default")))
#else
#define ATMOE_RT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// Result of every fallible runtime call.
typedef enum atmoe_rt_status {
  /// Success.
  ATMOE_RT_OK = 0,
  /// The caller broke the API contract: a NULL handle or pointer, a position
  /// out of range, num_tokens < 1, segments that are negative or do not sum to
  /// num_tokens, a forward before weights were bound.
  ATMOE_RT_INVALID_ARGUMENT = 1,
  /// A file is missing or malformed: the compiled model (not a shared library,
  /// no or a bad manifest, a missing entry point) or the model package (a
  /// missing or bad safetensors file, a missing tensor, a wrong dtype or
  /// shape).
  ATMOE_RT_INPUT_ERROR = 2,
  /// A failure of the runtime itself (a bug or exhausted resources).
  ATMOE_RT_INTERNAL_ERROR = 3,
} atmoe_rt_status_t;

/// How a layer's router input is indexed.
typedef enum atmoe_rt_granularity {
  /// One router input row per token: h and routing have T rows.
  ATMOE_RT_GRANULARITY_TOKEN = 0,
  /// One router input row per sequence: h and routing have S rows.
  ATMOE_RT_GRANULARITY_SEQUENCE = 1,
} atmoe_rt_granularity_t;

/// An opened compiled model, with or without bound weights.
typedef struct atmoe_rt_model atmoe_rt_model_t;

/// The message of the last call that failed on the calling thread (a single
/// line that names the file, layer, tensor or argument at fault), or "" if
/// none failed yet. Successful calls leave it unchanged. The string is valid
/// until the next failing call on the same thread.
ATMOE_RT_API const char *atmoe_rt_last_error(void);

/// A constant name for `status`: "ok", "invalid argument", "input error",
/// "internal error", and "unknown status" for any other value. It takes an
/// int so that any value is defined behaviour (an enum outside its
/// enumerators' range is not, in C++).
ATMOE_RT_API const char *atmoe_rt_status_string(int status);

/// The version of this runtime ("0.5.0"), which is also the version of the
/// atmoe-compile it belongs to.
ATMOE_RT_API const char *atmoe_rt_version(void);

/// The manifest version this runtime reads (the N of "atmoe-compiled/N");
/// atmoe_rt_model_open rejects a model of another version and says whether
/// the model or the runtime is the older one.
ATMOE_RT_API int atmoe_rt_manifest_version(void);

/*===----------------------------------------------------------------------===*\
|* Opening, binding, closing                                                  *|
\*===----------------------------------------------------------------------===*/

/// Reads and validates the manifest of the compiled model at `path`, loads
/// the device support it needs, loads the model (dlopen with RTLD_NOW |
/// RTLD_LOCAL) and resolves the entry point of every layer. On
/// success stores a new handle in `*out_model` (release it with
/// atmoe_rt_model_close); on failure stores NULL.
ATMOE_RT_API atmoe_rt_status_t
atmoe_rt_model_open(const char *path, atmoe_rt_model_t **out_model);

/// Releases `model`, its bound weights and the library. NULL is ignored.
ATMOE_RT_API void atmoe_rt_model_close(atmoe_rt_model_t *model);

/// Binds the weights of the model package in directory `package_dir`: every
/// weight argument of every layer is looked up in its safetensors file
/// (mapped into memory, each file opened once) and checked against the
/// manifest (identical shape; the dtype the model was compiled for, or F16 or
/// BF16 where it was compiled for F32). Tensors stored in the compiled type
/// and aligned to their element size are used in place, computed from the
/// mapped bytes; others are widened to f32 or realigned once, here.
/// Binding again replaces the previous weights; on failure the previous
/// weights (if any) stay bound.
ATMOE_RT_API atmoe_rt_status_t
atmoe_rt_model_bind_weights(atmoe_rt_model_t *model, const char *package_dir);

/// Checks that no bound weight file changed in place since it was bound
/// (same inode, other size or modification time): the runtime computes from
/// the mapped files, so an overwritten file alters the numbers mid-flight and
/// a truncated one faults (docs/Runtime.md). A file replaced by renaming a
/// new one over it is fine: the bound one stays mapped. ATMOE_RT_INPUT_ERROR
/// naming the first changed file; ATMOE_RT_INVALID_ARGUMENT if no weights
/// are bound.
ATMOE_RT_API atmoe_rt_status_t
atmoe_rt_model_check_weights(const atmoe_rt_model_t *model);

/// How the bound weights are held: tensors used in place in the file mapping,
/// buffers made at bind time (widened, realigned or stacked tensors). Either
/// pointer may be NULL. ATMOE_RT_INVALID_ARGUMENT if no weights are bound.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_model_get_weight_counts(
    const atmoe_rt_model_t *model, size_t *num_in_place, size_t *num_converted);

/*===----------------------------------------------------------------------===*\
|* Queries                                                                    *|
\*===----------------------------------------------------------------------===*/

/// The manifest's "model" (model name) and "target" (target triple) entries,
/// "" where absent. Either pointer may be NULL.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_model_get_info(
    const atmoe_rt_model_t *model, const char **name, const char **target);

/// This process's place in the MPI job of a model compiled with
/// --parallel=tensor:N or expert:N (docs/Distributed.md): its rank in
/// MPI_COMM_WORLD and the number of processes; 0 and 1 for a one-process
/// model. Either pointer may be NULL.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_model_get_process(
    const atmoe_rt_model_t *model, int *rank, int *num_processes);

/// Ends every process of the MPI job of a model split over processes
/// (MPI_Abort with `exit_code`), after a failure on this one that the others,
/// waiting in a collective, would never learn of. Returns only for a
/// one-process model (or a NULL one), doing nothing.
ATMOE_RT_API void atmoe_rt_model_abort_job(const atmoe_rt_model_t *model,
                                           int exit_code);

/// The number of layers of `model`.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_model_get_num_layers(
    const atmoe_rt_model_t *model, size_t *num_layers);

/// The position of the layer whose package index is `index`;
/// ATMOE_RT_INVALID_ARGUMENT if the model has no such layer.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_model_find_layer(
    const atmoe_rt_model_t *model, int64_t index, size_t *layer);

/// The package index of the layer at position `layer`.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_layer_get_index(
    const atmoe_rt_model_t *model, size_t layer, int64_t *index);

/// The number of projections of a layer (the order of x and y in forward).
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_layer_get_num_projections(
    const atmoe_rt_model_t *model, size_t layer, size_t *num_projections);

/// Name, input width d_in and output width d_out of one projection. Any of
/// the output pointers may be NULL.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_layer_get_projection(
    const atmoe_rt_model_t *model, size_t layer, size_t projection,
    const char **name, int64_t *d_in, int64_t *d_out);

/// The position of the projection called `name`; ATMOE_RT_INVALID_ARGUMENT if
/// the layer has none.
ATMOE_RT_API atmoe_rt_status_t
atmoe_rt_layer_find_projection(const atmoe_rt_model_t *model, size_t layer,
                               const char *name, size_t *projection);

/// The router of a layer: input width d_h, number of routed experts E (the
/// columns of routing) and granularity. A layer without routed experts has no
/// router: d_h = 0 and E = 0 (its granularity is then irrelevant). Any of the
/// output pointers may be NULL.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_layer_get_router(
    const atmoe_rt_model_t *model, size_t layer, int64_t *d_h,
    size_t *num_experts, atmoe_rt_granularity_t *granularity);

/// The name of routed expert `expert` (column `expert` of routing).
ATMOE_RT_API atmoe_rt_status_t
atmoe_rt_layer_get_expert_name(const atmoe_rt_model_t *model, size_t layer,
                               size_t expert, const char **name);

/*===----------------------------------------------------------------------===*\
|* Running a layer                                                            *|
\*===----------------------------------------------------------------------===*/

/// Runs layer `layer` on T = `num_tokens` (>= 1) tokens. All buffers are
/// dense, row-major f32 and owned by the caller:
///
///  - `x[p]` (T x d_in of projection p) and `y[p]` (T x d_out of projection
///    p, written) for every projection p; `num_projections` must equal the
///    layer's number of projections;
///  - `h`: the router input, T x d_h (token granularity) or S x d_h (sequence
///    granularity); may be NULL only if the layer has no router;
///  - `segments`: `num_segments` (S) sequence lengths, each >= 0, summing to
///    T. With num_segments = 0 (segments may then be NULL) the batch is one
///    sequence, S = 1. Token-granularity layers only validate them;
///  - `routing` (written): the routing weights, T x E (token) or S x E
///    (sequence); may be NULL when the caller does not want them (then an
///    internal per-call buffer is used). Ignored when the layer has no
///    router.
///
/// Everything is validated before the layer's code runs. Calls may run
/// concurrently on one model (from any number of threads, with distinct y
/// and routing buffers); binding or closing must not overlap them.
ATMOE_RT_API atmoe_rt_status_t atmoe_rt_layer_forward(
    const atmoe_rt_model_t *model, size_t layer, int64_t num_tokens,
    size_t num_projections, const float *const *x, const float *h,
    size_t num_segments, const int64_t *segments, float *const *y,
    float *routing);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ATMOE_RT_ATMOE_RT_H */
