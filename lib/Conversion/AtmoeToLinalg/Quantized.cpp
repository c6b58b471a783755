//===- Quantized.cpp - GPTQ base weights to linalg --------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A GPTQ weight is never materialised for a projection: its matmul is one
// linalg.generic over (t, n, k) that reads the packed word, the group's scale
// and zero point through affine maps (k floordiv values-per-word, ...) and
// unpacks the value in its body, so that tiling, fusion and the CPU kernel
// (--atmoe-lower-cpu-matmuls) see packed bytes only. Where another op needs
// all of W (a merged sequence), atmoe.dequantize becomes a generic that
// writes it.
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::lowering;

namespace {

/// The input maps of the packed operands over the dims (out, in) of W:
/// qweight, scales and, when present, zeros.
SmallVector<AffineMap> packedMaps(GptqAttr quant, AffineExpr out, AffineExpr in,
                                  unsigned numDims, bool hasZeros) {
  MLIRContext *context = out.getContext();
  AffineExpr group = in.floorDiv(quant.getGroupSize());
  SmallVector<AffineMap> maps = {
      AffineMap::get(numDims, 0, {in.floorDiv(quant.getValuesPerWord()), out},
                     context),
      AffineMap::get(numDims, 0, {group, out}, context)};
  if (hasZeros)
    maps.push_back(AffineMap::get(
        numDims, 0, {group, out.floorDiv(quant.getValuesPerWord())}, context));
  return maps;
}

/// Value `position` (0 .. values per word - 1) of a packed word, lowest bits
/// first, as f32.
Value unpack(OpBuilder &b, Location loc, GptqAttr quant, Value word,
             Value position) {
  Type i32 = b.getI32Type();
  Value bits = arith::ConstantIntOp::create(b, loc, i32, quant.getBits());
  Value shift = arith::MulIOp::create(
      b, loc, arith::IndexCastOp::create(b, loc, i32, position), bits);
  Value mask =
      arith::ConstantIntOp::create(b, loc, i32, (1 << quant.getBits()) - 1);
  Value value = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, word, shift), mask);
  return arith::UIToFPOp::create(b, loc, b.getF32Type(), value);
}

} // namespace

Value lowering::dequantizeElement(OpBuilder &b, Location loc, GptqAttr quant,
                                  ValueRange packed, Value out, Value in) {
  Value perWord =
      arith::ConstantIndexOp::create(b, loc, quant.getValuesPerWord());
  Value q = unpack(b, loc, quant, packed[0],
                   arith::RemUIOp::create(b, loc, in, perWord));
  Value zero;
  if (packed.size() > 2) {
    zero = unpack(b, loc, quant, packed[2],
                  arith::RemUIOp::create(b, loc, out, perWord));
    if (quant.getZeroOffset())
      zero = arith::AddFOp::create(
          b, loc, zero,
          arith::ConstantOp::create(
              b, loc, b.getF32FloatAttr(float(quant.getZeroOffset()))));
  } else {
    zero = arith::ConstantOp::create(
        b, loc, b.getF32FloatAttr(float(1 << (quant.getBits() - 1))));
  }
  Value scale = widenToF32(b, loc, packed[1]);
  return arith::MulFOp::create(b, loc, scale,
                               arith::SubFOp::create(b, loc, q, zero));
}

Value lowering::quantizedMatmulTransposeB(OpBuilder &b, Location loc, Value lhs,
                                          DequantizeOp weight, Value init,
                                          StringRef role) {
  MLIRContext *context = b.getContext();
  GptqAttr quant = weight.getQuantization();
  AffineExpr t, n, k;
  bindDims(context, t, n, k);
  SmallVector<Value> inputs = {lhs, weight.getQweight(), weight.getScales()};
  if (weight.getZeros())
    inputs.push_back(weight.getZeros());
  SmallVector<AffineMap> maps = {AffineMap::get(3, 0, {t, k}, context)};
  llvm::append_range(maps, packedMaps(quant, n, k, 3, bool(weight.getZeros())));
  maps.push_back(AffineMap::get(3, 0, {t, n}, context));
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps,
      {utils::IteratorType::parallel, utils::IteratorType::parallel,
       utils::IteratorType::reduction},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value w =
            dequantizeElement(nb, nloc, quant, args.slice(1, args.size() - 2),
                              linalg::IndexOp::create(nb, nloc, 1),
                              linalg::IndexOp::create(nb, nloc, 2));
        Value product = arith::MulFOp::create(nb, nloc, args[0], w);
        linalg::YieldOp::create(
            nb, nloc,
            arith::AddFOp::create(nb, nloc, args.back(), product).getResult());
      });
  generic->setAttr(kMatmulRoleAttr, b.getStringAttr(role));
  generic->setAttr(AtmoeDialect::kQuantizationAttrName, quant);
  return generic.getResult(0);
}

Value lowering::baseProduct(OpBuilder &b, Location loc, Value lhs,
                            Value sourceWeight, Value weight, Value init,
                            StringRef role) {
  if (auto quantized = sourceWeight.getDefiningOp<DequantizeOp>())
    return quantizedMatmulTransposeB(b, loc, lhs, quantized, init, role);
  return matmulTransposeB(b, loc, lhs, weight, init, role);
}

namespace {

/// W itself, for the ops that need all of it.
struct DequantizeLowering : OpConversionPattern<DequantizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DequantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = rewriter.getContext();
    GptqAttr quant = op.getQuantization();
    AffineExpr o, i;
    bindDims(context, o, i);
    SmallVector<Value> inputs = {adaptor.getQweight(), adaptor.getScales()};
    if (adaptor.getZeros())
      inputs.push_back(adaptor.getZeros());
    SmallVector<AffineMap> maps =
        packedMaps(quant, o, i, 2, bool(adaptor.getZeros()));
    maps.push_back(AffineMap::getMultiDimIdentityMap(2, context));
    Value empty = tensor::EmptyOp::create(
        rewriter, loc, op.getType().getShape(), rewriter.getF32Type());
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{op.getType()}, inputs, ValueRange{empty}, maps,
        SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location nloc, ValueRange args) {
          linalg::YieldOp::create(
              nb, nloc,
              dequantizeElement(nb, nloc, quant, args.drop_back(),
                                linalg::IndexOp::create(nb, nloc, 0),
                                linalg::IndexOp::create(nb, nloc, 1)));
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

} // namespace

void lowering::populateQuantizedPatterns(RewritePatternSet &patterns) {
  patterns.add<DequantizeLowering>(patterns.getContext());
}
