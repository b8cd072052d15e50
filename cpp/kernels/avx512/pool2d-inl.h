// max_row_2x2s2__avx512: the interior windows of one output row of a 2x2,
// stride-2, undilated max pool (the classic CNNs' pool), 16 at a time. Two
// rows of 32 inputs are split into their even and odd columns, and the four
// window positions are taken in PyTorch's order with its rule (greater, or
// NaN), so values and indices equal the generic loop's. Called by
// max_pool2d_forward (kernels/generic/pool2d-inl.h).
#include <immintrin.h>

namespace fastconv {
namespace avx512 {

static void max_row_2x2s2(float* yrow, int64_t* irow, const float* x, int64_t W, int64_t start,
                          int64_t q0, int64_t q1) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i lane2 = _mm512_add_epi32(even, _mm512_setzero_si512());  // 2 * lane
  const __m512i one = _mm512_set1_epi32(1), w_off = _mm512_set1_epi32(static_cast<int>(W));
  for (int64_t q = q0; q < q1; q += 16) {
    const int64_t n = imin(16, q1 - q);
    const __mmask16 out_mask = static_cast<__mmask16>((1u << n) - 1);
    // 2n inputs per row: lanes [0, 16) of lo and [0, 2n - 16) of hi.
    const __mmask16 lo_mask = static_cast<__mmask16>(n >= 8 ? 0xFFFF : (1u << (2 * n)) - 1);
    const __mmask16 hi_mask = static_cast<__mmask16>(n > 8 ? (1u << (2 * n - 16)) - 1 : 0);
    const int64_t first = start + 2 * q;
    const float* r0 = x + first;
    const float* r1 = r0 + W;
    const __m512 lo0 = _mm512_maskz_loadu_ps(lo_mask, r0),
                 hi0 = _mm512_maskz_loadu_ps(hi_mask, r0 + 16);
    const __m512 lo1 = _mm512_maskz_loadu_ps(lo_mask, r1),
                 hi1 = _mm512_maskz_loadu_ps(hi_mask, r1 + 16);
    const __m512 v[4] = {
        _mm512_permutex2var_ps(lo0, even, hi0), _mm512_permutex2var_ps(lo0, odd, hi0),
        _mm512_permutex2var_ps(lo1, even, hi1), _mm512_permutex2var_ps(lo1, odd, hi1)};
    // Window order (0,0), (0,1), (1,0), (1,1); offsets 0, 1, W, W + 1.
    __m512 best = v[0];
    __m512i off = lane2;
    for (int k = 1; k < 4; ++k) {
      const __mmask16 take =
          _mm512_cmp_ps_mask(v[k], best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v[k], v[k], _CMP_UNORD_Q);
      best = _mm512_mask_mov_ps(best, take, v[k]);
      __m512i o = lane2;
      if (k & 1) o = _mm512_add_epi32(o, one);
      if (k & 2) o = _mm512_add_epi32(o, w_off);
      off = _mm512_mask_mov_epi32(off, take, o);
    }
    _mm512_mask_storeu_ps(yrow + q, out_mask, best);
    if (irow) {
      const __m512i base = _mm512_set1_epi64(first);
      const __m512i i_lo =
          _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(off)));
      const __m512i i_hi =
          _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(off, 1)));
      _mm512_mask_storeu_epi64(irow + q, static_cast<__mmask8>(out_mask & 0xFF), i_lo);
      _mm512_mask_storeu_epi64(irow + q + 8, static_cast<__mmask8>(out_mask >> 8), i_hi);
    }
  }
}

}  // namespace avx512
}  // namespace fastconv
