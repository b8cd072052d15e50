// sgemm_pack_transposed__avx512: packs one GEMM panel from an outer-major
// source (each outer index a contiguous row along depth), i.e. a transpose:
//   dst[k*w + o] = src[o*ld + k]  for o < n, k < kd;  dst[k*w + o] = 0 for n <= o < w.
// Blocks of 16 rows x 16 depth values go through registers with a 16x16
// transpose (unpack, shuffle, two lane shuffles: 64 shuffles per 256 floats);
// ragged rows and depth use masks. Covered by tests/test_gemm.py (every
// transpose combination and edge, every ISA).
#include <immintrin.h>

namespace fastconv {
namespace avx512 {

// r[i] (row i, 16 columns) -> r[j] (column j, 16 rows).
static inline void transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // rows 4g..4g+3; u[4g + j]: their column 4l + j of each lane l
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4;
       ++j) {  // gather lane l of u[j], u[4+j], u[8+j], u[12+j] into column 4l + j
    const __m512 x0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 x1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 y0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 y1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(x0, y0, 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
    r[4 + j] = _mm512_shuffle_f32x4(x1, y1, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
  }
}

void sgemm_pack_transposed(float* dst, const float* src, int64_t ld, int64_t n, int64_t kd, int w) {
  for (int o0 = 0; o0 < w; o0 += 16) {
    const int lanes = w - o0 < 16 ? w - o0 : 16;  // outer values stored per depth row
    const __mmask16 store_mask = static_cast<__mmask16>((1u << lanes) - 1);
    for (int64_t k0 = 0; k0 < kd; k0 += 16) {
      const int64_t kn = kd - k0 < 16 ? kd - k0 : 16;
      const __mmask16 load_mask = static_cast<__mmask16>((1u << kn) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t o = o0 + i;
        r[i] = (i < lanes && o < n) ? _mm512_maskz_loadu_ps(load_mask, src + o * ld + k0)
                                    : _mm512_setzero_ps();
      }
      transpose16x16(r);
      for (int64_t kk = 0; kk < kn; ++kk)
        _mm512_mask_storeu_ps(dst + (k0 + kk) * w + o0, store_mask, r[kk]);
    }
  }
}

}  // namespace avx512
}  // namespace fastconv
