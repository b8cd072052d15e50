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
    case ConvAlgo::kImplicit: return "implicit";
  }
  return "?";
}

bool conv_algo_from_name(std::string_view s, ConvAlgo* a) {
  for (ConvAlgo c : kConvAlgos) {
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
  // Direct wins only when a group has very few filters (depthwise 3x3, 64
  // channels, 56x56: 3.1 vs 3.7 ms forward with im2col), where a GEMM
  // degenerates to a row-vector product; elsewhere the GEMM-based algorithms
  // are 2-20x faster in forward and backward-input (every MNIST, LeNet and
  // AlexNet layer), and direct wins backward-weight only as below.
  if (p.Kg() < 4) return ConvAlgo::kDirect;
  // Between im2col and implicit, measured on the anchor layers (1 thread,
  // AVX-512, Sapphire Rapids; benchmarks/compare_torch.py, docs/conv2d.md):
  //  - forward: direct (tiles of filters x pixels over shifted image copies,
  //    conv2d_direct.cpp; AVX-512 only) for stride 1, >= 64 pixels and at
  //    most 160 taps: Keras conv1 1.0 vs 1.8 ms (im2col), LeNet conv1 0.56
  //    vs 1.4, LeNet conv2 1.1-1.3 vs 1.2-1.6 (implicit); Keras conv2 7.1 vs
  //    6-7.6 is a tie, and the copies (S times x) cost more as C grows.
  //    Otherwise implicit when the patches are long (C/G*R*S >= 64) and read
  //    with stride 1 (its packing is vectorised there): Keras conv2 5.5 vs
  //    7.6 ms, conv3 1.0 vs 3.4, LeNet conv3 0.18 vs 2.4, VGG 3x3 42 vs 49.
  //    im2col for 1x1 kernels (ResNet 256->64: 26 vs 39 ms), few-channel
  //    first layers without AVX-512 (Keras conv1: 1.6 vs 2.3) and strides.
  //  - backward_input: implicit for small output planes, where a GEMM per
  //    image has too few columns: at most 16 pixels (LeNet conv3: 0.55 vs
  //    3.1 ms), or at most 144 with C/G >= 16, whose gradients add up in
  //    whole vectors (Keras conv3: 1.1 vs 4.2, conv2: 8.8 vs 11.3); else
  //    im2col (LeNet conv2, C/G = 6: 3.2 vs 4.2; ResNet 1x1: 30 vs 48).
  //  - backward_weight: direct (dot products over shifted image copies,
  //    conv2d_direct.cpp) for stride 1, planes of at least 64 pixels and few
  //    taps, where the GEMMs' 14 x 32 tiles are mostly empty: Keras conv1
  //    1.5 vs 2.6 ms (im2col) and 2.7 (implicit), LeNet conv1 0.6 vs 1.7 and
  //    2.0 (AVX2: 3.4 vs 3.4 and 5.1; 1.5 vs 1.9 and 6.9); with AVX-512 up to
  //    2,560 filter-taps (LeNet conv2, 16 x 150: 1.4 vs 1.6 implicit; AVX2
  //    4.8 vs 2.4 im2col); Keras conv2 (64 x 288, shifted copies re-read
  //    from L2 per block of 3 filters) 11 vs 6.4. Else implicit (a reduction
  //    over the whole chunk's pixels instead of P*Q per image: Keras conv3
  //    1.5 vs 3.9 ms, VGG 36 vs 47, AlexNet conv1 40 vs 44; ties on ResNet 1x1).
  const int64_t taps = p.Cg() * p.R * p.S;
  switch (pass) {
    case ConvPass::kForward:
      if (p.stride_h == 1 && p.stride_w == 1 && p.P * p.Q >= 64 && taps <= 160 &&
          conv2d_forward_shifted_applies(p))
        return ConvAlgo::kDirect;
      return taps >= 64 && p.stride_w == 1 && p.R * p.S > 1 ? ConvAlgo::kImplicit
                                                            : ConvAlgo::kIm2col;
    case ConvPass::kBackwardInput:
      return p.P * p.Q <= 16 || (p.Cg() >= 16 && p.P * p.Q <= 144) ? ConvAlgo::kImplicit
                                                                    : ConvAlgo::kIm2col;
    case ConvPass::kBackwardWeight: {
      const bool few_taps =
          taps <= 32 || (isa_active() == Isa::kAvx512 && p.Kg() * taps <= 2560);
      return p.stride_h == 1 && p.stride_w == 1 && p.P * p.Q >= 64 && few_taps
                 ? ConvAlgo::kDirect
                 : ConvAlgo::kImplicit;
    }
  }
  return ConvAlgo::kIm2col;
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
                      const Conv2dParams& p, ConvAlgo algo, bool relu) {
  if (p.N == 0) return Status::Ok();
  const ConvAlgo a = resolve(algo, ConvPass::kForward, p);
  if (a == ConvAlgo::kIm2col) return conv2d_forward_im2col(y, x, w, b, p, relu);
  if (a == ConvAlgo::kImplicit) return conv2d_forward_implicit(y, x, w, b, p, relu);
  if (conv2d_forward_shifted_applies(p)) return conv2d_forward_shifted(y, x, w, b, p, relu);
  const KernelTable& kt = kernels();
  const int64_t PQ = p.P * p.Q;
  return parallel_for(p.N * p.K, [&](int64_t i) {  // one (n, k) plane of y
    const int64_t n = i / p.K, k = i % p.K;
    kt.conv2d_forward_direct(y + i * PQ, x + n * p.C * p.H * p.W, w, b, p, k);
    if (relu) kt.relu_forward(y + i * PQ, y + i * PQ, PQ);  // the plane is still in L1/L2
    return true;
  });
}

Status conv2d_backward_input(float* dx, const float* dy, const float* w, const Conv2dParams& p,
                             ConvAlgo algo) {
  if (p.N == 0) return Status::Ok();
  const ConvAlgo a = resolve(algo, ConvPass::kBackwardInput, p);
  if (a == ConvAlgo::kIm2col) return conv2d_backward_input_im2col(dx, dy, w, p);
  if (a == ConvAlgo::kImplicit) return conv2d_backward_input_implicit(dx, dy, w, p);
  if (conv2d_backward_input_shifted_applies(p, w)) return conv2d_backward_input_shifted(dx, dy, w, p);
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
  const ConvAlgo a = resolve(algo, ConvPass::kBackwardWeight, p);
  if (a == ConvAlgo::kImplicit) {
    FASTCONV_RETURN_IF_ERROR(conv2d_backward_weight_implicit(partials, dy, x, p));
  } else if (a == ConvAlgo::kIm2col) {
    FASTCONV_RETURN_IF_ERROR(conv2d_backward_weight_im2col(partials, dy, x, p));
  } else if (conv2d_backward_weight_shifted_applies(p)) {
    FASTCONV_RETURN_IF_ERROR(conv2d_backward_weight_shifted(partials, dy, x, p));
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
