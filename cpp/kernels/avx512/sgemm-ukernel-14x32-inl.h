// sgemm_ukernel_14x32__avx512: the AVX-512 GEMM microkernel (see
// fastconv/gemm_tile.h for what one call computes).
//
// 14 rows x 32 columns of C live in 28 zmm accumulators; each k step loads
// two B vectors and broadcasts 14 A values (28 FMAs per 16 loads), leaving 3
// of the 32 registers for operands. Measured on Sapphire Rapids: ~178 GFLOP/s
// per core with A streamed from L2 (the FMA-only peak is ~215), the best of
// 6x64, 8x48, 12x32 and 14x32 once the B micro-panel (KC=256 x 32 floats =
// 32 KB) fits the 48 KB L1.
//
// Partial tiles: fewer rows run a variant compiled for that row count (no
// wasted FMAs), at most 16 columns a half-width variant; other ragged columns
// use masked loads and stores. Every element of C is computed by the same
// instruction sequence (the same FMAs in the same order) whatever the tile's
// size, so edge tiles round exactly like interior ones.
// Covered by tests/test_gemm.py (every m, n edge, every ISA).
#include <immintrin.h>

namespace fastconv {
namespace avx512 {

// The register tile: kSgemmMR rows x kSgemmNR columns of C (two vectors of 16).
constexpr int kSgemmMR = 14, kSgemmNR = 32;

static inline __m512 sgemm_finish(__m512 acc, const float* c, __mmask16 mask, const GemmTile& t,
                                  float row_bias, const float* col_bias) {
  __m512 v = t.alpha == 1.0f ? acc : _mm512_mul_ps(acc, _mm512_set1_ps(t.alpha));
  if (!t.first) {
    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c));
  } else if (t.beta != 0.0f) {
    v = _mm512_fmadd_ps(_mm512_set1_ps(t.beta), _mm512_maskz_loadu_ps(mask, c), v);
  }
  if (t.last) {
    if (t.row_bias) v = _mm512_add_ps(v, _mm512_set1_ps(row_bias));
    if (col_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, col_bias));
    if (t.relu) v = _mm512_maskz_max_ps(0xFFFF, _mm512_setzero_ps(), v);  // max(0, NaN) = NaN
  }
  return v;
}

namespace {  // internal linkage: no weak symbol in an ISA object (test_gemm.py)
// Where depth step k of A lies: a packed panel (MR values per step) or rows
// given one by one (sgemm_ukernel_indirect).
struct PackedA {
  const float* a;
  const float* at(int64_t k) const { return a + kSgemmMR * k; }
  const float* ahead(int64_t k) const { return a + kSgemmMR * (k + 12); }  // A streams from L2
};
struct RowsA {  // the data may be anywhere in L2: fetch 8 steps ahead
  const float* const* rows;
  int64_t last;  // kc - 1
  const float* at(int64_t k) const { return rows[k]; }
  const float* ahead(int64_t k) const { return rows[k + 8 < last ? k + 8 : last]; }
};
}  // namespace

// M rows x NV*16 columns (NV = 2, or 1 for a tile of at most 16 columns:
// half the FMAs for the ragged last panel of a narrow C, e.g. 169 columns).
template <int M, int NV, class A>
static void sgemm_ukernel_rows(float* c, const A a, const float* b, const GemmTile& t) {
  __m512 acc[M][NV];
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  // The tile of C is read and written after the k loop: fetch its lines now
  // so they arrive while the FMAs run (large C lives in L3 or memory).
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < NV; ++v)
      _mm_prefetch(reinterpret_cast<const char*>(c + i * t.ldc + 16 * v), _MM_HINT_T0);
  for (int64_t k = 0; k < t.kc; ++k) {
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
    _mm_prefetch(reinterpret_cast<const char*>(a.ahead(k)), _MM_HINT_T0);
    const float* ak = a.at(k);
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(ak[i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    b += t.ldb;
  }
  const int n = t.n;
  const __mmask16 m0 = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 m1 = n >= 32   ? 0xFFFF
                       : n <= 16 ? 0
                                 : static_cast<__mmask16>((1u << (n - 16)) - 1);
  const float* cb = t.last ? t.col_bias : nullptr;
  for (int i = 0; i < M; ++i) {
    float* ci = c + i * t.ldc;
    const float rb = (t.last && t.row_bias) ? t.row_bias[i] : 0.0f;
    _mm512_mask_storeu_ps(ci, m0, sgemm_finish(acc[i][0], ci, m0, t, rb, cb));
    if (NV == 2 && m1)
      _mm512_mask_storeu_ps(
          ci + 16, m1, sgemm_finish(acc[i][NV - 1], ci + 16, m1, t, rb, cb ? cb + 16 : nullptr));
  }
}

template <int NV, class A>
static void sgemm_ukernel_cols(float* c, const A a, const float* b, const GemmTile& t) {
  static_assert(kSgemmMR == 14, "one case per row count 1..MR");
  switch (t.m) {
    case 14: return sgemm_ukernel_rows<14, NV>(c, a, b, t);
    case 13: return sgemm_ukernel_rows<13, NV>(c, a, b, t);
    case 12: return sgemm_ukernel_rows<12, NV>(c, a, b, t);
    case 11: return sgemm_ukernel_rows<11, NV>(c, a, b, t);
    case 10: return sgemm_ukernel_rows<10, NV>(c, a, b, t);
    case 9: return sgemm_ukernel_rows<9, NV>(c, a, b, t);
    case 8: return sgemm_ukernel_rows<8, NV>(c, a, b, t);
    case 7: return sgemm_ukernel_rows<7, NV>(c, a, b, t);
    case 6: return sgemm_ukernel_rows<6, NV>(c, a, b, t);
    case 5: return sgemm_ukernel_rows<5, NV>(c, a, b, t);
    case 4: return sgemm_ukernel_rows<4, NV>(c, a, b, t);
    case 3: return sgemm_ukernel_rows<3, NV>(c, a, b, t);
    case 2: return sgemm_ukernel_rows<2, NV>(c, a, b, t);
    default: return sgemm_ukernel_rows<1, NV>(c, a, b, t);
  }
}

void sgemm_ukernel(float* c, const float* a, const float* b, const GemmTile& t) {
  if (t.n <= 16) return sgemm_ukernel_cols<1>(c, PackedA{a}, b, t);
  return sgemm_ukernel_cols<2>(c, PackedA{a}, b, t);
}

void sgemm_ukernel_indirect(float* c, const float* const* a, const float* b, const GemmTile& t) {
  if (t.kc <= 0) return sgemm_ukernel_cols<1>(c, PackedA{nullptr}, b, t);  // C = epilogue only
  if (t.n <= 16) return sgemm_ukernel_cols<1>(c, RowsA{a, t.kc - 1}, b, t);
  return sgemm_ukernel_cols<2>(c, RowsA{a, t.kc - 1}, b, t);
}

}  // namespace avx512
}  // namespace fastconv
