// conv2d op drivers: choose the algorithm, run the direct kernels over
// output planes in parallel, or hand over to the im2col drivers.
//
// Threads split outputs that do not overlap: (n, k) planes of y, (n, c)
// planes of dx, filters of dw per chunk of images (see conv2d_internal.h).
// Every reduction runs in a fixed order, so results are bitwise identical
// for any thread count.
#include <cstring>
#include <string>

#include "conv2d_internal.h"
#include "fastconv/dispatch.h"
#include "fastconv/threading.h"

namespace fastconv {

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::kAuto: return "auto";
    case ConvAlgo::kDirect: return "direct";
    case ConvAlgo::kIm2col: return "im2col";
  }
  return "?";
}

bool conv_algo_from_name(std::string_view s, ConvAlgo* a) {
  for (ConvAlgo c : {ConvAlgo::kAuto, ConvAlgo::kDirect, ConvAlgo::kIm2col}) {
    if (s == conv_algo_name(c)) {
      *a = c;
      return true;
    }
  }
  return false;
}

const char* conv_pass_name(ConvPass p) {
  switch (p) {
    case ConvPass::kForward: return "forward";
    case ConvPass::kBackwardInput: return "backward_input";
    case ConvPass::kBackwardWeight: return "backward_weight";
  }
  return "?";
}

ConvAlgo conv2d_choose_algo(ConvPass pass, const Conv2dParams& p) {
  // Measured on the anchor layers (2 threads, AVX-512): im2col + GEMM is 2-20x
  // faster than direct on every MNIST, LeNet and AlexNet layer, in every pass,
  // including conv1 with C=1; direct wins only when a group has very few
  // filters (depthwise 3x3, 64 channels, 56x56: 3.1 vs 3.7 ms forward), where
  // the GEMM degenerates to a row-vector product.
  (void)pass;
  return p.Kg() >= 4 ? ConvAlgo::kIm2col : ConvAlgo::kDirect;
}

namespace {

ConvAlgo resolve(ConvAlgo algo, ConvPass pass, const Conv2dParams& p) {
  return algo == ConvAlgo::kAuto ? conv2d_choose_algo(pass, p) : algo;
}

// dw = sum of the chunk partials, in chunk order; tasks of 4096 elements.
Status reduce_partials(float* dw, const float* partials, int64_t chunks, int64_t n) {
  constexpr int64_t kBlock = 4096;
  return parallel_for((n + kBlock - 1) / kBlock, [&](int64_t t) {
    const int64_t end = (t + 1) * kBlock < n ? (t + 1) * kBlock : n;
    for (int64_t i = t * kBlock; i < end; ++i) {
      float acc = partials[i];
      for (int64_t c = 1; c < chunks; ++c) acc += partials[c * n + i];
      dw[i] = acc;
    }
    return true;
  });
}

}  // namespace

Status conv2d_forward(float* y, const float* x, const float* w, const float* b,
                      const Conv2dParams& p, ConvAlgo algo) {
  if (p.N == 0) return Status::Ok();
  if (resolve(algo, ConvPass::kForward, p) == ConvAlgo::kIm2col)
    return conv2d_forward_im2col(y, x, w, b, p);
  const KernelTable& kt = kernels();
  const int64_t PQ = p.P * p.Q;
  return parallel_for(p.N * p.K, [&](int64_t i) {  // one (n, k) plane of y
    const int64_t n = i / p.K, k = i % p.K;
    kt.conv2d_forward_direct(y + i * PQ, x + n * p.C * p.H * p.W, w, b, p, k);
    return true;
  });
}

Status conv2d_backward_input(float* dx, const float* dy, const float* w, const Conv2dParams& p,
                             ConvAlgo algo) {
  if (p.N == 0) return Status::Ok();
  if (resolve(algo, ConvPass::kBackwardInput, p) == ConvAlgo::kIm2col)
    return conv2d_backward_input_im2col(dx, dy, w, p);
  const KernelTable& kt = kernels();
  const int64_t HW = p.H * p.W;
  return parallel_for(p.N * p.C, [&](int64_t i) {  // one (n, c) plane of dx
    const int64_t n = i / p.C, c = i % p.C;
    kt.conv2d_backward_input_direct(dx + i * HW, dy + n * p.K * p.P * p.Q, w, p, c);
    return true;
  });
}

Status conv2d_backward_weight(float* dw, const float* dy, const float* x, const Conv2dParams& p,
                              ConvAlgo algo) {
  const int64_t CRS = p.Cg() * p.R * p.S, wn = p.K * CRS;
  if (p.N == 0) {
    std::memset(dw, 0, sizeof(float) * wn);
    return Status::Ok();
  }
  const int64_t chunks = weight_grad_chunks(p.N);
  // One chunk writes dw directly; more need partials (kept across calls).
  float* partials = dw;
  if (chunks > 1) {
    partials = thread_workspace(kSlotPartials, chunks * wn);
    if (partials == nullptr)
      return Status::OutOfMemory("conv2d_backward: cannot allocate the weight-gradient partials");
  }
  if (resolve(algo, ConvPass::kBackwardWeight, p) == ConvAlgo::kIm2col) {
    FASTCONV_RETURN_IF_ERROR(conv2d_backward_weight_im2col(partials, dy, x, p));
  } else {
    const KernelTable& kt = kernels();
    FASTCONV_RETURN_IF_ERROR(parallel_for(chunks * p.K, [&](int64_t t) {  // (chunk, filter)
      const int64_t chunk = t / p.K, k = t % p.K;
      float* dwk = partials + chunk * wn + k * CRS;
      for (int64_t i = 0; i < CRS; ++i) dwk[i] = 0.0f;
      for (int64_t n = chunk_begin(chunk, chunks, p.N); n < chunk_begin(chunk + 1, chunks, p.N);
           ++n) {
        kt.conv2d_backward_weight_direct(dwk, dy + n * p.K * p.P * p.Q, x + n * p.C * p.H * p.W,
                                         p, k);
      }
      return true;
    }));
  }
  if (chunks > 1) return reduce_partials(dw, partials, chunks, wn);
  return Status::Ok();
}

Status conv2d_backward_bias(float* db, const float* dy, const Conv2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t PQ = p.P * p.Q;
  // Plane sums in float, the batch sum in double: the N*P*Q reduction is
  // long (86,528 terms for the MNIST CNN's conv1 at N=128).
  return parallel_for(p.K, [&](int64_t k) {
    double acc = 0.0;
    for (int64_t n = 0; n < p.N; ++n) acc += kt.conv2d_backward_bias(dy + (n * p.K + k) * PQ, PQ);
    db[k] = static_cast<float>(acc);
    return true;
  });
}

}  // namespace fastconv
