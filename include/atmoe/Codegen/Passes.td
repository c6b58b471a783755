//===- Passes.td - atmoe code generation passes ------------*- tablegen -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The passes between fused linalg and the LLVM dialect. None of them knows an
// atmoe op: they schedule, lower and place upstream ops for a kind of
// hardware (lib/Codegen/{Common,CPU,GPU}), and the pipelines of
// lib/Pipelines order them. Dialect rewrites (atmoe to atmoe) are in
// Dialect/Atmoe/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_CODEGEN_PASSES_TD
#define ATMOE_CODEGEN_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// Common: every target
//===----------------------------------------------------------------------===//

def MemRefCopyToLinalgPass : Pass<"atmoe-memref-copy-to-linalg"> {
  let summary = "Rewrite memref.copy as linalg.copy";
  let description = [{
    Strided `memref.copy` ops (into subviews, e.g. from bufferized
    `tensor.concat`) lower to a call of `memrefCopy` from MLIR's C runner
    utilities. Compiled models must not depend on that library, so the CPU
    pipeline turns every copy into a `linalg.copy`, which lowers to loops
    (and later vector code) like any other linalg op.

    ```mlir
    memref.copy %a, %b : memref<4x2xf32> to memref<4x2xf32, strided<[5, 1]>>
    // becomes
    linalg.copy ins(%a : memref<4x2xf32>) outs(%b : memref<4x2xf32, strided<[5, 1]>>)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def OutlineResultsPass : Pass<"atmoe-outline-results", "mlir::ModuleOp"> {
  let summary = "Compute each function result in a private function; share "
                "identical ones";
  let description = [{
    A layer of many projections is one function, and the time LLVM's O3
    takes grows faster than linearly with a function's size (64 projections
    took about 55 s in LLVM, 16 about 6 s). This pass moves the computation
    of each result of a function on tensors into a private function of its
    own, so that code generation is linear in the number of results, and
    lets results computed alike (the projections of one shape, in every
    layer) share one function, so each is scheduled, lowered and optimised
    once.

    What moves is every side-effect-free op whose uses all lead to that one
    result; constants are copied in. What other results share (the routing
    weights, a token count) stays in the caller and is passed. The result is
    computed in destination-passing style: the first value of its chain of
    destination operands that is not moved (usually the `tensor.empty` of
    the output) is passed as the last argument, so after bufferization the
    callee writes into the caller's buffer (the caller's output, once
    `buffer-results-to-out-params` has run) and
    `drop-equivalent-buffer-results` removes the returned copy. A result
    whose chain of destinations does not leave the moved ops stays inline.

    Functions whose bodies are equivalent (operation by operation, ignoring
    locations) are merged into the first. The new functions get internal
    linkage and LLVM's `noinline`, so O3 does not paste them back into one
    function.

    ```mlir
    func.func @layer(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
      %t = tensor.dim %x, %c0 : tensor<?x64xf32>
      %e = tensor.empty(%t) : tensor<?x32xf32>
      %z = linalg.fill ins(%cst : f32) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
      %y = linalg.matmul ins(%x, %w : ...) outs(%z : tensor<?x32xf32>) -> tensor<?x32xf32>
      return %y : tensor<?x32xf32>
    }
    // becomes
    func.func @layer(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
      %t = tensor.dim %x, %c0 : tensor<?x64xf32>
      %e = tensor.empty(%t) : tensor<?x32xf32>
      %y = call @layer_result0(%x, %w, %e) : (...) -> tensor<?x32xf32>
      return %y : tensor<?x32xf32>
    }
    func.func private @layer_result0(%x: ..., %w: ..., %init: tensor<?x32xf32>)
        -> tensor<?x32xf32> attributes {llvm.linkage = #llvm.linkage<internal>,
                                        passthrough = ["noinline"]}
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def AllowFPReassociationPass : Pass<"atmoe-allow-fp-reassociation"> {
  let summary = "Allow reassociation and contraction of floating-point ops";
  let description = [{
    Sets `fastmath<reassoc, contract>` on every arith op that takes fast-math
    flags. Reassociation lets LLVM vectorise reductions (matmul inner
    products, softmax sums) and contraction lets it use FMA. Both change
    rounding only; results stay well within SPEC §2's tolerance (checked by
    the end-to-end tests against a float64 reference). No-NaN/no-inf flags
    are not set: inputs may legitimately hold them.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}


//===----------------------------------------------------------------------===//
// CPU
//===----------------------------------------------------------------------===//

def PackWeightPanelsPass
    : Pass<"atmoe-pack-weight-panels", "mlir::func::FuncOp"> {
  let summary = "Lay base weights out in panels of output features";
  let description = [{
    A CPU thread's tile of `panel-width` output features reads its weights
    most cheaply as one contiguous block laid out the way its register tile
    consumes it. The stored layouts are not that:

    - GPTQ stores `qweight` as [in_features * bits / 32, out_features] i32:
      the words of one packed row run along the output features, so a tile
      reads a short run of every row, a whole row apart (256 bytes per
      16 KiB at d = 4096), which DRAM and the hardware prefetchers serve at
      about half the bandwidth of a stream (docs/performance.md);
    - a float (f32, f16, bf16) weight W is stored [out_features,
      in_features]: a tile reads it along `k`, which forces dot products
      with horizontal sums (43% of the FMA peak at T = 16, d = 4096).

    This pass gives each such argument of a layer function the layout
    [out_features / `panel-width`, rows, `panel-width`]: each panel of
    `panel-width` output features is one contiguous block whose rows run
    along the features. For a `qweight` whose users are all GPTQ products
    (`linalg.generic` tagged `atmoe.quantization`, reading it as
    `(k floordiv (32 / bits), n)`), the rows are its packed words and the
    products read `(n floordiv width, k floordiv (32 / bits), n mod width)`.
    For a float weight whose users are all `linalg.matmul`s `y = x W^T`
    (maps `(t, k)`, `(n, k)`, `(t, n)`), the rows are `k` (the panel is
    W^T's columns, `atmoe.panel_dim = 0`: cut along dimension 0 of the
    stored tensor) and the matmuls become `linalg.generic`s reading
    `(n floordiv width, k, n mod width)`, with their attributes
    (`atmoe.matmul_role`) and the weight widened in the body; the
    `--atmoe-lower-cpu-matmuls` outer-product kernel broadcasts tokens over
    whole panel rows. Tiling along n by `panel-width` (the CPU schedule's
    tile) slices either into one panel.

    The argument gets `atmoe.panel_width` (and `atmoe.panel_dim` when it is
    0); the manifest records both and the runtime repacks the stored tensor
    when it binds the weights (docs/RuntimeABI.md, "panel"). Only one whole
    stored tensor is packed: stacks of adapters (`atmoe.parts`), weights
    computed at bind time (DoRA) and shards of a process stay as stored, as
    do arguments whose out_features `panel-width` does not divide or that
    anything else reads.

    ```mlir
    func.func @layer0_forward(%qw: tensor<512x4096xi32> {atmoe.tensor = ...},
                              %w: tensor<4096x4096xbf16> {atmoe.tensor = ...})
    // becomes
    func.func @layer0_forward(%qw: tensor<64x512x64xi32>
                              {atmoe.panel_width = 64 : i64, atmoe.tensor = ...},
                              %w: tensor<64x4096x64xbf16>
                              {atmoe.panel_dim = 0 : i64,
                               atmoe.panel_width = 64 : i64, atmoe.tensor = ...})
    ```
  }];
  let options = [
    Option<"panelWidth", "panel-width", "int64_t", "64",
           "Output features per panel (the CPU schedule's tile width)">
  ];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def ApplyCPUSchedulePass : Pass<"atmoe-apply-cpu-schedule", "mlir::ModuleOp"> {
  let summary = "Tile linalg on tensors for the CPU with a transform script";
  let description = [{
    Runs atmoe's CPU schedule, a transform-dialect script kept in
    `lib/Codegen/CPU/CPUSchedule.mlir`, on the module. It tells
    matmuls apart by the `atmoe.matmul_role` the conversion to linalg gives
    them. A LoRA up-projection and the base product it accumulates onto
    share one parallel loop over blocks of 64 output features (the base
    tile is fused into the up-projection's `scf.forall`): one OpenMP region
    per call instead of two, which matters most with passive waiting
    threads. Plain projections, down-projections and merged-weight products
    get their own loop over feature blocks; router logits and the
    routing-to-scales expansion are too small to wake a thread for and stay
    serial. After bufferization,
    `--atmoe-lower-cpu-matmuls` blocks each thread's tile for the caches and
    registers and vectorises it (the token count is dynamic, so that choice
    is made at run time there).

    Pass `--transform-schedule=<file>` to experiment with another script
    with the same entry point (`@__transform_main`). What the script
    reports at the model's operations carries a note naming the script. A
    script that makes a reduction parallel is an error at the script: after
    it runs, every `scf.forall` must write each `tensor.parallel_insert_slice`
    at offsets that depend on every induction variable that varies, else
    its iterations would write the same slice at once (a data race; tile
    reductions with `tile_using_for` or `tile_reduction_using_forall`).
  }];
  let options = [
    Option<"scheduleFile", "transform-schedule", "std::string", "\"\"",
           "Transform script to run instead of the built-in CPU schedule">
  ];
  let dependentDialects = ["::mlir::transform::TransformDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def SerializeSmallForallsPass
    : Pass<"atmoe-serialize-small-foralls", "mlir::func::FuncOp"> {
  let summary = "Run a parallel loop on the calling thread when T is small";
  let description = [{
    An `scf.forall` on tensors carrying `atmoe.serial_max_rows = N : i64`
    (set by the CPU schedule with `transform.annotate`) becomes

    ```mlir
    scf.if (rows <= N) { serial scf.for over the same tiles }
    else { the scf.forall }
    ```

    where `rows` is dimension 0 of its first shared output (the token count
    T). Each OpenMP parallel region wakes the worker threads, which costs
    about 100 us per region with passive waiting on this machine; for small
    products at small T that costs more than the parallel work saves (the
    LoRA down-projection at T = 1 is a 1 MiB read). The serial loop computes
    the same tiles in the same order, so results are bitwise equal. Only
    one-dimensional foralls whose terminator holds `tensor.parallel_insert_slice`
    ops are handled; any other annotated forall is an error.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def LowerCPUMatmulsPass : Pass<"atmoe-lower-cpu-matmuls"> {
  let summary = "Lower y = x w^T matmuls on memrefs to register-blocked "
                "vector FMA loops";
  let description = [{
    Rewrites every f32 `linalg.matmul` on buffers of the form
    `y[t, n] += x[t, k] * w[n, k]` (the base projection, the LoRA down- and
    up-projections and the router logits, all with `k` contiguous) into
    loops the compiler fully controls:

    - the reduction is vectorised along `k` into `token-tile` x
      `feature-tile` vector accumulators: each vector of `w` feeds
      `token-tile` FMAs and each vector of `x` `feature-tile` ones, so the
      loop issues fewer loads than FMAs; the horizontal sums and the update
      of `y` happen once per tile (all accumulators at once with shuffles
      when there are as many as vector lanes);
    - few tokens (`<= skinny-tokens`, tested at run time since the token
      count is dynamic): weight rows outermost, so `w` streams from memory
      once, a few long contiguous rows at a time, and each `skinny-k-block`
      of a tile's rows stays in L1 while every `skinny-token-tile` tile uses
      it; the rows are prefetched `skinny-prefetch` elements ahead (into L2)
      so that DRAM streams while the FMAs run;
    - more tokens: `k-block` x `token-block` blocks of `x` stay in L2 while
      the `token-tile` x `feature-tile` register tiles sweep the weight rows
      (6 x 4: 24 accumulators, 10 loads per 24 FMAs, within AVX-512's 32
      registers);
    - remainders: 1-row register tiles for tokens and features, masked loads
      for `k`, so any shape works.

    The weight `w` may be f32, f16 or bf16: it is loaded in its storage type
    and widened in registers, so the kernel reads the stored bytes.

    A product with a GPTQ weight (the `linalg.generic` that
    `--convert-atmoe-to-linalg` tags with `atmoe.quantization`) gets its own
    kernel, vectorised along the output features because GPTQ packs the
    values of consecutive `k` of one output feature per i32 word and lays
    the words of a row along the outputs: `quantized-token-tile` x
    `quantized-feature-vectors` vector accumulators; per packed row, one
    load of `vector-width` words per vector, then per value a shift, a mask,
    a conversion and an FMA with the group's scale and zero point (loaded
    once per group) give the weights, and broadcast activations multiply
    them in. A qweight in panels (`--atmoe-pack-weight-panels`) is read
    through its tile's panel as a 2-D view; its rows are contiguous, so few
    tokens use the register blocks rather than streaming whole rows. Tiles
    whose first output feature does not start a word of zero points, or
    that span two panels (only a custom schedule makes them), and groups
    smaller than a packed word, keep the generic.
    From `quantized-dequantize-tokens` tokens on (64: below it the register
    tiles, which unpack each weight once per `quantized-token-tile` tokens,
    measure faster), a tile over one whole panel dequantises each block of
    up to 16 KiB of f32 values of k (within one group, so its scales are
    loaded once) into a stack buffer and runs the float panel kernel below
    on it: the weights are unpacked once for all tokens.

    A product with a float weight in panels (`--atmoe-pack-weight-panels`:
    a `linalg.generic` reading `w[n floordiv width, k, n mod width]`) gets
    the outer-product micro-kernel when its tile reads exactly one panel
    (else it keeps the generic, exact for any tiling): blocks of 16 KiB of
    panel rows stay in L1 while the token tiles of a block of tokens use
    them (as many tokens as keep their rows of `y` and of `x` within 128
    KiB, so in L2: 252 for f32 panels); a register tile
    of `rows` tokens x `vectors` vectors of features (the fewest loads per
    FMA within the registers: 6 x 4 for AVX-512's 32, 6 x 2 for AVX2's 16)
    loads each panel vector once, widened from f16/bf16 in registers, and
    multiplies it by `rows` broadcast activations into accumulators that
    start from and end in `y`, with no horizontal sums. Remainder tokens
    take power-of-two tiles as wide as the registers allow; tiles of 4
    accumulators or fewer (one token) send even and odd panel rows to two
    sets, so that 8 FMA chains hide the latency; full tiles prefetch the
    next block's rows into L1 as they go.

    With `int8-activations` (opt-in, not exact: docs/Numerics.md), fewer
    tokens than a register tile over whole vectors of features take another
    kernel: the rows of `x` are rounded to int8 per block of up to 128
    activations (scale max|x| / 127; for 4 bits reordered so that each
    word's low and high nibbles meet their activations), once before the
    parallel loop of the product's tiles when `x` is defined outside it
    (heap buffers), else in the tile; then per row, block and
    `2 x quantized-feature-vectors` vectors of features, VNNI dot products
    (`vpdpbusd` through `llvm.call_intrinsic`: one per vector of 8-bit
    words, two per vector of 4-bit ones) accumulate i32 register sums that
    are scaled into f32 register sums once per block.

    `y[t, n] += x[t, k] * w[k, n]` with `w` untransposed (a merged
    segment's `B A`, tiled by columns of `W'`) and a static width of `w`
    runs the same outer-product kernel with the rows of `w` as the panel
    (no prefetch: `w` is small).

    Other matmuls (other layouts, element types, non-unit inner strides)
    are left to `convert-linalg-to-loops`.

    ```mlir
    linalg.matmul indexing_maps = [
        affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>,
        affine_map<(t, n, k) -> (t, n)>]
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>)
      outs(%y : memref<?x32xf32>)
    // becomes scf.if (few tokens) over scf.for loops of vector.load +
    // vector.fma into vector accumulators, then vector.shuffle + arith.addf
    // sums added into %y
    ```
  }];
  let options = [
    Option<"tokenTile", "token-tile", "int64_t", "6",
           "Token rows per register tile">,
    Option<"featureTile", "feature-tile", "int64_t", "4",
           "Weight rows per register tile">,
    Option<"vectorWidth", "vector-width", "int64_t", "16",
           "f32 lanes per vector (16: AVX-512)">,
    Option<"skinnyTokens", "skinny-tokens", "int64_t", "32",
           "Up to this many tokens, stream the weights once (rows outermost)">,
    Option<"skinnyTokenTile", "skinny-token-tile", "int64_t", "4",
           "Token rows per register tile for few tokens">,
    Option<"skinnyKBlock", "skinny-k-block", "int64_t", "512",
           "Reduction block for few tokens">,
    Option<"skinnyPrefetch", "skinny-prefetch", "int64_t", "768",
           "For few tokens, prefetch weight rows this many elements ahead "
           "(0: off)">,
    Option<"kBlock", "k-block", "int64_t", "2048",
           "Reduction block for more tokens">,
    Option<"tokenBlock", "token-block", "int64_t", "48",
           "Token block for more tokens">,
    Option<"quantizedTokenTile", "quantized-token-tile", "int64_t", "8",
           "Token rows per register tile of a GPTQ product">,
    Option<"quantizedFeatureVectors", "quantized-feature-vectors", "int64_t",
           "2", "Vectors of output features per register tile of a GPTQ "
           "product">,
    Option<"quantizedPrefetch", "quantized-prefetch", "int64_t", "16",
           "Packed rows a GPTQ product prefetches ahead (0: off)">,
    Option<"quantizedDequantizeTokens", "quantized-dequantize-tokens",
           "int64_t", "64",
           "From this many tokens on, a GPTQ qweight in panels is dequantised "
           "once per block into an f32 buffer for the float panel kernel "
           "(0: never)">,
    Option<"int8Activations", "int8-activations", "bool", "false",
           "GPTQ products with fewer tokens than a register tile round each "
           "block of activations to int8 and use VNNI integer dot products "
           "(opt-in: not exact; the target must have VNNI)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}


//===----------------------------------------------------------------------===//
// GPU
//===----------------------------------------------------------------------===//

def GPUTileMatmulsPass
    : Pass<"atmoe-gpu-tile-matmuls", "mlir::func::FuncOp"> {
  let summary = "Lower f32 matmuls on buffers to shared-memory tiled GPU "
                "kernels";
  let description = [{
    Rewrites every f32 `linalg.matmul` on buffers, `y[t, n] += x[t, k] *
    w[n, k]` (the projections, LoRA down/up, router logits) or `y[t, n] +=
    x[t, k] * w[k, n]` (the rank-slot scale expansion), into a `gpu.launch`
    the pass writes itself:

    - each block computes a `tile[0]` x `tile[1]` tile of `y`; its threads
      step through the reduction `tile[2]` at a time, copying the x and w
      tiles into workgroup (shared) memory together (consecutive threads read
      consecutive addresses of global memory), then, after a barrier, each
      thread multiplies them into `thread-tile[0]` x `thread-tile[1]`
      accumulators held in registers;
    - a thread's outputs are strided by the number of threads along each
      dimension, so that a warp reads consecutive shared-memory words (no
      bank conflicts) and writes consecutive words of `y`; the w tile is
      stored k-major with one word of padding per row, so that its transposed
      copy is conflict-free too;
    - out-of-range rows, columns and reduction steps read as zeros and are
      not written, so any shape works;
    - up to `skinny-rows` rows of `y` (tested at run time: the token count is
      dynamic) use the `skinny-tile` / `skinny-thread-tile` variant, whose
      blocks are only as tall as the batch, so that decoding a few tokens
      does not leave most threads idle; one launch holds both variants (the
      host picks the grid and block sizes, the kernel branches on the same
      test), so that the host code does not branch between launches;
    - a `linalg.fill` or a bias `linalg.broadcast` (along the rows) of `y`
      right before the matmul is folded in: the kernel writes
      `y = initial + x w` without reading `y`, and that op (one more launch
      and one more pass over `y`) goes.

    With `cpu-emulation`, the kernels become sequential loops over blocks
    and threads instead, the barriers the ends of those loops and the
    accumulators memory: the tiling, the copies and the bounds can then be
    checked numerically on a machine without a GPU
    (test/Integration/GPUEmulation).

    Other matmuls (other element types or layouts) are left to the generic
    parallel-loop mapping of `--atmoe-gpu-kernel-pipeline`.

    ```mlir
    linalg.matmul indexing_maps = [
        affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>,
        affine_map<(t, n, k) -> (t, n)>]
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>)
      outs(%y : memref<?x32xf32>)
    // becomes
    // gpu.launch blocks(...) in (select(few, ceil(n / 16), ceil(n / 64)), ...)
    //     threads(...) in (256, 1, 1)
    //     workgroup(%xt : memref<64x16xf32, #gpu.address_space<workgroup>>, ...) {
    //   scf.if %few { skinny tiles } else { scf.for over k: copies into %xt,
    //     %wt; gpu.barrier; register-tile FMAs; gpu.barrier; updates of %y }
    // }
    ```
  }];
  let options = [
    ListOption<"tile", "tile", "int64_t",
               "Rows and columns of y per block, reduction step "
               "(default 64,64,16)">,
    ListOption<"threadTile", "thread-tile", "int64_t",
               "Rows and columns of y per thread (default 4,4)">,
    Option<"skinnyRows", "skinny-rows", "int64_t", "16",
           "Up to this many rows, use the skinny variant (0: never)">,
    ListOption<"skinnyTile", "skinny-tile", "int64_t",
               "Block tile of the skinny variant (default 16,16,64)">,
    ListOption<"skinnyThreadTile", "skinny-thread-tile", "int64_t",
               "Thread tile of the skinny variant (default 1,1)">,
    Option<"cpuEmulation", "cpu-emulation", "bool", "false",
           "Emit sequential loops over blocks and threads instead of "
           "gpu.launch (testing on a CPU)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def GPUDeviceAllocationsPass
    : Pass<"atmoe-gpu-device-allocations", "mlir::func::FuncOp"> {
  let summary = "Allocate the host function's temporaries in device memory";
  let description = [{
    After the linalg ops of a layer function have become `gpu.launch`
    kernels, the buffers bufferization allocated for intermediate results
    (`memref.alloc` / `memref.dealloc` in the host code) must live in device
    memory, where the kernels read and write them. This pass turns each of
    them into `gpu.alloc` / `gpu.dealloc`; `gpu-async-region` then makes them
    stream-ordered. Allocations inside kernels are left alone. Constants a
    kernel reads (`memref.get_global`, e.g. the rank-slot masks of fused
    adapters) are cloned into the kernel, so that `gpu-kernel-outlining`
    copies their globals into the GPU module. A host `memref.alloca` or
    global reaching a kernel any other way is an error, as is a temporary the
    host code itself loads from or stores to.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def GPUHostArgumentsPass
    : Pass<"atmoe-gpu-host-arguments", "mlir::func::FuncOp"> {
  let summary = "Record which layer-function arguments the host code reads";
  let description = [{
    Runs after kernel outlining. A public function's memref argument that
    only host code dereferences (for example the segment lengths, which
    drive the loop over sequences on the host) must be passed in host
    memory; every other argument is passed in device memory. The pass
    records the host-memory arguments' positions as
    `atmoe.host_arguments = array<i64: ...>` on the function; the driver
    copies them into the compiled model's manifest, which tells the runtime
    where to put each buffer. An argument both dereferenced on the host and
    passed to a kernel is an error.
  }];
}

//===----------------------------------------------------------------------===//
// Distributed: layers split over MPI processes (docs/Distributed.md)
//===----------------------------------------------------------------------===//

def ShardLayersPass : Pass<"atmoe-shard-layers", "mlir::ModuleOp"> {
  let summary = "Annotate each layer function for tensor or expert "
                "parallelism over N processes";
  let description = [{
    Declares `shard.grid @atmoe_ranks(shape = N)` and gives every layer
    function (one whose arguments carry `atmoe.input` / `atmoe.tensor`) the
    shardings of the chosen strategy, read off the `atmoe.matmul_role` of the
    matmuls each weight feeds. `strategy=tensor` is Megatron-style tensor
    parallelism with vLLM's fully sharded LoRA; `strategy=expert` divides the
    experts' rank slots (R = the sum of the experts' ranks) over the
    processes, so that with equal ranks and E a multiple of N each process
    holds whole experts:

    | weight | role of its matmul | tensor: split along | expert: split along |
    |---|---|---|---|
    | base W [out, in], its bias | `lora_base`, or `projection` returned by the function | out (dim 0) | out (dim 0) |
    | stacked B [out, R] | `lora_up` | out (dim 0) | R (dim 1) |
    | stacked A [R, in] | `lora_down` | in (dim 1) | R (dim 0) |
    | router weights, anything else | | replicated | replicated |

    Inputs are replicated and every result is annotated replicated for its
    users, so that `sharding-propagation` and `shard-partition` complete the
    rest. Tensor: the T x R down-projection becomes one `shard.all_reduce`
    and each output one `shard.all_gather`. Expert: the down-projection and
    the rank-slot scaling stay local, the up-projection's partial sums (T x
    out) are all-reduced and the base output gathered. W is column-split in
    both: it is most of a layer's bytes, and a T <= 16 call costs its bytes
    over the memory bandwidth, so replicating it would leave each process's
    memory and time where one process has them. Every rank ends up with the
    full y. Split arguments get `atmoe.shard_dim`, which the manifest records
    so that each process binds only its slice. A split dimension that N does
    not divide is an error naming the tensor.

    ```mlir
    func.func @layer0_forward(%x: tensor<?x64xf32> {atmoe.input = "q_proj"},
        %w: tensor<64x64xf32> {atmoe.tensor = "layers.0.q_proj.weight"}, ...)
    // becomes, with ranks=2
    shard.grid @atmoe_ranks(shape = 2)
    func.func @layer0_forward(%x: ..., %w: tensor<64x64xf32> {atmoe.shard_dim = 0 : i64, ...}, ...) {
      %s = shard.sharding @atmoe_ranks split_axes = [[0]] : !shard.sharding
      %w_split = shard.shard %w to %s : tensor<64x64xf32>
      ...
    ```
  }];
  let options = [
    Option<"ranks", "ranks", "int64_t", "2",
           "Processes the layers are split over (>= 2)">,
    Option<"strategy", "strategy", "::mlir::atmoe::ParallelStrategy",
           "::mlir::atmoe::ParallelStrategy::Tensor",
           "What each process holds",
           [{::llvm::cl::values(
             clEnumValN(::mlir::atmoe::ParallelStrategy::Tensor, "tensor",
                        "W and B split by output, A by input features"),
             clEnumValN(::mlir::atmoe::ParallelStrategy::Expert, "expert",
                        "the experts' rank slots split; W by output "
                        "features"))}]>,
  ];
  let dependentDialects = ["::mlir::shard::ShardDialect"];
}

def LowerCollectivesPass : Pass<"atmoe-lower-collectives", "mlir::ModuleOp"> {
  let summary = "Lower the partitioned layers' shard collectives to calls "
                "that bufferize";
  let description = [{
    What `shard-partition` leaves, on the one-dimensional grid of
    `atmoe-shard-layers`, rewritten so that bufferization and the buffer
    deallocation pipeline accept it (MLIR 22's `convert-shard-to-mpi` lowers
    only `all_reduce`, splits a new communicator on every call, mis-sizes
    dynamic dimensions, and its `mpi` ops have no memory effects, which the
    deallocation pipeline rejects):

    - `shard.all_slice`: upstream's pattern (a slice at this process's
      offset).
    - `shard.all_gather` (f32): the local part and a new [N, local shape]
      buffer passed, flattened, to `@atmoe_all_gather_f32`, which receives
      every process's part in rank order; a `linalg.transpose` moves the rank
      axis next to the gather axis and a `tensor.collapse_shape` merges them.
    - `shard.all_reduce` (sum, f32): the tensor's buffer and a new one
      passed, flattened, to `@atmoe_all_reduce_sum_f32`.
    Both functions are private declarations that `atmoe-collectives-to-mpi`
    fills in after deallocation.
    The process index stays for `convert-shard-to-mpi`, after bufferization
    (`mpi.comm_rank` on `MPI_COMM_WORLD`). Any other collective left is an
    error.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def CollectivesToMPIPass : Pass<"atmoe-collectives-to-mpi", "mlir::ModuleOp"> {
  let summary = "Give the collective functions their MPI bodies";
  let description = [{
    Runs after buffer deallocation: defines each collective function that
    `atmoe-lower-collectives` declared, with the `mpi` dialect's ops on
    `MPI_COMM_WORLD`, which the model requires to hold exactly the grid's
    processes (the runtime checks it when it loads the model). No
    communicator is created: nothing grows from call to call.

    ```mlir
    func.func private @atmoe_all_reduce_sum_f32(memref<?xf32>, memref<?xf32>)
    // becomes
    func.func private @atmoe_all_reduce_sum_f32(%send: memref<?xf32>, %recv: memref<?xf32>) {
      %world = mpi.comm_world : !mpi.comm
      mpi.allreduce(%send, %recv, MPI_SUM, %world) : memref<?xf32>, memref<?xf32>
      return
    }
    ```

    `@atmoe_all_gather_f32(%send, %recv)` copies the local part into its
    block of `recv` (N blocks of `send`'s size, in rank order), then
    exchanges blocks with blocking `mpi.send` / `mpi.recv` (MLIR 22's mpi
    dialect has neither an all-gather nor a wait for `mpi.isend`), N taken
    from the module's `atmoe.ranks`:
    - N a power of two: recursive doubling, log2(N) steps; at distance 2^k
      the processes rank and rank ^ 2^k swap the 2^k blocks each holds, the
      lower rank sending first;
    - otherwise a ring, N - 1 steps; at step k each process sends block
      (rank - k) mod N to rank + 1 and receives block (rank - k - 1) mod N
      from rank - 1, even ranks sending first so that no cycle of blocked
      sends forms.
    Either way each process receives (N - 1) / N of the gathered bytes, half
    of what an all-reduce of the zero-padded result would move.
  }];
  let dependentDialects = [
    "::mlir::DLTIDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::mpi::MPIDialect",
    "::mlir::scf::SCFDialect",
  ];
}

#endif // ATMOE_CODEGEN_PASSES_TD
