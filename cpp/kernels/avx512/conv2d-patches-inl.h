// conv2d_pack_patches__avx512 and transpose_block__avx512 (see
// kernels/generic/conv2d-patches-inl.h for what they compute).
//
// Packing: a panel's mr <= 16 pixels fall into a few runs along output rows;
// for each tap, every run is one masked load (stride 1 along W) or masked
// gather (other strides) placed at its lanes of one vector (a masked-off lane
// never faults, so the padding columns of a run are just lanes left at zero),
// and the panel row is one masked store. Which lanes of a run are inside the
// image depends only on the tap's column s, and whether its row is inside
// only on r: both come from tables made once per panel.
//
// Transposing: 16 x 16 blocks through registers (transpose16x16 of
// sgemm-pack-inl.h), masks at the edges.
#include <immintrin.h>

namespace fastconv {
namespace avx512 {

namespace {  // internal linkage: no weak symbol of AVX-512 code (test_gemm.py)

// Run tables of a block of pixels for the tap loops: which lanes of run u
// are inside the image for tap column t, whether its row is for tap row r,
// and where lane 0 of its vector would read for tap (0, 0, 0).
struct RunTables {
  static constexpr int kMaxTaps = 32;  // R, S up to this
  PatchRuns runs;
  __mmask16 col_mask[16][kMaxTaps];
  bool row_in[16][kMaxTaps];
  const float* base[16];
  bool unit_stride;
  __m512i lane_offsets;  // lane i reads i * stride_w floats after lane 0 (strided runs)
  void build(const PatchSource& s, int64_t m0, int64_t count) {
    const int64_t HW = s.H * s.W;
    unit_stride = s.stride_w == 1;
    if (!unit_stride)
      lane_offsets = _mm512_mullo_epi32(
          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
          _mm512_set1_epi32(static_cast<int>(s.stride_w)));
    patch_runs(&runs, s, m0, count);
    for (int u = 0; u < runs.count; ++u) {
      const int64_t h0 = runs.p[u] * s.stride_h + s.off_h;
      const int64_t w0 = runs.q0[u] * s.stride_w + s.off_w;
      for (int64_t r = 0; r < s.R; ++r) {
        const int64_t h = h0 + r * s.dil_h;
        row_in[u][r] = h >= 0 && h < s.H;
      }
      for (int64_t t = 0; t < s.S; ++t) {
        const int64_t w = w0 + t * s.dil_w;  // column of the run's first pixel
        // Pixels j of the run whose column w + j*stride_w lies in [0, W).
        const int64_t lo = unit_stride ? imax(0, -w) : first_in_range(w, s.stride_w);
        const int64_t hi =
            imin(runs.len[u], unit_stride ? s.W - w : end_in_range(w, s.stride_w, s.W));
        uint32_t bits = 0;
        if (hi > lo) bits = ((1u << (hi - lo)) - 1) << (runs.lane[u] + lo);
        col_mask[u][t] = static_cast<__mmask16>(bits);
      }
      // Where lane 0 of the vector would read (lane i at i*stride_w after it);
      // the pointer is only ever used with the lanes of col_mask.
      base[u] =
          s.x + (runs.n[u] * s.C + s.g * s.Cg) * HW + h0 * s.W + w0 - runs.lane[u] * s.stride_w;
    }
  }
  // The block's pixels of tap (c, r, t) at offset off = c*HW + r*dil_h*W + t*dil_w.
  __m512 load(int64_t r, int64_t t, int64_t off) const {
    __m512 v = _mm512_setzero_ps();
    for (int u = 0; u < runs.count; ++u) {
      if (!row_in[u][r]) continue;
      if (unit_stride) {
        v = _mm512_mask_loadu_ps(v, col_mask[u][t], base[u] + off);
      } else {
        v = _mm512_mask_i32gather_ps(v, col_mask[u][t], lane_offsets, base[u] + off, 4);
      }
    }
    return v;
  }
};

}  // namespace

void conv2d_pack_patches(float* dst, const PatchSource& s, int64_t m0, int64_t mb, int64_t k0,
                         int64_t kd, int mr) {
  if (mr > 16 || s.stride_w > 65536 || s.R > RunTables::kMaxTaps || s.S > RunTables::kMaxTaps)
    return pack_patches_generic(dst, s, m0, mb, k0, kd, mr);
  const int64_t RS = s.R * s.S, HW = s.H * s.W;
  const __mmask16 store_mask = static_cast<__mmask16>((1u << mr) - 1);
  RunTables tab;
  for (int64_t i0 = 0; i0 < mb; i0 += mr) {
    float* panel = dst + i0 * kd;
    tab.build(s, m0 + i0, imin(mr, mb - i0));
    int64_t c = k0 / RS, r = (k0 % RS) / s.S, t = k0 % s.S;  // tap (c, r, t)
    int64_t off = c * HW + r * s.dil_h * s.W + t * s.dil_w;  // its offset from base
    for (int64_t k = 0; k < kd; ++k) {
      _mm512_mask_storeu_ps(panel + k * mr, store_mask, tab.load(r, t, off));
      off += s.dil_w;
      if (++t == s.S) {
        t = 0;
        off += s.dil_h * s.W - s.S * s.dil_w;
        if (++r == s.R) {
          r = 0;
          ++c;
          off = c * HW;
        }
      }
    }
  }
}

void conv2d_pack_patches_transposed(float* dst, const PatchSource& s, int64_t m0, int64_t kd,
                                    int64_t o0, int64_t no, int w) {
  if (w % 16 != 0 || s.stride_w > 65536 || s.R > RunTables::kMaxTaps || s.S > RunTables::kMaxTaps)
    return pack_patches_transposed_generic(dst, s, m0, kd, o0, no, w);
  const int64_t RS = s.R * s.S, HW = s.H * s.W, padded = (no + w - 1) / w * w;
  constexpr int kChunk = 64;  // taps whose (r, t, offset) are worked out once per call
  int64_t tap_r[kChunk], tap_t[kChunk], tap_off[kChunk];
  RunTables tab;
  for (int64_t oc = 0; oc < padded; oc += kChunk) {
    const int64_t nc = imin(kChunk, padded - oc);
    for (int64_t i = 0; i < nc && oc + i < no; ++i) {
      const int64_t tap = o0 + oc + i, c = tap / RS, r = (tap % RS) / s.S, t = tap % s.S;
      tap_r[i] = r;
      tap_t[i] = t;
      tap_off[i] = c * HW + r * s.dil_h * s.W + t * s.dil_w;
    }
    for (int64_t d0 = 0; d0 < kd; d0 += 16) {  // 16 pixels: one block of rows of the panels
      const int64_t nd = imin(16, kd - d0);
      tab.build(s, m0 + d0, nd);
      for (int64_t og = oc; og < oc + nc; og += 16) {  // 16 taps: 16 columns of one panel
        __m512 v[16];
        for (int i = 0; i < 16; ++i) {
          const int64_t o = og + i, j = o - oc;
          v[i] = o < no ? tab.load(tap_r[j], tap_t[j], tap_off[j]) : _mm512_setzero_ps();
        }
        transpose16x16(v);  // v[j]: pixel d0 + j, 16 taps
        float* out = dst + (og / w) * w * kd + d0 * w + og % w;
        for (int j = 0; j < nd; ++j) _mm512_storeu_ps(out + j * w, v[j]);
      }
    }
  }
}

void conv2d_transpose_block(float* dst, int64_t ld_dst, const float* src, int64_t ld_src,
                            int64_t rows, int64_t cols) {
  // 16 rows of dst at a time, each written front to back: 16 sequential
  // streams (row-at-a-time blocks scattered over every row of dst ran at a
  // third of the speed on AlexNet conv1's output).
  for (int64_t j0 = 0; j0 < cols; j0 += 16) {
    const int64_t nj = imin(16, cols - j0);
    const __mmask16 load_mask = static_cast<__mmask16>((1u << nj) - 1);
    for (int64_t i0 = 0; i0 < rows; i0 += 16) {
      const int64_t ni = imin(16, rows - i0);
      const __mmask16 store_mask = static_cast<__mmask16>((1u << ni) - 1);
      __m512 v[16];
      for (int i = 0; i < 16; ++i)
        v[i] = i < ni ? _mm512_maskz_loadu_ps(load_mask, src + (i0 + i) * ld_src + j0)
                      : _mm512_setzero_ps();
      transpose16x16(v);
      for (int j = 0; j < nj; ++j)
        _mm512_mask_storeu_ps(dst + (j0 + j) * ld_dst + i0, store_mask, v[j]);
    }
  }
}

}  // namespace avx512
}  // namespace fastconv
