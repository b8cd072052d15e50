// conv2d_pack_patches, conv2d_pack_patches_transposed, conv2d_col2im_hwc_add
// and conv2d_transpose_block (generic): the implicit-GEMM convolution's data
// movement (cpp/src/conv2d_implicit.cpp).
//
// pack_patches_generic packs the A panels of a block of the patch matrix
// (pixels x taps, see fastconv/conv2d_patches.h): for each panel of mr
// pixels it splits the pixels into runs along output rows, then for each tap
// copies each run from its input row (zeros where the tap reads padding).
// The AVX-512 file has a vector version for stride 1 and falls back to this
// one otherwise. Covered by tests/test_conv2d.py (algo "implicit", every ISA,
// every case of cases.CONV_CASES) and tests/test_implicit.py.

namespace fastconv {
namespace FASTCONV_ISA_NS {

// Pixels [m0, m0+count) split into runs along output rows: run u covers
// pixels (n[u], p[u], q0[u] .. q0[u]+len[u]) and panel rows lane[u] ...
struct PatchRuns {
  int count = 0;
  int64_t n[16], p[16], q0[16], len[16], lane[16];
};
static inline void patch_runs(PatchRuns* r, const PatchSource& s, int64_t m0, int64_t count) {
  // Divide once for the first pixel, then walk along rows and images.
  const int64_t PQ = s.P * s.Q;
  int64_t n = m0 / PQ, p = (m0 % PQ) / s.Q, q = m0 % s.Q;
  r->count = 0;
  for (int64_t i = 0; i < count;) {
    const int u = r->count++;
    r->n[u] = n;
    r->p[u] = p;
    r->q0[u] = q;
    r->len[u] = imin(s.Q - q, count - i);
    r->lane[u] = i;
    i += r->len[u];
    q = 0;
    if (++p == s.P) {
      p = 0;
      ++n;
    }
  }
}

static void pack_patches_generic(float* dst, const PatchSource& s, int64_t m0, int64_t mb,
                                 int64_t k0, int64_t kd, int mr) {
  const int64_t RS = s.R * s.S, HW = s.H * s.W;
  PatchRuns runs;
  for (int64_t i0 = 0; i0 < mb; i0 += mr) {
    float* panel = dst + i0 * kd;
    const int64_t rows = imin(mr, mb - i0);
    patch_runs(&runs, s, m0 + i0, rows);
    int64_t c = k0 / RS, r = (k0 % RS) / s.S, t = k0 % s.S;  // tap (c, r, t)
    for (int64_t k = 0; k < kd; ++k) {
      float* out = panel + k * mr;
      for (int i = 0; i < mr; ++i) out[i] = 0.0f;
      for (int u = 0; u < runs.count; ++u) {
        const int64_t h = runs.p[u] * s.stride_h + s.off_h + r * s.dil_h;
        if (h < 0 || h >= s.H) continue;
        const float* row = s.x + (runs.n[u] * s.C + s.g * s.Cg + c) * HW + h * s.W;
        const int64_t w0 = runs.q0[u] * s.stride_w + s.off_w + t * s.dil_w;
        float* o = out + runs.lane[u];
        for (int64_t j = 0; j < runs.len[u]; ++j) {
          const int64_t w = w0 + j * s.stride_w;
          if (w >= 0 && w < s.W) o[j] = row[w];
        }
      }
      if (++t == s.S) {
        t = 0;
        if (++r == s.R) {
          r = 0;
          ++c;
        }
      }
    }
  }
}

[[maybe_unused]] static void pack_patches_transposed_generic(float* dst, const PatchSource& s,
                                                             int64_t m0, int64_t kd, int64_t o0,
                                                             int64_t no, int w) {
  const int64_t RS = s.R * s.S, HW = s.H * s.W, padded = (no + w - 1) / w * w;
  PatchRuns runs;
  for (int64_t d0 = 0; d0 < kd; d0 += 16) {  // 16 pixels (rows of the panels): at most 16 runs
    const int64_t nd = imin(16, kd - d0);
    patch_runs(&runs, s, m0 + d0, nd);
    for (int64_t o = 0; o < padded; ++o) {
      float* col = dst + (o / w) * w * kd + d0 * w + o % w;  // kd rows w apart
      for (int64_t d = 0; d < nd; ++d) col[d * w] = 0.0f;
      if (o >= no) continue;
      const int64_t tap = o0 + o, c = tap / RS, r = (tap % RS) / s.S, t = tap % s.S;
      for (int u = 0; u < runs.count; ++u) {
        const int64_t h = runs.p[u] * s.stride_h + s.off_h + r * s.dil_h;
        if (h < 0 || h >= s.H) continue;
        const float* row = s.x + (runs.n[u] * s.C + s.g * s.Cg + c) * HW + h * s.W;
        const int64_t w0 = runs.q0[u] * s.stride_w + s.off_w + t * s.dil_w;
        for (int64_t j = 0; j < runs.len[u]; ++j) {
          const int64_t ww = w0 + j * s.stride_w;
          if (ww >= 0 && ww < s.W) col[(runs.lane[u] + j) * w] = row[ww];
        }
      }
    }
  }
}

[[maybe_unused]] static void conv2d_transpose_block_generic(float* dst, int64_t ld_dst,
                                                            const float* src, int64_t ld_src,
                                                            int64_t rows, int64_t cols) {
  // 8 x 8 blocks: the reads stay in a few lines of src, the writes in a few of dst.
  for (int64_t i0 = 0; i0 < rows; i0 += 8)
    for (int64_t j0 = 0; j0 < cols; j0 += 8)
      for (int64_t j = j0; j < imin(cols, j0 + 8); ++j)
        for (int64_t i = i0; i < imin(rows, i0 + 8); ++i) dst[j * ld_dst + i] = src[i * ld_src + j];
}

void conv2d_col2im_hwc_add(float* dx_hwc, const float* rows, int64_t ld, const PatchSource& s,
                           int64_t pq0, int64_t count) {
  const int64_t Cg = s.Cg;
  int64_t p = pq0 / s.Q, q = pq0 % s.Q;
  for (int64_t i = 0; i < count; ++i) {
    const float* row = rows + i * ld;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t h = p * s.stride_h + s.off_h + r * s.dil_h;
      if (h < 0 || h >= s.H) continue;
      for (int64_t t = 0; t < s.S; ++t) {
        const int64_t w = q * s.stride_w + s.off_w + t * s.dil_w;
        if (w < 0 || w >= s.W) continue;
        float* out = dx_hwc + (h * s.W + w) * Cg;
        const float* in = row + (r * s.S + t) * Cg;
        for (int64_t c = 0; c < Cg; ++c) out[c] += in[c];
      }
    }
    if (++q == s.Q) {
      q = 0;
      ++p;
    }
  }
}

void conv2d_patch_rows(const float** rows, float* scratch, const float* zeros, const PatchSource& s,
                       int64_t m0, int m, int64_t k0, int64_t kd) {
  const int64_t PQ = s.P * s.Q, HW = s.H * s.W, RS = s.R * s.S;
  const int64_t n = m0 / PQ, p = (m0 % PQ) / s.Q, q0 = m0 % s.Q;
  const int64_t h0 = p * s.stride_h + s.off_h, w0 = q0 + s.off_w;  // tap (0, 0, 0), pixel 0
  const float* image = s.x + (n * s.C + s.g * s.Cg) * HW;
  int64_t c = k0 / RS, r = (k0 % RS) / s.S, t = k0 % s.S;
  for (int64_t k = 0; k < kd; ++k) {
    const int64_t h = h0 + r * s.dil_h, w = w0 + t * s.dil_w;  // pixel 0's input position
    if (h < 0 || h >= s.H) {
      rows[k] = zeros;
    } else {
      const float* src = image + c * HW + h * s.W;
      if (w >= 0 && w + m <= s.W) {
        rows[k] = src + w;
      } else {
        float* out = scratch + k * 16;
        for (int j = 0; j < m; ++j) out[j] = (w + j >= 0 && w + j < s.W) ? src[w + j] : 0.0f;
        rows[k] = out;
      }
    }
    if (++t == s.S) {
      t = 0;
      if (++r == s.R) {
        r = 0;
        ++c;
      }
    }
  }
}

#ifndef FASTCONV_NATIVE_PATCH_KERNELS
void conv2d_pack_patches(float* dst, const PatchSource& s, int64_t m0, int64_t mb, int64_t k0,
                         int64_t kd, int mr) {
  pack_patches_generic(dst, s, m0, mb, k0, kd, mr);
}

void conv2d_transpose_block(float* dst, int64_t ld_dst, const float* src, int64_t ld_src,
                            int64_t rows, int64_t cols) {
  conv2d_transpose_block_generic(dst, ld_dst, src, ld_src, rows, cols);
}

void conv2d_pack_patches_transposed(float* dst, const PatchSource& s, int64_t m0, int64_t kd,
                                    int64_t o0, int64_t no, int w) {
  pack_patches_transposed_generic(dst, s, m0, kd, o0, no, w);
}
#endif

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
