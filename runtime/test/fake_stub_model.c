/*===- fake_stub_model.c - Manifest-only compiled models ----------*- C -*-===*\
|*                                                                            *|
|* Part of the atmoe project, under the Apache License v2.0 with LLVM         *|
|* Exceptions.                                                                *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Built four times, into libraries whose manifest is the point:              *|
|*  - ATMOE_FAKE_MISSING_ENTRY: a valid manifest whose entry point is not     *|
|*    exported (atmoe_rt_model_open must refuse it);                          *|
|*  - ATMOE_FAKE_BAD_MANIFEST: a routing output whose width disagrees with    *|
|*    the experts list (refused too);                                         *|
|*  - ATMOE_FAKE_WIDE_ROUTER: a valid token-granularity layer whose router    *|
|*    input is wider (d_h = 6) than its projection input (d_in = 4), so that  *|
|*    the bare --x of atmoe-run cannot serve as h. It has no weights; its     *|
|*    entry copies x to y and routes uniformly;                               *|
|*  - ATMOE_FAKE_NEWER_MANIFEST: the wide-router model with the manifest      *|
|*    version of a future atmoe-compile (refused, naming both versions).      *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#define EXPORT __attribute__((visibility("default")))
/* Where atmoe-compile puts the manifest (docs/RuntimeABI.md). */
#define MANIFEST EXPORT __attribute__((section(".atmoe_manifest"), used))

#include <stdint.h>

#if defined(ATMOE_FAKE_MISSING_ENTRY)
#define ENTRY "atmoe_entry_layer0_missing"
#define EXPERTS "[\"a\", \"b\"]"
#define D_H "4"
#elif defined(ATMOE_FAKE_BAD_MANIFEST)
#define ENTRY "atmoe_entry_layer0_forward"
#define EXPERTS "[\"a\", \"b\", \"c\"]"
#define D_H "4"
#elif defined(ATMOE_FAKE_WIDE_ROUTER) || defined(ATMOE_FAKE_NEWER_MANIFEST)
#define ENTRY "atmoe_entry_layer0_forward"
#define EXPERTS "[\"a\", \"b\"]"
#define D_H "6"
#else
#error                                                                         \
    "define one of ATMOE_FAKE_{MISSING_ENTRY,BAD_MANIFEST,WIDE_ROUTER,NEWER_MANIFEST}"
#endif

#if defined(ATMOE_FAKE_NEWER_MANIFEST)
#define FORMAT "atmoe-compiled/99\", \"producer\": \"atmoe-compile 9.0.0"
#else
#define FORMAT "atmoe-compiled/3"
#endif

MANIFEST const char atmoe_manifest[] =
    "{\"format\": \"" FORMAT "\", \"model\": \"stub\", \"layers\": ["
    "{\"index\": 0, \"entry\": \"" ENTRY "\", \"granularity\": \"token\", "
    "\"experts\": " EXPERTS ", \"arguments\": ["
    "{\"role\": \"input\", \"name\": \"q_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 4]},"
    "{\"role\": \"input\", \"name\": \"h\", \"dtype\": \"f32\", "
    "\"shape\": [-1, " D_H "]},"
    "{\"role\": \"output\", \"name\": \"q_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 4]},"
    "{\"role\": \"output\", \"name\": \"routing\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 2]}"
    "]}]}";

typedef struct {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} memref2_f32;

/* y = x and uniform routing; only the wide-router stub is ever run. */
EXPORT void atmoe_entry_layer0_forward(void **args) {
  const memref2_f32 *x = args[0], *y = args[2], *routing = args[3];
  for (int64_t t = 0; t < x->sizes[0]; ++t) {
    for (int64_t i = 0; i < 4; ++i)
      y->aligned[t * 4 + i] = x->aligned[t * 4 + i];
    routing->aligned[t * 2] = routing->aligned[t * 2 + 1] = 0.5f;
  }
}
