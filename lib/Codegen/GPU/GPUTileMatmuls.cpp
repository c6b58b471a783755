//===- GPUTileMatmuls.cpp - shared-memory tiled GPU matmul kernels --------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/IR/PatternMatch.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/Support/InterleavedRange.h"

#include <array>

namespace mlir::atmoe {
#define GEN_PASS_DEF_GPUTILEMATMULSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;

namespace {

/// y[t, n] += x[t, k] * w[n, k] (`transposedWeight`) or x[t, k] * w[k, n].
struct Matmul {
  Value x, w, y;
  bool transposedWeight = false;
  /// What y holds before the product, when the op right before the matmul
  /// sets all of it: a fill with `initialScalar`, or a broadcast of the
  /// vector `initialBias` along the rows (a projection's bias). The kernel
  /// then writes y = initial + x w instead of reading y, and that op goes.
  Operation *initializer = nullptr;
  Value initialScalar, initialBias;
};

/// Records in `mm` the op right before `op` that initialises all of y, if
/// any.
void matchInitializer(linalg::MatmulOp op, Matmul &mm) {
  Operation *previous = op->getPrevNode();
  if (auto fill = dyn_cast_or_null<linalg::FillOp>(previous)) {
    if (fill.hasPureBufferSemantics() && fill.getOutputs()[0] == mm.y &&
        fill.getInputs()[0].getType().isF32()) {
      mm.initializer = fill;
      mm.initialScalar = fill.getInputs()[0];
    }
    return;
  }
  auto broadcast = dyn_cast_or_null<linalg::BroadcastOp>(previous);
  if (!broadcast || !broadcast.hasPureBufferSemantics() ||
      broadcast.getInit() != mm.y ||
      broadcast.getDimensions() != ArrayRef<int64_t>{0})
    return;
  auto biasType = dyn_cast<MemRefType>(broadcast.getInput().getType());
  if (!biasType || biasType.getRank() != 1 ||
      !biasType.getElementType().isF32())
    return;
  mm.initializer = broadcast;
  mm.initialBias = broadcast.getInput();
}

std::optional<Matmul> matchMatmul(linalg::MatmulOp op) {
  if (!op.hasPureBufferSemantics())
    return std::nullopt;
  for (Value v : op->getOperands()) {
    auto type = dyn_cast<MemRefType>(v.getType());
    if (!type || type.getRank() != 2)
      return std::nullopt;
    // Weights may stay in their f16/bf16 storage type: the tiles widen them
    // as they stage them in shared memory.
    Type element = type.getElementType();
    bool isWeight = v == op.getDpsInputs()[1];
    if (!element.isF32() &&
        !(isWeight && (element.isF16() || element.isBF16())))
      return std::nullopt;
  }
  MLIRContext *ctx = op.getContext();
  AffineExpr t, n, k;
  bindDims(ctx, t, n, k);
  auto maps = [&](AffineExpr w0, AffineExpr w1) {
    return SmallVector<AffineMap>{AffineMap::get(3, 0, {t, k}, ctx),
                                  AffineMap::get(3, 0, {w0, w1}, ctx),
                                  AffineMap::get(3, 0, {t, n}, ctx)};
  };
  SmallVector<AffineMap> actual = op.getIndexingMapsArray();
  Matmul matmul;
  matmul.x = op.getDpsInputs()[0];
  matmul.w = op.getDpsInputs()[1];
  matmul.y = op.getDpsInits()[0];
  if (actual == maps(n, k))
    matmul.transposedWeight = true;
  else if (actual == maps(k, n))
    matmul.transposedWeight = false;
  else
    return std::nullopt;
  return matmul;
}

/// The shape of one kernel variant.
struct KernelShape {
  int64_t rows, cols, depth;      // a block's tile of y; the reduction step
  int64_t threadRows, threadCols; // a thread's outputs

  int64_t threadsX() const { return cols / threadCols; }
  int64_t threadsY() const { return rows / threadRows; }
  int64_t threads() const { return threadsX() * threadsY(); }
  /// The x tile (rows x depth) and the k-major w tile, padded by one word
  /// per row so that the transposed copy hits distinct banks.
  SmallVector<int64_t> xTileShape() const { return {rows, depth}; }
  SmallVector<int64_t> wTileShape() const { return {depth, cols + 1}; }
  int64_t sharedBytes() const {
    return 4 * (rows * depth + depth * (cols + 1));
  }
};

/// Static shared memory a kernel may use on every NVIDIA and AMD GPU.
constexpr int64_t kMaxSharedBytes = 48 * 1024;
constexpr int64_t kMaxThreadsPerBlock = 1024;

/// Writes the phases of one block's work, for one thread `tid`: copy the
/// tiles at reduction offset k0 into shared memory, multiply them into the
/// accumulators, add the accumulators into y. The same code serves the GPU
/// kernel and its CPU emulation, which differ only in where `tid` comes from
/// and where the accumulators live.
class TileKernel {
public:
  TileKernel(const Matmul &mm, const KernelShape &shape, Value rows, Value cols,
             Value depth)
      : mm(mm), shape(shape), rows(rows), cols(cols), depth(depth) {}

  void emitTileCopies(ImplicitLocOpBuilder &b, Value tid, Value rowBase,
                      Value colBase, Value k0, Value xTile, Value wTile) {
    // Each copy reads along the source's contiguous dimension, so
    // consecutive threads read consecutive addresses.
    copyBlock(b, tid, mm.x, {rowBase, k0}, {rows, depth},
              {shape.rows, shape.depth}, xTile, /*transpose=*/false);
    if (mm.transposedWeight)
      copyBlock(b, tid, mm.w, {colBase, k0}, {cols, depth},
                {shape.cols, shape.depth}, wTile, /*transpose=*/true);
    else
      copyBlock(b, tid, mm.w, {k0, colBase}, {depth, cols},
                {shape.depth, shape.cols}, wTile, /*transpose=*/false);
  }

  /// accs[i * threadCols + j] += sum over the tile's depth of
  /// xTile[ty + i * threadsY, kk] * wTile[kk, tx + j * threadsX].
  SmallVector<Value> emitProducts(ImplicitLocOpBuilder &b, Value tid,
                                  Value xTile, Value wTile, ValueRange accs) {
    Value ty, tx;
    std::tie(ty, tx) = threadPosition(b, tid);
    auto loop = scf::ForOp::create(
        b, index(b, 0), index(b, shape.depth), index(b, 1), accs,
        [&](OpBuilder &nested, Location loc, Value kk, ValueRange current) {
          ImplicitLocOpBuilder nb(loc, nested);
          SmallVector<Value> xs, ws;
          for (int64_t i = 0; i < shape.threadRows; ++i)
            xs.push_back(memref::LoadOp::create(
                nb, xTile, ValueRange{localRow(nb, ty, i), kk}));
          for (int64_t j = 0; j < shape.threadCols; ++j)
            ws.push_back(memref::LoadOp::create(
                nb, wTile, ValueRange{kk, localCol(nb, tx, j)}));
          auto contract = arith::FastMathFlags::contract;
          SmallVector<Value> next;
          for (int64_t i = 0; i < shape.threadRows; ++i)
            for (int64_t j = 0; j < shape.threadCols; ++j)
              next.push_back(arith::AddFOp::create(
                  nb, arith::MulFOp::create(nb, xs[i], ws[j], contract),
                  current[i * shape.threadCols + j], contract));
          scf::YieldOp::create(nb, next);
        });
    return loop.getResults();
  }

  /// y[rowBase + ty + i * threadsY, colBase + tx + j * threadsX] += accs
  /// (= initial + accs with an initializer), inside y's bounds.
  void emitAccumulate(ImplicitLocOpBuilder &b, Value tid, Value rowBase,
                      Value colBase, ValueRange accs) {
    Value ty, tx;
    std::tie(ty, tx) = threadPosition(b, tid);
    for (int64_t i = 0; i < shape.threadRows; ++i) {
      Value row = add(b, rowBase, localRow(b, ty, i));
      for (int64_t j = 0; j < shape.threadCols; ++j) {
        Value col = add(b, colBase, localCol(b, tx, j));
        Value inside =
            arith::AndIOp::create(b, less(b, row, rows), less(b, col, cols));
        Value acc = accs[i * shape.threadCols + j];
        scf::IfOp::create(b, inside, [&](OpBuilder &nested, Location loc) {
          ImplicitLocOpBuilder nb(loc, nested);
          Value initial = mm.initialScalar;
          if (mm.initialBias)
            initial = memref::LoadOp::create(nb, mm.initialBias, col);
          else if (!initial)
            initial = memref::LoadOp::create(nb, mm.y, ValueRange{row, col});
          memref::StoreOp::create(nb, arith::AddFOp::create(nb, initial, acc),
                                  mm.y, ValueRange{row, col});
          scf::YieldOp::create(nb);
        });
      }
    }
  }

  static Value index(ImplicitLocOpBuilder &b, int64_t v) {
    return arith::ConstantIndexOp::create(b, v);
  }

private:
  static Value add(ImplicitLocOpBuilder &b, Value l, Value r) {
    return arith::AddIOp::create(b, l, r);
  }
  static Value less(ImplicitLocOpBuilder &b, Value l, Value r) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, l, r);
  }

  /// (ty, tx): the thread's row and column in the block's thread grid.
  std::pair<Value, Value> threadPosition(ImplicitLocOpBuilder &b, Value tid) {
    Value threadsX = index(b, shape.threadsX());
    return {arith::DivUIOp::create(b, tid, threadsX),
            arith::RemUIOp::create(b, tid, threadsX)};
  }
  Value localRow(ImplicitLocOpBuilder &b, Value ty, int64_t i) {
    return add(b, ty, index(b, i * shape.threadsY()));
  }
  Value localCol(ImplicitLocOpBuilder &b, Value tx, int64_t j) {
    return add(b, tx, index(b, j * shape.threadsX()));
  }

  /// source[i, j] (in f32) if i < extent0 and j < extent1, else 0.
  static Value loadOrZero(ImplicitLocOpBuilder &b, Value source, Value i,
                          Value j, Value extent0, Value extent1) {
    Value inside =
        arith::AndIOp::create(b, less(b, i, extent0), less(b, j, extent1));
    auto guarded = scf::IfOp::create(
        b, inside,
        [&](OpBuilder &nested, Location loc) {
          Value v =
              memref::LoadOp::create(nested, loc, source, ValueRange{i, j});
          if (!v.getType().isF32())
            v = arith::ExtFOp::create(nested, loc, nested.getF32Type(), v);
          scf::YieldOp::create(nested, loc, v);
        },
        [&](OpBuilder &nested, Location loc) {
          Value zero =
              arith::ConstantOp::create(nested, loc, nested.getF32FloatAttr(0));
          scf::YieldOp::create(nested, loc, zero);
        });
    return guarded.getResult(0);
  }

  /// tile[r, c] (tile[c, r] if `transpose`) = source[base + (r, c)] for the
  /// `extent` block at `base`, zero outside `bound`.
  void copyBlock(ImplicitLocOpBuilder &b, Value tid, Value source,
                 std::array<Value, 2> base, std::array<Value, 2> bound,
                 std::array<int64_t, 2> extent, Value tile, bool transpose) {
    emitCooperativeCopy(
        b, tid, extent[0], extent[1],
        [&](ImplicitLocOpBuilder &nb, Value r, Value c) {
          Value v = loadOrZero(nb, source, add(nb, base[0], r),
                               add(nb, base[1], c), bound[0], bound[1]);
          memref::StoreOp::create(
              nb, v, tile, transpose ? ValueRange{c, r} : ValueRange{r, c});
        });
  }

  /// Calls body(r, c) for every element of an extent0 x extent1 tile, the
  /// elements split round-robin over the block's threads in row-major order.
  void emitCooperativeCopy(
      ImplicitLocOpBuilder &b, Value tid, int64_t extent0, int64_t extent1,
      function_ref<void(ImplicitLocOpBuilder &, Value, Value)> body) {
    int64_t elements = extent0 * extent1, threads = shape.threads();
    for (int64_t first = 0; first < elements; first += threads) {
      Value element = add(b, tid, index(b, first));
      auto emit = [&](ImplicitLocOpBuilder &nb) {
        Value width = index(nb, extent1);
        body(nb, arith::DivUIOp::create(nb, element, width),
             arith::RemUIOp::create(nb, element, width));
      };
      if (first + threads <= elements) {
        emit(b);
        continue;
      }
      // The last round covers fewer elements than there are threads.
      scf::IfOp::create(b, less(b, element, index(b, elements)),
                        [&](OpBuilder &nested, Location loc) {
                          ImplicitLocOpBuilder nb(loc, nested);
                          emit(nb);
                          scf::YieldOp::create(nb);
                        });
    }
  }

  Matmul mm;
  KernelShape shape;
  Value rows, cols, depth;
};

struct GPUTileMatmulsPass
    : atmoe::impl::GPUTileMatmulsPassBase<GPUTileMatmulsPass> {
  using Base::Base;

  void runOnOperation() override {
    std::optional<KernelShape> large =
        parseShape(tile, {64, 64, 16}, threadTile, {4, 4}, "");
    std::optional<KernelShape> skinny = parseShape(
        skinnyTile, {16, 16, 64}, skinnyThreadTile, {1, 1}, "skinny-");
    if (!large || !skinny)
      return signalPassFailure();
    // One launch holds the tiles of both variants.
    if (skinnyRows > 0 &&
        large->sharedBytes() + skinny->sharedBytes() > kMaxSharedBytes) {
      getOperation()->emitError()
          << "the tiles of both variants take "
          << large->sharedBytes() + skinny->sharedBytes()
          << " bytes of shared memory, more than " << kMaxSharedBytes;
      return signalPassFailure();
    }
    if (skinnyRows < 0) {
      getOperation()->emitError("skinny-rows must not be negative");
      return signalPassFailure();
    }
    SmallVector<std::pair<linalg::MatmulOp, Matmul>> matmuls;
    getOperation()->walk([&](linalg::MatmulOp op) {
      if (std::optional<Matmul> mm = matchMatmul(op))
        matmuls.emplace_back(op, *mm);
    });
    IRRewriter rewriter(&getContext());
    for (auto &[op, mm] : matmuls) {
      matchInitializer(op, mm);
      rewriter.setInsertionPoint(op);
      ImplicitLocOpBuilder b(op.getLoc(), rewriter);
      lower(b, mm, *large, *skinny);
      rewriter.eraseOp(op);
      if (mm.initializer)
        rewriter.eraseOp(mm.initializer);
    }
  }

private:
  /// The kernel shape from `tile` and `threadTile` (defaults when empty),
  /// or an error naming the options with `prefix`.
  std::optional<KernelShape> parseShape(ArrayRef<int64_t> tile,
                                        ArrayRef<int64_t> defaultTile,
                                        ArrayRef<int64_t> threadTile,
                                        ArrayRef<int64_t> defaultThreadTile,
                                        StringRef prefix) {
    if (tile.empty())
      tile = defaultTile;
    if (threadTile.empty())
      threadTile = defaultThreadTile;
    auto fail = [&]() {
      return getOperation()->emitError()
             << "invalid " << prefix << "tile " << llvm::interleaved(tile)
             << " / " << prefix << "thread-tile "
             << llvm::interleaved(threadTile) << ": ";
    };
    if (tile.size() != 3 || threadTile.size() != 2) {
      fail() << "expected 3 and 2 sizes";
      return std::nullopt;
    }
    if (llvm::any_of(tile, [](int64_t s) { return s < 1; }) ||
        llvm::any_of(threadTile, [](int64_t s) { return s < 1; })) {
      fail() << "sizes must be positive";
      return std::nullopt;
    }
    KernelShape shape{tile[0], tile[1], tile[2], threadTile[0], threadTile[1]};
    if (shape.rows % shape.threadRows || shape.cols % shape.threadCols) {
      fail() << "the thread tile must divide the block tile";
      return std::nullopt;
    }
    if (shape.threads() > kMaxThreadsPerBlock) {
      fail() << shape.threads() << " threads per block, more than "
             << kMaxThreadsPerBlock;
      return std::nullopt;
    }
    if (shape.sharedBytes() > kMaxSharedBytes) {
      fail() << shape.sharedBytes() << " bytes of shared memory, more than "
             << kMaxSharedBytes;
      return std::nullopt;
    }
    return shape;
  }

  void lower(ImplicitLocOpBuilder &b, const Matmul &mm,
             const KernelShape &large, const KernelShape &skinny) {
    Value c0 = TileKernel::index(b, 0), c1 = TileKernel::index(b, 1);
    Value rows = memref::DimOp::create(b, mm.y, c0);
    Value cols = memref::DimOp::create(b, mm.y, c1);
    Value depth = memref::DimOp::create(b, mm.x, c1);
    Value few;
    if (skinnyRows > 0)
      few = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, rows,
                                  TileKernel::index(b, skinnyRows));
    if (cpuEmulation)
      emitEmulation(b, mm, large, skinny, few, rows, cols, depth);
    else
      emitLaunch(b, mm, large, skinny, few, rows, cols, depth);
  }

  static Value ceilDiv(ImplicitLocOpBuilder &b, Value v, int64_t d) {
    return arith::CeilDivUIOp::create(b, v, TileKernel::index(b, d));
  }

  static SmallVector<Value> zeros(ImplicitLocOpBuilder &b,
                                  const KernelShape &shape) {
    Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0));
    return SmallVector<Value>(shape.threadRows * shape.threadCols, zero);
  }

  /// scf.if `few` { thenBody } else { elseBody }, or elseBody alone when
  /// there is no skinny variant.
  static void
  emitVariants(ImplicitLocOpBuilder &b, Value few,
               function_ref<void(ImplicitLocOpBuilder &)> thenBody,
               function_ref<void(ImplicitLocOpBuilder &)> elseBody) {
    if (!few) {
      elseBody(b);
      return;
    }
    scf::IfOp::create(
        b, few,
        [&](OpBuilder &nested, Location loc) {
          ImplicitLocOpBuilder nb(loc, nested);
          thenBody(nb);
          scf::YieldOp::create(nb);
        },
        [&](OpBuilder &nested, Location loc) {
          ImplicitLocOpBuilder nb(loc, nested);
          elseBody(nb);
          scf::YieldOp::create(nb);
        });
  }

  /// One block's work in the kernel: the reduction in steps of
  /// shape.depth, each staging the tiles in shared memory between barriers,
  /// then the update of y.
  static void emitBlock(ImplicitLocOpBuilder &b, const Matmul &mm,
                        const KernelShape &shape, Value rows, Value cols,
                        Value depth, Value tid, Value blockX, Value blockY,
                        Value xTile, Value wTile) {
    TileKernel kernel(mm, shape, rows, cols, depth);
    Value rowBase =
        arith::MulIOp::create(b, blockY, TileKernel::index(b, shape.rows));
    Value colBase =
        arith::MulIOp::create(b, blockX, TileKernel::index(b, shape.cols));
    // Every thread runs the same number of steps, so the barriers are met
    // by all threads of the block.
    auto steps = scf::ForOp::create(
        b, TileKernel::index(b, 0), depth, TileKernel::index(b, shape.depth),
        zeros(b, shape),
        [&](OpBuilder &nested, Location loc, Value k0, ValueRange accs) {
          ImplicitLocOpBuilder nb(loc, nested);
          kernel.emitTileCopies(nb, tid, rowBase, colBase, k0, xTile, wTile);
          gpu::BarrierOp::create(nb);
          SmallVector<Value> next =
              kernel.emitProducts(nb, tid, xTile, wTile, accs);
          // The next step's copies overwrite the tiles.
          gpu::BarrierOp::create(nb);
          scf::YieldOp::create(nb, next);
        });
    kernel.emitAccumulate(b, tid, rowBase, colBase, steps.getResults());
  }

  /// One gpu.launch for both variants, so that the host code has no branch
  /// that would split the stream: the host picks the grid and block sizes
  /// of the variant, the kernel branches on the same (block-uniform) test.
  /// The tiles of both variants are workgroup attributions.
  void emitLaunch(ImplicitLocOpBuilder &b, const Matmul &mm,
                  const KernelShape &large, const KernelShape &skinny,
                  Value few, Value rows, Value cols, Value depth) {
    auto pick = [&](int64_t skinnyValue, int64_t largeValue) -> Value {
      Value l = TileKernel::index(b, largeValue);
      if (!few)
        return l;
      return arith::SelectOp::create(b, few, TileKernel::index(b, skinnyValue),
                                     l);
    };
    auto blocks = [&](Value extent, int64_t skinnyTile, int64_t largeTile) {
      Value l = ceilDiv(b, extent, largeTile);
      return few ? arith::SelectOp::create(b, few,
                                           ceilDiv(b, extent, skinnyTile), l)
                       .getResult()
                 : l;
    };
    Value c1 = TileKernel::index(b, 1);
    Value gridX = blocks(cols, skinny.cols, large.cols);
    // No rows: one block that only reads zeros and writes nothing, since a
    // launch of zero blocks is an error.
    Value gridY =
        arith::MaxUIOp::create(b, blocks(rows, skinny.rows, large.rows), c1);
    Value threads = pick(skinny.threads(), large.threads());

    auto workgroup = gpu::AddressSpaceAttr::get(b.getContext(),
                                                gpu::AddressSpace::Workgroup);
    auto tileType = [&](ArrayRef<int64_t> shape) -> Type {
      return MemRefType::get(shape, b.getF32Type(), AffineMap(), workgroup);
    };
    SmallVector<Type> tiles = {tileType(large.xTileShape()),
                               tileType(large.wTileShape())};
    if (few)
      tiles.append(
          {tileType(skinny.xTileShape()), tileType(skinny.wTileShape())});
    auto launch = gpu::LaunchOp::create(
        b, gridX, gridY, c1, threads, c1, c1,
        /*dynamicSharedMemorySize=*/nullptr, /*asyncTokenType=*/nullptr,
        /*asyncDependencies=*/ValueRange(), /*workgroupAttributions=*/tiles);
    ImplicitLocOpBuilder kb(b.getLoc(), b.getContext());
    kb.setInsertionPointToStart(&launch.getBody().front());
    ArrayRef<BlockArgument> shared = launch.getWorkgroupAttributions();
    Value tid = launch.getThreadIds().x;
    Value blockX = launch.getBlockIds().x, blockY = launch.getBlockIds().y;
    emitVariants(
        kb, few,
        [&](ImplicitLocOpBuilder &vb) {
          emitBlock(vb, mm, skinny, rows, cols, depth, tid, blockX, blockY,
                    shared[2], shared[3]);
        },
        [&](ImplicitLocOpBuilder &vb) {
          emitBlock(vb, mm, large, rows, cols, depth, tid, blockX, blockY,
                    shared[0], shared[1]);
        });
    gpu::TerminatorOp::create(kb);
  }

  /// The kernel as host code: the variant test, then the grid of the
  /// variant as sequential loops.
  void emitEmulation(ImplicitLocOpBuilder &b, const Matmul &mm,
                     const KernelShape &large, const KernelShape &skinny,
                     Value few, Value rows, Value cols, Value depth) {
    emitVariants(
        b, few,
        [&](ImplicitLocOpBuilder &vb) {
          emitEmulatedGrid(vb, mm, skinny, rows, cols, depth);
        },
        [&](ImplicitLocOpBuilder &vb) {
          emitEmulatedGrid(vb, mm, large, rows, cols, depth);
        });
  }

  /// The blocks and threads of a launch as sequential loops: each phase
  /// between two barriers is a loop over the block's threads; the tiles and
  /// the threads' accumulators are host buffers.
  void emitEmulatedGrid(ImplicitLocOpBuilder &b, const Matmul &mm,
                        const KernelShape &shape, Value rows, Value cols,
                        Value depth) {
    TileKernel kernel(mm, shape, rows, cols, depth);
    Type f32 = b.getF32Type();
    int64_t accsPerThread = shape.threadRows * shape.threadCols;
    Value xTile =
        memref::AllocaOp::create(b, MemRefType::get(shape.xTileShape(), f32));
    Value wTile =
        memref::AllocaOp::create(b, MemRefType::get(shape.wTileShape(), f32));
    Value accBuffer = memref::AllocaOp::create(
        b, MemRefType::get({shape.threads(), accsPerThread}, f32));
    Value c0 = TileKernel::index(b, 0), c1 = TileKernel::index(b, 1);
    auto loop = [&](ImplicitLocOpBuilder &ob, Value lo, Value hi, Value step,
                    function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
      scf::ForOp::create(
          ob, lo, hi, step, ValueRange{},
          [&](OpBuilder &nested, Location loc, Value iv, ValueRange) {
            ImplicitLocOpBuilder nb(loc, nested);
            body(nb, iv);
            scf::YieldOp::create(nb);
          });
    };
    auto forEachThread =
        [&](ImplicitLocOpBuilder &ob,
            function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
          loop(ob, c0, TileKernel::index(ob, shape.threads()), c1, body);
        };
    auto loadAccs = [&](ImplicitLocOpBuilder &ob, Value tid) {
      SmallVector<Value> accs;
      for (int64_t a = 0; a < accsPerThread; ++a)
        accs.push_back(memref::LoadOp::create(
            ob, accBuffer, ValueRange{tid, TileKernel::index(ob, a)}));
      return accs;
    };
    auto storeAccs = [&](ImplicitLocOpBuilder &ob, Value tid, ValueRange accs) {
      for (int64_t a = 0; a < accsPerThread; ++a)
        memref::StoreOp::create(ob, accs[a], accBuffer,
                                ValueRange{tid, TileKernel::index(ob, a)});
    };
    Value blocksY = arith::MaxUIOp::create(b, ceilDiv(b, rows, shape.rows), c1);
    Value blocksX = ceilDiv(b, cols, shape.cols);
    loop(b, c0, blocksY, c1, [&](ImplicitLocOpBuilder &by, Value blockY) {
      loop(by, c0, blocksX, c1, [&](ImplicitLocOpBuilder &bx, Value blockX) {
        Value rowBase = arith::MulIOp::create(
            bx, blockY, TileKernel::index(bx, shape.rows));
        Value colBase = arith::MulIOp::create(
            bx, blockX, TileKernel::index(bx, shape.cols));
        forEachThread(bx, [&](ImplicitLocOpBuilder &tb, Value tid) {
          storeAccs(tb, tid, zeros(tb, shape));
        });
        loop(bx, c0, depth, TileKernel::index(bx, shape.depth),
             [&](ImplicitLocOpBuilder &kb, Value k0) {
               forEachThread(kb, [&](ImplicitLocOpBuilder &tb, Value tid) {
                 kernel.emitTileCopies(tb, tid, rowBase, colBase, k0, xTile,
                                       wTile);
               });
               forEachThread(kb, [&](ImplicitLocOpBuilder &tb, Value tid) {
                 storeAccs(tb, tid,
                           kernel.emitProducts(tb, tid, xTile, wTile,
                                               loadAccs(tb, tid)));
               });
             });
        forEachThread(bx, [&](ImplicitLocOpBuilder &tb, Value tid) {
          kernel.emitAccumulate(tb, tid, rowBase, colBase, loadAccs(tb, tid));
        });
      });
    });
  }
};

} // namespace
