// sgemm_pack_transposed__avx2: packs one GEMM panel from an outer-major
// source (a transpose, see the AVX-512 version), with 8x8 register
// transposes; ragged rows and depth use masked loads and stores.
#include <immintrin.h>

namespace fastconv {
namespace avx2 {

// r[i] (row i, 8 columns) -> r[j] (column j, 8 rows).
static inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g + 0], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g + 0], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) {  // lane 0 holds column j, lane 1 column 4 + j
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

static inline __m256i pack_mask8(int64_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
}

void sgemm_pack_transposed(float* dst, const float* src, int64_t ld, int64_t n, int64_t kd, int w) {
  for (int o0 = 0; o0 < w; o0 += 8) {
    const int lanes = w - o0 < 8 ? w - o0 : 8;
    const __m256i store_mask = pack_mask8(lanes);
    for (int64_t k0 = 0; k0 < kd; k0 += 8) {
      const int64_t kn = kd - k0 < 8 ? kd - k0 : 8;
      const __m256i load_mask = pack_mask8(kn);
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const int64_t o = o0 + i;
        r[i] = (i < lanes && o < n) ? _mm256_maskload_ps(src + o * ld + k0, load_mask)
                                    : _mm256_setzero_ps();
      }
      transpose8x8(r);
      for (int64_t kk = 0; kk < kn; ++kk)
        _mm256_maskstore_ps(dst + (k0 + kk) * w + o0, store_mask, r[kk]);
    }
  }
}

}  // namespace avx2
}  // namespace fastconv
