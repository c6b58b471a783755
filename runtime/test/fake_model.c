/*===- fake_model.c - Hand-written stand-in for a compiled model --*- C -*-===*\
|*                                                                            *|
|* Part of the atmoe project, under the Apache License v2.0 with LLVM         *|
|* Exceptions.                                                                *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Implements the compiled-model ABI of docs/RuntimeABI.md by hand, so that   *|
|* the runtime and atmoe-run can be tested before (and independently of) the  *|
|* compiler's code generation. Three layers cover the runtime's cases:        *|
|*                                                                            *|
|*  - index 0, token granularity, experts a, b: q_proj (4 -> 3, bias, LoRA    *|
|*    rank 2, scale alpha/r = 4/2 = 2 for both experts) and v_proj (4 -> 2,   *|
|*    plain); router w = softmax(h We^T + be), d_h = 4;                       *|
|*  - index 3, sequence granularity, experts x, y, z: o_proj (3 -> 4, LoRA    *|
|*    rank 1, scale 0.5); router w = softmax(h We^T) per sequence, d_h = 5;   *|
|*    its weights come from extra.safetensors (F16, BF16, unaligned F32), and *|
|*    the base weight is stored under a source name that differs from its    *|
|*    canonical tensor name;                                                  *|
|*  - index 5, no router: down_proj (4 -> 2, bias).                           *|
|*                                                                            *|
|* y = x W^T + b + sum_e w_e * s * (x A_e^T) B_e^T, with the routing weights  *|
|* of the token (or of its sequence). runtime/test/fake_package.py writes     *|
|* the package and holds an independent float64 reference. Descriptors that  *|
|* disagree with the manifest abort, so that a runtime bug cannot pass        *|
|* unnoticed.                                                                 *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define EXPORT __attribute__((visibility("default")))
/* Where atmoe-compile puts the manifest (docs/RuntimeABI.md). */
#define MANIFEST EXPORT __attribute__((section(".atmoe_manifest"), used))

/* Memref descriptors of rank 1 and 2 (docs/RuntimeABI.md). */
typedef struct {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} memref1_f32;

typedef struct {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} memref2_f32;

typedef struct {
  int64_t *allocated;
  int64_t *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} memref1_i64;

#define WEIGHT(layer, name, file, dims)                                        \
  "{\"role\": \"weight\", \"tensor\": \"layers." #layer "." name "\", "        \
  "\"file\": \"" file "\", \"source\": \"layers." #layer "." name "\", "       \
  "\"dtype\": \"f32\", \"shape\": " dims "}"

/* One string literal per line, as the JSON reads; clang-format would
 * reflow them around the macros. */
/* clang-format off */
MANIFEST const char atmoe_manifest[] =
    "{\"format\": \"atmoe-compiled/3\", \"model\": \"fake\", "
    "\"target\": \"handwritten\", \"layers\": ["
    /* Layer 0. */
    "{\"index\": 0, \"function\": \"layer0_forward\", "
    "\"entry\": \"atmoe_entry_layer0_forward\", \"granularity\": \"token\", "
    "\"experts\": [\"a\", \"b\"], \"arguments\": ["
    "{\"role\": \"input\", \"name\": \"q_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 4]},"
    "{\"role\": \"input\", \"name\": \"v_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 4]},"
    "{\"role\": \"input\", \"name\": \"h\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 4]},"
    WEIGHT(0, "q_proj.weight", "weights.safetensors", "[3, 4]") ","
    WEIGHT(0, "q_proj.bias", "weights.safetensors", "[3]") ","
    WEIGHT(0, "q_proj.lora_A.a.weight", "weights.safetensors", "[2, 4]") ","
    WEIGHT(0, "q_proj.lora_B.a.weight", "weights.safetensors", "[3, 2]") ","
    WEIGHT(0, "q_proj.lora_A.b.weight", "weights.safetensors", "[2, 4]") ","
    WEIGHT(0, "q_proj.lora_B.b.weight", "weights.safetensors", "[3, 2]") ","
    WEIGHT(0, "v_proj.weight", "weights.safetensors", "[2, 4]") ","
    WEIGHT(0, "router.expert.weight", "weights.safetensors", "[2, 4]") ","
    WEIGHT(0, "router.expert.bias", "weights.safetensors", "[2]") ","
    "{\"role\": \"output\", \"name\": \"q_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 3]},"
    "{\"role\": \"output\", \"name\": \"v_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 2]},"
    "{\"role\": \"output\", \"name\": \"routing\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 2]}"
    "]},"
    /* Layer 3. */
    "{\"index\": 3, \"function\": \"layer3_forward\", "
    "\"entry\": \"atmoe_entry_layer3_forward\", \"granularity\": \"sequence\", "
    "\"experts\": [\"x\", \"y\", \"z\"], \"arguments\": ["
    "{\"role\": \"input\", \"name\": \"o_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 3]},"
    "{\"role\": \"input\", \"name\": \"h\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 5]},"
    "{\"role\": \"input\", \"name\": \"segments\", \"dtype\": \"i64\", "
    "\"shape\": [-1]},"
    "{\"role\": \"weight\", \"tensor\": \"layers.3.o_proj.weight\", "
    "\"file\": \"extra.safetensors\", \"source\": \"base.layers.3.o_proj\", "
    "\"dtype\": \"f32\", \"shape\": [4, 3]},"
    WEIGHT(3, "o_proj.lora_A.x.weight", "extra.safetensors", "[1, 3]") ","
    WEIGHT(3, "o_proj.lora_B.x.weight", "extra.safetensors", "[4, 1]") ","
    WEIGHT(3, "o_proj.lora_A.y.weight", "extra.safetensors", "[1, 3]") ","
    WEIGHT(3, "o_proj.lora_B.y.weight", "extra.safetensors", "[4, 1]") ","
    WEIGHT(3, "o_proj.lora_A.z.weight", "extra.safetensors", "[1, 3]") ","
    WEIGHT(3, "o_proj.lora_B.z.weight", "extra.safetensors", "[4, 1]") ","
    WEIGHT(3, "router.expert.weight", "extra.safetensors", "[3, 5]") ","
    "{\"role\": \"output\", \"name\": \"o_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 4]},"
    "{\"role\": \"output\", \"name\": \"routing\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 3]}"
    "]},"
    /* Layer 5. */
    "{\"index\": 5, \"function\": \"layer5_forward\", "
    "\"entry\": \"atmoe_entry_layer5_forward\", \"granularity\": \"token\", "
    "\"arguments\": ["
    "{\"role\": \"input\", \"name\": \"down_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 4]},"
    WEIGHT(5, "down_proj.weight", "weights.safetensors", "[2, 4]") ","
    WEIGHT(5, "down_proj.bias", "weights.safetensors", "[2]") ","
    "{\"role\": \"output\", \"name\": \"down_proj\", \"dtype\": \"f32\", "
    "\"shape\": [-1, 2]}"
    "]}"
    "]}";
/* clang-format on */

/*===----------------------------------------------------------------------===*\
|* Helpers                                                                    *|
\*===----------------------------------------------------------------------===*/

/* The runtime builds dense row-major descriptors with offset 0; anything else
 * is a runtime bug, reported by crashing the test. */
static void expect2(const memref2_f32 *m, int64_t rows, int64_t cols) {
  if (!m->aligned || m->offset != 0 || m->sizes[0] != rows ||
      m->sizes[1] != cols || m->strides[0] != cols || m->strides[1] != 1)
    abort();
}

static void expect1(const memref1_f32 *m, int64_t size) {
  if (!m->aligned || m->offset != 0 || m->sizes[0] != size ||
      m->strides[0] != 1)
    abort();
}

static float *at(const memref2_f32 *m, int64_t i, int64_t j) {
  return m->aligned + m->offset + i * m->strides[0] + j * m->strides[1];
}

/* y[t] = x[t] W^T (+ b). */
static void linearRow(const memref2_f32 *x, int64_t t, const memref2_f32 *w,
                      const memref1_f32 *b, const memref2_f32 *y) {
  for (int64_t o = 0; o < w->sizes[0]; ++o) {
    float acc = b ? b->aligned[b->offset + o * b->strides[0]] : 0.0f;
    for (int64_t i = 0; i < w->sizes[1]; ++i)
      acc += *at(x, t, i) * *at(w, o, i);
    *at(y, t, o) = acc;
  }
}

/* y[t] += scale * (x[t] A^T) B^T. */
static void addLoraRow(const memref2_f32 *x, int64_t t, const memref2_f32 *a,
                       const memref2_f32 *b, float scale,
                       const memref2_f32 *y) {
  for (int64_t k = 0; k < a->sizes[0]; ++k) {
    float u = 0.0f;
    for (int64_t i = 0; i < a->sizes[1]; ++i)
      u += *at(x, t, i) * *at(a, k, i);
    for (int64_t o = 0; o < b->sizes[0]; ++o)
      *at(y, t, o) += scale * u * *at(b, o, k);
  }
}

/* routing[row] = softmax(h[row] We^T (+ be)), stably (max subtracted). */
static void routeRow(const memref2_f32 *h, int64_t row, const memref2_f32 *we,
                     const memref1_f32 *be, const memref2_f32 *routing) {
  int64_t numExperts = we->sizes[0];
  float logits[8];
  float max = -INFINITY, sum = 0.0f;
  if (numExperts > 8)
    abort();
  for (int64_t e = 0; e < numExperts; ++e) {
    float acc = be ? be->aligned[be->offset + e * be->strides[0]] : 0.0f;
    for (int64_t i = 0; i < we->sizes[1]; ++i)
      acc += *at(h, row, i) * *at(we, e, i);
    logits[e] = acc;
    if (acc > max)
      max = acc;
  }
  for (int64_t e = 0; e < numExperts; ++e) {
    logits[e] = expf(logits[e] - max);
    sum += logits[e];
  }
  for (int64_t e = 0; e < numExperts; ++e)
    *at(routing, row, e) = logits[e] / sum;
}

/*===----------------------------------------------------------------------===*\
|* The heap hook (runtime/src/CallBuffers.h)                                  *|
\*===----------------------------------------------------------------------===*/

static void *allocatorContext;
static void *(*allocateHook)(void *, uint64_t);
static void (*releaseHook)(void *, void *);

EXPORT void atmoe_model_set_allocator(void *context,
                                      void *(*allocate)(void *, uint64_t),
                                      void (*release)(void *, void *)) {
  allocatorContext = context;
  allocateHook = allocate;
  releaseHook = release;
}

/* 0 without a hook; else 2 if a released 1 MiB buffer came back for the
   next request of that size, 1 if not. */
EXPORT int atmoe_fake_reuses_buffers(void) {
  if (!allocateHook || !releaseHook)
    return 0;
  void *first = allocateHook(allocatorContext, 1 << 20);
  releaseHook(allocatorContext, first);
  void *second = allocateHook(allocatorContext, 1 << 20);
  releaseHook(allocatorContext, second);
  return first && first == second ? 2 : 1;
}

/*===----------------------------------------------------------------------===*\
|* Entry points                                                               *|
\*===----------------------------------------------------------------------===*/

EXPORT void atmoe_entry_layer0_forward(void **args) {
  const memref2_f32 *xq = args[0], *xv = args[1], *h = args[2];
  const memref2_f32 *wq = args[3];
  const memref1_f32 *bq = args[4];
  const memref2_f32 *loraA[2] = {args[5], args[7]};
  const memref2_f32 *loraB[2] = {args[6], args[8]};
  const memref2_f32 *wv = args[9], *we = args[10];
  const memref1_f32 *be = args[11];
  const memref2_f32 *yq = args[12], *yv = args[13], *routing = args[14];
  int64_t numTokens = xq->sizes[0];

  expect2(xq, numTokens, 4);
  expect2(xv, numTokens, 4);
  expect2(h, numTokens, 4);
  expect2(wq, 3, 4);
  expect1(bq, 3);
  for (int e = 0; e < 2; ++e) {
    expect2(loraA[e], 2, 4);
    expect2(loraB[e], 3, 2);
  }
  expect2(wv, 2, 4);
  expect2(we, 2, 4);
  expect1(be, 2);
  expect2(yq, numTokens, 3);
  expect2(yv, numTokens, 2);
  expect2(routing, numTokens, 2);

  for (int64_t t = 0; t < numTokens; ++t) {
    routeRow(h, t, we, be, routing);
    linearRow(xq, t, wq, bq, yq);
    for (int e = 0; e < 2; ++e)
      addLoraRow(xq, t, loraA[e], loraB[e], 2.0f * *at(routing, t, e), yq);
    linearRow(xv, t, wv, NULL, yv);
  }
}

EXPORT void atmoe_entry_layer3_forward(void **args) {
  const memref2_f32 *x = args[0], *h = args[1];
  const memref1_i64 *segments = args[2];
  const memref2_f32 *w = args[3];
  const memref2_f32 *loraA[3] = {args[4], args[6], args[8]};
  const memref2_f32 *loraB[3] = {args[5], args[7], args[9]};
  const memref2_f32 *we = args[10];
  const memref2_f32 *y = args[11], *routing = args[12];
  int64_t numTokens = x->sizes[0], numSequences = segments->sizes[0];
  int64_t total = 0;

  expect2(x, numTokens, 3);
  expect2(h, numSequences, 5);
  if (!segments->aligned || segments->offset != 0 || segments->strides[0] != 1)
    abort();
  expect2(w, 4, 3);
  for (int e = 0; e < 3; ++e) {
    expect2(loraA[e], 1, 3);
    expect2(loraB[e], 4, 1);
  }
  expect2(we, 3, 5);
  expect2(y, numTokens, 4);
  expect2(routing, numSequences, 3);
  for (int64_t s = 0; s < numSequences; ++s)
    total += segments->aligned[s];
  if (total != numTokens)
    abort();

  for (int64_t s = 0, t = 0; s < numSequences; ++s) {
    routeRow(h, s, we, NULL, routing);
    for (int64_t end = t + segments->aligned[s]; t < end; ++t) {
      linearRow(x, t, w, NULL, y);
      for (int e = 0; e < 3; ++e)
        addLoraRow(x, t, loraA[e], loraB[e], 0.5f * *at(routing, s, e), y);
    }
  }
}

EXPORT void atmoe_entry_layer5_forward(void **args) {
  const memref2_f32 *x = args[0], *w = args[1];
  const memref1_f32 *b = args[2];
  const memref2_f32 *y = args[3];
  int64_t numTokens = x->sizes[0];

  expect2(x, numTokens, 4);
  expect2(w, 2, 4);
  expect1(b, 2);
  expect2(y, numTokens, 2);
  for (int64_t t = 0; t < numTokens; ++t)
    linearRow(x, t, w, b, y);
}
