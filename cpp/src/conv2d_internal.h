// Internal to the conv2d drivers (cpp/src/conv2d*.cpp).
#pragma once

#include <cstdint>

#include "fastconv/conv2d.h"

namespace fastconv {

// The batch reduction of the weight gradient is split into this many chunks
// of consecutive images (fewer if N is smaller), whatever the thread count;
// chunk partials are added in chunk order. So dw is bitwise identical for
// any number of threads.
constexpr int64_t kWeightGradChunks = 8;
inline int64_t weight_grad_chunks(int64_t N) {
  return N < kWeightGradChunks ? N : kWeightGradChunks;
}
inline int64_t chunk_begin(int64_t chunk, int64_t chunks, int64_t N) { return chunk * N / chunks; }

// The chunks [first, first + count) of that reduction, computed together;
// chunk c's partial goes to partials + (c - first) * K*C/G*R*S. The driver
// adds each wave's partials into dw in chunk order, so the waves' size
// changes the memory held, never the result.
struct ChunkWave {
  int64_t first = 0, count = 0;
};

// col (C/G*R*S, P*Q) = the patches of group g of one image x (C,H,W); padding
// gives zeros. Row (c, r, s) holds x[g*C/G + c, p*sh - pad_top + r*dil_h, ...]
// for every output position (p, q).
void im2col(float* col, const float* x, const Conv2dParams& p, int64_t g);

// dx (the C/G channels of group g of one image, H, W) = 0, then every column
// entry is added back to the input position it was read from (col2im).
void col2im(float* dx, const float* col, const Conv2dParams& p, int64_t g);

Status conv2d_forward_im2col(float* y, const float* x, const float* w, const float* b,
                             const Conv2dParams& p, bool relu);
Status conv2d_backward_input_im2col(float* dx, const float* dy, const float* w,
                                    const Conv2dParams& p);
// dw_partials holds wave.count arrays of K*C/G*R*S floats.
Status conv2d_backward_weight_im2col(float* dw_partials, const float* dy, const float* x,
                                     const Conv2dParams& p, const ChunkWave& wave);

// The implicit-GEMM algorithm (conv2d_implicit.cpp): the batch as one GEMM
// per group, pixels as rows, patches packed straight from the images.
Status conv2d_forward_implicit(float* y, const float* x, const float* w, const float* b,
                               const Conv2dParams& p, bool relu);
// dw_partials holds wave.count arrays of K*C/G*R*S floats.
Status conv2d_backward_weight_implicit(float* dw_partials, const float* dy, const float* x,
                                       const Conv2dParams& p, const ChunkWave& wave);
Status conv2d_backward_input_implicit(float* dx, const float* dy, const float* w,
                                      const Conv2dParams& p);

// The direct algorithm over shifted image copies (conv2d_direct.cpp), each
// pass where its ..._applies says (backward-input: stride 1; forward: the
// ISA has the tile kernel).
bool conv2d_forward_shifted_applies(const Conv2dParams& p);
Status conv2d_forward_shifted(float* y, const float* x, const float* w, const float* b,
                              const Conv2dParams& p, bool relu);
// w: the weights, whose finiteness counts, or null to ask about the shape only.
// pooled, indices (N, K, pool.P, pool.Q) = max_pool2d of conv2d_forward_shifted's
// y, one image at a time (its y never leaves the thread's workspace).
Status conv2d_forward_shifted_max_pool(float* pooled, int64_t* indices, const float* x,
                                       const float* w, const float* b, const Conv2dParams& p,
                                       bool relu, const Pool2dParams& pool);
bool conv2d_backward_input_shifted_applies(const Conv2dParams& p, const float* w);
Status conv2d_backward_input_shifted(float* dx, const float* dy, const float* w,
                                     const Conv2dParams& p);
bool conv2d_backward_weight_shifted_applies(const Conv2dParams& p);
// dw_partials holds wave.count arrays of K*C/G*R*S floats.
Status conv2d_backward_weight_shifted(float* dw_partials, const float* dy, const float* x,
                                      const Conv2dParams& p, const ChunkWave& wave);

}  // namespace fastconv
