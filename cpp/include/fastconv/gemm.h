// The one GEMM of fastconv and its packing interface.
//
// Every GEMM-based path (im2col convolution forward and backward, linear)
// goes through gemm() here. The structure is BLIS's: op(A) and op(B) are
// packed into contiguous micro-panels, blocked for the caches (MC, KC, NC per
// ISA in one table, see gemm_blocking()), and multiplied by a register-blocked
// microkernel (sgemm_ukernel in kernels/registry.inc) whose MR x NR tile is
// the ISA's (14x32 on AVX-512: sgemm_ukernel_14x32__avx512).
//
// Operands are GemmOperand objects that pack themselves, so the convolution
// code can feed the GEMM straight from an image (implicit im2col) or from
// weights packed once per call, without an intermediate matrix.
#pragma once

#include <cstdint>
#include <functional>

#include "fastconv/status.h"

namespace fastconv {

enum class Trans { kNo = 0, kYes = 1 };

// The register tile and cache blocking of the active ISA.
struct GemmBlocking {
  int mr, nr;          // microkernel tile: MR rows of C by NR columns (the kernel table's)
  int64_t mc, kc, nc;  // A block MC x KC (L2), B panel KC x NC (L3), B micro-panel KC x NR (L1)
};
GemmBlocking gemm_blocking();

// One GEMM operand, seen as (outer x depth): for A the outer dimension is M
// (rows of C), for B it is N (columns of C); depth is K for both.
//
// pack() writes the block [o0, o0+no) x [k0, k0+kd) as panels of w outer
// indices, depth-major inside a panel:
//   dst[(o / w) * w * kd + (k - k0) * w + (o % w)],  o = o - o0,
// zero-filling the missing outer indices of the last panel. It may be called
// from several threads at once for different blocks.
class GemmOperand {
 public:
  virtual ~GemmOperand() = default;
  virtual void pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const = 0;
  // Already-packed panels of that block in the same layout, or null (then
  // the GEMM calls pack()). o0 is a multiple of w, k0 of the blocking's kc.
  virtual const float* packed(int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const {
    return nullptr;
  }
  // The operand read where it lies: a pointer p and a stride ld such that
  // element (o0 + j, k0 + k) is p[k*ld + j] for every j < w and k in the
  // block, or null. The GEMM uses it for B when M is small, where packing B
  // costs as much as using it.
  virtual const float* in_place(int64_t o0, int64_t k0, int64_t* ld) const { return nullptr; }
};

// A dense row-major matrix: element (o, k) is data[o*ld + k] when
// outer_major, else data[k*ld + o].
class DenseOperand final : public GemmOperand {
 public:
  DenseOperand(const float* data, int64_t ld, bool outer_major)
      : data_(data), ld_(ld), outer_major_(outer_major) {}
  // op(A) of sgemm (outer = rows of op(A)), op(B) of sgemm (outer = columns).
  static DenseOperand A(const float* a, int64_t lda, Trans t) { return {a, lda, t == Trans::kNo}; }
  static DenseOperand B(const float* b, int64_t ldb, Trans t) { return {b, ldb, t == Trans::kYes}; }
  void pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const override;
  const float* in_place(int64_t o0, int64_t k0, int64_t* ld) const override {
    if (outer_major_) return nullptr;
    *ld = ld_;
    return data_ + k0 * ld_ + o0;
  }

 private:
  const float* data_;
  int64_t ld_;
  bool outer_major_;
};

// A whole operand packed once, for the active blocking (for example a
// convolution's weights, shared by every image of the batch), in a buffer
// the caller owns (size(): floats).
class PackedOperand final : public GemmOperand {
 public:
  // Packs src (outer x depth) into buf with panel width w (the blocking's mr
  // for an A operand, nr for a B operand).
  PackedOperand(const GemmOperand& src, int64_t outer, int64_t depth, int w, float* buf);
  static int64_t size(int64_t outer, int64_t depth, int w);
  void pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const override;
  const float* packed(int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const override;

 private:
  float* buf_;
  int64_t outer_, depth_, outer_padded_, kc_;
  int w_;
};

// What is added to C after the last K block: a value per row (the bias of a
// convolution's output channel), a value per column (the bias of a linear
// layer's output feature), then max(., 0) if relu.
struct GemmEpilogue {
  const float* row_bias = nullptr;  // M values, or null
  const float* col_bias = nullptr;  // N values, or null
  bool relu = false;
};

// C (M,N) = alpha * op(A) * op(B) + beta * C, then the epilogue.
// C is row-major with leading dimension ldc. beta == 0 never reads C (C may
// hold NaN). The k loop is never split across threads and every element of
// C adds its K terms in the same order (KC blocks in increasing k) whatever
// the number of threads or the position of its tile, so results are bitwise
// identical for any thread count, and equal between gemm and gemm_serial.
Status gemm(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
            const GemmOperand& B, float beta, float* C, int64_t ldc,
            const GemmEpilogue& epilogue = GemmEpilogue());
// The same on the calling thread only (for use inside a parallel region).
Status gemm_serial(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
                   const GemmOperand& B, float beta, float* C, int64_t ldc,
                   const GemmEpilogue& epilogue = GemmEpilogue());

// The BLAS-style entry points on dense row-major matrices:
// op(A)[i][p] is A[i*lda + p] (kNo) or A[p*lda + i] (kYes); likewise for B.
Status sgemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
Status sgemm_serial(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

// gemm() when threaded, else gemm_serial().
Status gemm_on(bool threaded, int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
               const GemmOperand& B, float beta, float* C, int64_t ldc,
               const GemmEpilogue& epilogue = GemmEpilogue());

// How the threads share an op made of `count` independent GEMMs (an im2col
// convolution's images): body(i, threaded) computes product i with
// gemm_on(threaded, ...). With at least two products per thread they run in
// parallel, each GEMM on its thread; else one after another, each GEMM
// threaded (which gemm() does above its size threshold). Each product is
// computed the same way either way, so results do not depend on the choice.
Status gemm_for_each(int64_t count, const std::function<Status(int64_t i, bool threaded)>& body);

}  // namespace fastconv
