// conv2d_dot_block__avx512 (see kernels/registry.inc for what it computes).
//
// kb x t dot products at once, 16 pixels per step: kb rows of a (dy planes)
// and t rows of b (shifted image rows) are loaded once per step and every
// pair meets in one FMA, so a step costs kb + t loads for kb * t FMAs (3 x 9:
// 12 loads, 27 FMAs; accumulators, kb vectors of a and one of b fill at
// most 32 registers: kb <= 3 with t <= 9, kb = 4 with t <= 6). The lanes are
// added up once, after the last image. A ragged last step uses masked loads
// (masked-off lanes are zeros and never fault).
#include <immintrin.h>

namespace fastconv {
namespace avx512 {

namespace {  // internal linkage: no weak symbol of AVX-512 code (test_gemm.py)

template <int KB, int T>
void dot_block(float* out, int64_t ldo, const float* const* a, const float* const* b, int64_t len,
               int64_t count, int64_t ld_a, int64_t ld_b) {
  __m512 acc[KB][T];
  _Pragma("GCC unroll 32")
  for (int i = 0; i < KB; ++i) _Pragma("GCC unroll 32")
  for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* ap[KB];
  const float* bp[T];
  _Pragma("GCC unroll 32")
  for (int i = 0; i < KB; ++i) ap[i] = a[i];
  _Pragma("GCC unroll 32")
  for (int j = 0; j < T; ++j) bp[j] = b[j];
  const int64_t full = len / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (len - full)) - 1);
  for (int64_t c = 0; c < count; ++c) {
    for (int64_t m = 0; m < full; m += 16) {
      __m512 av[KB];
      _Pragma("GCC unroll 32")
      for (int i = 0; i < KB; ++i) av[i] = _mm512_loadu_ps(ap[i] + m);
      _Pragma("GCC unroll 32")
      for (int j = 0; j < T; ++j) {
        const __m512 bv = _mm512_loadu_ps(bp[j] + m);
        _Pragma("GCC unroll 32")
        for (int i = 0; i < KB; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
    if (tail) {
      __m512 av[KB];
      _Pragma("GCC unroll 32")
      for (int i = 0; i < KB; ++i) av[i] = _mm512_maskz_loadu_ps(tail, ap[i] + full);
      _Pragma("GCC unroll 32")
      for (int j = 0; j < T; ++j) {
        const __m512 bv = _mm512_maskz_loadu_ps(tail, bp[j] + full);
        _Pragma("GCC unroll 32")
        for (int i = 0; i < KB; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
    _Pragma("GCC unroll 32")
    for (int i = 0; i < KB; ++i) ap[i] += ld_a;
    _Pragma("GCC unroll 32")
    for (int j = 0; j < T; ++j) bp[j] += ld_b;
  }
  _Pragma("GCC unroll 32")
  for (int i = 0; i < KB; ++i) _Pragma("GCC unroll 32")
  for (int j = 0; j < T; ++j) out[i * ldo + j] += _mm512_reduce_add_ps(acc[i][j]);
}

using DotBlockFn = void (*)(float*, int64_t, const float* const*, const float* const*, int64_t,
                            int64_t, int64_t, int64_t);

template <int KB, int... Ts>
constexpr DotBlockFn dot_block_for(int t, std::integer_sequence<int, Ts...>) {
  constexpr DotBlockFn fns[] = {&dot_block<KB, Ts + 1>...};
  return fns[t - 1];
}

}  // namespace

bool conv2d_dot_block(float* out, int64_t ldo, const float* const* a, const float* const* b,
                      int64_t len, int64_t count, int64_t ld_a, int64_t ld_b, int kb, int t) {
  if (!dot_block_supported(kb, t)) return false;
  if (out == nullptr) return true;  // the caller asks whether (kb, t) is supported
  DotBlockFn fn = nullptr;
  switch (kb) {
    case 1: fn = dot_block_for<1>(t, std::make_integer_sequence<int, 9>{}); break;
    case 2: fn = dot_block_for<2>(t, std::make_integer_sequence<int, 9>{}); break;
    case 3: fn = dot_block_for<3>(t, std::make_integer_sequence<int, 9>{}); break;
    default: fn = dot_block_for<4>(t, std::make_integer_sequence<int, 6>{}); break;
  }
  fn(out, ldo, a, b, len, count, ld_a, ld_b);
  return true;
}

}  // namespace avx512
}  // namespace fastconv

// conv2d_forward_rows__avx512: a tile of kb filters x v vectors of 16
// pixels in kb * v accumulators (kb * v + v + 1 <= 32 registers); each tap
// loads v vectors of its row and broadcasts kb weights (6 x 4: 10 loads per
// 24 FMAs).
namespace fastconv {
namespace avx512 {

namespace {

template <int KB, int V>
void forward_rows(float* y, int64_t ldy, const float* w, int64_t ldw, const float* const* rows,
                  int64_t taps, int64_t m0, int len, const float* bias, bool relu) {
  __m512 acc[KB][V];
  _Pragma("GCC unroll 32")
  for (int i = 0; i < KB; ++i) _Pragma("GCC unroll 32")
  for (int v = 0; v < V; ++v) acc[i][v] = _mm512_setzero_ps();
  const int last = len - 16 * (V - 1);  // lanes of the last vector, 1..16
  const __mmask16 tail = static_cast<__mmask16>(last >= 16 ? 0xFFFF : (1u << last) - 1);
  for (int64_t t = 0; t < taps; ++t) {
    const float* row = rows[t] + m0;
    __m512 xv[V];
    _Pragma("GCC unroll 32")
    for (int v = 0; v < V - 1; ++v) xv[v] = _mm512_loadu_ps(row + 16 * v);
    xv[V - 1] = _mm512_maskz_loadu_ps(tail, row + 16 * (V - 1));
    _Pragma("GCC unroll 32")
    for (int i = 0; i < KB; ++i) {
      const __m512 wi = _mm512_set1_ps(w[i * ldw + t]);
      _Pragma("GCC unroll 32")
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_fmadd_ps(wi, xv[v], acc[i][v]);
    }
  }
  _Pragma("GCC unroll 32")
  for (int i = 0; i < KB; ++i) {
    const __m512 bi = _mm512_set1_ps(bias ? bias[i] : 0.0f);
    _Pragma("GCC unroll 32")
    for (int v = 0; v < V; ++v) {
      __m512 r = bias ? _mm512_add_ps(acc[i][v], bi) : acc[i][v];
      if (relu) r = _mm512_maskz_max_ps(0xFFFF, _mm512_setzero_ps(), r);  // max(0, NaN) = NaN
      _mm512_mask_storeu_ps(y + i * ldy + 16 * v, v == V - 1 ? tail : 0xFFFF, r);
    }
  }
}

using ForwardRowsFn = void (*)(float*, int64_t, const float*, int64_t, const float* const*, int64_t,
                               int64_t, int, const float*, bool);

template <int KB, int V>
constexpr ForwardRowsFn forward_rows_fn() {
  if constexpr (KB * V + V + 1 <= 32) {  // accumulators, one row's vectors, a weight
    return &forward_rows<KB, V>;
  } else {
    return nullptr;
  }
}

// kForwardRows.fn[kb][v]: the kernel for that tile, null where its
// accumulators, vectors and broadcast weight would not fit the 32 registers.
struct ForwardRowsTable {
  ForwardRowsFn fn[8][8] = {};
  template <int KB, int... Vs>
  constexpr void fill(std::integer_sequence<int, Vs...>) {
    ((fn[KB][Vs + 1] = forward_rows_fn<KB, Vs + 1>()), ...);
  }
  template <int... KBs>
  constexpr ForwardRowsTable(std::integer_sequence<int, KBs...>) {
    (fill<KBs + 1>(std::make_integer_sequence<int, 7>{}), ...);
  }
};
constexpr ForwardRowsTable kForwardRows{std::make_integer_sequence<int, 7>{}};

}  // namespace

bool conv2d_forward_rows(float* y, int64_t ldy, const float* w, int64_t ldw,
                         const float* const* rows, int64_t taps, int64_t m0, int len, int kb,
                         const float* bias, bool relu) {
  if (kb < 1 || kb > 7 || len < 1 || len > 112) return false;
  const int v = (len + 15) / 16;
  const ForwardRowsFn fn = kForwardRows.fn[kb][v];
  if (fn == nullptr) return false;
  if (y != nullptr) fn(y, ldy, w, ldw, rows, taps, m0, len, bias, relu);
  return true;
}

}  // namespace avx512
}  // namespace fastconv

// conv2d_shift_image__avx512: each row of a copy is one masked load (stride
// 1; a masked gather for other strides) and one masked store per 16 columns;
// lanes outside the image are never read, so they never fault. The masks
// depend only on the copy's column shift: made once per copy.
namespace fastconv {
namespace avx512 {

void conv2d_shift_image(float* xs, const float* x, const Conv2dParams& p, int64_t Hp,
                        int64_t phases) {
  const int64_t Q = p.Q, sw = p.stride_w, chunks = (Q + 15) / 16;
  constexpr int64_t kMaxChunks = 64;  // masks made once per copy up to Q = 1024
  __mmask16 load_masks[kMaxChunks], store_masks[kMaxChunks];
  const __m512i lanes =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(sw)));
  float* dst = xs;
  for (int64_t s = 0; s < p.S; ++s) {
    const int64_t w0 = s * p.dil_w - p.pad_left;  // input column of q = 0
    const int64_t q_lo = imin(first_in_range(w0, sw), Q);
    const int64_t q_hi = imin(imax(end_in_range(w0, sw, p.W), q_lo), Q);
    // Chunk j's lanes: stored if q0 + lane < Q, read from x if in [q_lo, q_hi).
    auto masks = [&](int64_t j, __mmask16* load, __mmask16* store) {
      const int64_t q0 = 16 * j, n = imin(16, Q - q0);
      const int64_t lo = imax(q_lo - q0, 0), hi = imin(q_hi - q0, n);
      *store = static_cast<__mmask16>((1u << n) - 1);
      *load = hi > lo ? static_cast<__mmask16>(((1u << (hi - lo)) - 1) << lo) : 0;
    };
    const bool cached = chunks <= kMaxChunks;
    for (int64_t j = 0; cached && j < chunks; ++j) masks(j, &load_masks[j], &store_masks[j]);
    for (int64_t r0 = 0; r0 < phases; ++r0) {
      for (int64_t c = 0; c < p.C; ++c) {
        for (int64_t hp = 0; hp < Hp; ++hp, dst += Q) {
          const int64_t h = hp * p.stride_h + r0 - p.pad_top;
          const bool inside = h >= 0 && h < p.H;
          const float* src = x + (c * p.H + (inside ? h : 0)) * p.W + w0;
          for (int64_t j = 0; j < chunks; ++j) {
            __mmask16 load, store;
            if (cached) {
              load = load_masks[j];
              store = store_masks[j];
            } else {
              masks(j, &load, &store);
            }
            if (!inside) load = 0;
            const __m512 v = sw == 1 ? _mm512_maskz_loadu_ps(load, src + 16 * j)
                                     : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), load, lanes,
                                                                src + 16 * j * sw, 4);
            _mm512_mask_storeu_ps(dst + 16 * j, store, v);
          }
        }
      }
    }
  }
}

}  // namespace avx512
}  // namespace fastconv
