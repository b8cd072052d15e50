// conv2d op drivers: choose the algorithm, run the direct kernels over
// output planes in parallel, or hand over to the im2col drivers.
//
// Threads split outputs that do not overlap: (n, k) planes of y, (n, c)
// planes of dx, filters of dw per chunk of images (see conv2d_internal.h).
// Every reduction runs in a fixed order, so results are bitwise identical
// for any thread count.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "conv2d_internal.h"
#include "fastconv/dispatch.h"
#include "fastconv/enum_names.h"
#include "fastconv/pool2d.h"
#include "fastconv/threading.h"
#include "kernels/kernel_table.h"

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
  return enum_from_name(s, kConvAlgos, conv_algo_name, a);
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
  // Direct wins in every pass when a group has very few filters (depthwise
  // 3x3, 64 channels, 56x56: 3.1 vs 3.7 ms forward with im2col), where a GEMM
  // degenerates to a row-vector product.
  if (p.Kg() < 4) return ConvAlgo::kDirect;
  // Otherwise, measured on the anchor layers: 1 thread, AVX-512, Sapphire
  // Rapids, ms, im2col / implicit / direct, the least of 5 medians of the
  // three interleaved (`python -m fastconv.bench --suite all --full
  // --threads 1` times them side by side). Direct here is the
  // shifted-copy algorithm (conv2d_direct.cpp), lanes over >= 64 pixels of
  // a plane; its forward tile needs AVX-512.
  //  - forward: direct for up to 576 taps (Keras conv1 1.31 / 2.01 / 0.79,
  //    conv2 6.07 / 4.85 / 4.27, LeNet conv1 0.97 / 1.61 / 0.28, conv2
  //    1.69 / 1.00 / 0.58, VGG 36.9 / 29.5 / 27.9, ResNet 1x1 19.0 / 33.3 /
  //    18.5, and with stride 4 AlexNet conv1 44.4 / 36.6 / 32.5, copies
  //    gathered); AlexNet conv2-5 (2,304-3,456 taps) tie or lose (conv5 37.8
  //    / 33.6 / 38.4). Else implicit when the patches are long (C/G*R*S >= 64)
  //    and read with stride 1 (Keras conv3 2.88 / 0.85 / 1.65, LeNet conv3
  //    2.10 / 0.17 / 1.80: planes of 9 and 1 pixels), im2col for 1x1
  //    kernels, strides and the rest.
  //  - backward_input (direct = that forward on dy, with K/G*R*S taps):
  //    direct for up to 160 taps, 400 with C/G >= 4, 576 with planes of
  //    1,024 pixels (LeNet conv1 1.39 / 7.60 / 0.89, conv2 1.90 / 2.53 /
  //    1.48, VGG 38.4 / 33.5 / 28.1, ResNet 21.6 / 29.1 / 18.5; not Keras
  //    conv1, 1 output channel: 1.05 / 4.75 / 2.89, nor conv2 6.92 / 5.41 /
  //    6.81). Else implicit for small output planes, where a GEMM per image
  //    has too few columns: at most 16 pixels (LeNet conv3 1.90 / 0.37), or
  //    at most 144 with C/G >= 16, whose gradients add up in whole vectors
  //    (Keras conv3 2.53 / 0.78, conv2); else im2col.
  //  - backward_weight: direct (dot products, every ISA; stride 1 only: the
  //    strided AlexNet conv1 37.6 / 32.8 / 81.8) for up to 32 taps,
  //    or 2,560 filter-taps with AVX-512 (Keras conv1 1.96 / 1.94 / 0.90,
  //    LeNet conv1 1.49 / 1.36 / 0.56, conv2 1.79 / 1.26 / 0.98; AVX2: Keras
  //    conv1 3.4 / 5.1 / 3.4, LeNet conv2 2.4 / 5.5 / 4.8); not Keras conv2
  //    (64 x 288: 6.67 / 5.13 / 11.5, the copies re-read from L2 per block
  //    of filters). Else implicit (a reduction over the whole chunk's pixels
  //    instead of P*Q per image: Keras conv3 3.40 / 1.08, VGG 37.3 / 29.8).
  const int64_t taps = p.Cg() * p.R * p.S;
  const bool stride1 = p.stride_h == 1 && p.stride_w == 1;
  switch (pass) {
    case ConvPass::kForward:
      if (p.P * p.Q >= 64 && taps <= 576 && conv2d_forward_shifted_applies(p))
        return ConvAlgo::kDirect;
      return taps >= 64 && p.stride_w == 1 && p.R * p.S > 1 ? ConvAlgo::kImplicit
                                                            : ConvAlgo::kIm2col;
    case ConvPass::kBackwardInput: {
      const int64_t taps_t = p.Kg() * p.R * p.S, HW = p.H * p.W;
      const bool few =
          taps_t <= 160 || (p.Cg() >= 4 && taps_t <= 400) || (HW >= 1024 && taps_t <= 576);
      if (stride1 && HW >= 64 && few && conv2d_backward_input_shifted_applies(p, nullptr))
        return ConvAlgo::kDirect;
      return p.P * p.Q <= 16 || (p.Cg() >= 16 && p.P * p.Q <= 144) ? ConvAlgo::kImplicit
                                                                   : ConvAlgo::kIm2col;
    }
    case ConvPass::kBackwardWeight: {
      const bool few_taps = taps <= 32 || (isa_active() == Isa::kAvx512 && p.Kg() * taps <= 2560);
      return stride1 && p.P * p.Q >= 64 && few_taps ? ConvAlgo::kDirect : ConvAlgo::kImplicit;
    }
  }
  return ConvAlgo::kIm2col;
}

namespace {

ConvAlgo resolve(ConvAlgo algo, ConvPass pass, const Conv2dParams& p) {
  return algo == ConvAlgo::kAuto ? conv2d_choose_algo(pass, p) : algo;
}

// dw (=, for the wave of chunk 0, else +=) the wave's chunk partials, in
// chunk order: over all waves, dw[i] = ((p0[i] + p1[i]) + p2[i]) + ...;
// tasks of 4096 elements.
Status add_partials(float* dw, const float* partials, const ChunkWave& wave, int64_t n) {
  constexpr int64_t kBlock = 4096;
  return parallel_for((n + kBlock - 1) / kBlock, [&](int64_t t) {
    const int64_t end = (t + 1) * kBlock < n ? (t + 1) * kBlock : n;
    for (int64_t i = t * kBlock; i < end; ++i) {
      float acc = wave.first == 0 ? partials[i] : dw[i] + partials[i];
      for (int64_t c = 1; c < wave.count; ++c) acc += partials[c * n + i];
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

Status conv2d_forward_max_pool2d(float* pooled, int64_t* indices, const float* x, const float* w,
                                 const float* b, const Conv2dParams& p, ConvAlgo algo, bool relu,
                                 const Pool2dParams& pool) {
  if (p.N == 0) return Status::Ok();
  const ConvAlgo a = resolve(algo, ConvPass::kForward, p);
  if (a == ConvAlgo::kDirect && conv2d_forward_shifted_applies(p))
    return conv2d_forward_shifted_max_pool(pooled, indices, x, w, b, p, relu, pool);
  std::unique_ptr<float[]> y(new (std::nothrow) float[static_cast<size_t>(p.N * p.K * p.P * p.Q)]);
  if (!y) return Status::OutOfMemory("conv2d_max_pool2d: cannot allocate the conv output");
  FASTCONV_RETURN_IF_ERROR(conv2d_forward(y.get(), x, w, b, p, a, relu));
  return max_pool2d_forward(pooled, indices, y.get(), pool);
}

Status conv2d_backward_input(float* dx, const float* dy, const float* w, const Conv2dParams& p,
                             ConvAlgo algo) {
  if (p.N == 0) return Status::Ok();
  const ConvAlgo a = resolve(algo, ConvPass::kBackwardInput, p);
  if (a == ConvAlgo::kIm2col) return conv2d_backward_input_im2col(dx, dy, w, p);
  if (a == ConvAlgo::kImplicit) return conv2d_backward_input_implicit(dx, dy, w, p);
  if (conv2d_backward_input_shifted_applies(p, w))
    return conv2d_backward_input_shifted(dx, dy, w, p);
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
  // Chunks are computed in waves. Where all chunk partials take at most 8 MB,
  // one wave; above, one chunk per thread at a time (AlexNet conv4 at 2
  // threads: 2 partials of 5.3 MB instead of 8). One chunk writes dw directly.
  const int64_t wave_size = chunks * wn <= (int64_t{2} << 20)
                                ? chunks
                                : std::max<int64_t>(1, std::min<int64_t>(chunks, team_threads()));
  float* partials = dw;
  if (chunks > 1) {
    partials = thread_workspace(kSlotPartials, wave_size * wn);
    if (partials == nullptr)
      return Status::OutOfMemory("conv2d_backward: cannot allocate the weight-gradient partials");
  }
  const ConvAlgo a = resolve(algo, ConvPass::kBackwardWeight, p);
  const KernelTable& kt = kernels();
  for (int64_t first = 0; first < chunks; first += wave_size) {
    const ChunkWave wave{first, std::min(wave_size, chunks - first)};
    if (a == ConvAlgo::kImplicit) {
      FASTCONV_RETURN_IF_ERROR(conv2d_backward_weight_implicit(partials, dy, x, p, wave));
    } else if (a == ConvAlgo::kIm2col) {
      FASTCONV_RETURN_IF_ERROR(conv2d_backward_weight_im2col(partials, dy, x, p, wave));
    } else if (conv2d_backward_weight_shifted_applies(p)) {
      FASTCONV_RETURN_IF_ERROR(conv2d_backward_weight_shifted(partials, dy, x, p, wave));
    } else {
      FASTCONV_RETURN_IF_ERROR(parallel_for(wave.count * p.K, [&](int64_t t) {  // (chunk, filter)
        const int64_t i = t / p.K, chunk = wave.first + i, k = t % p.K;
        float* dwk = partials + i * wn + k * CRS;
        for (int64_t j = 0; j < CRS; ++j) dwk[j] = 0.0f;
        for (int64_t n = chunk_begin(chunk, chunks, p.N); n < chunk_begin(chunk + 1, chunks, p.N);
             ++n) {
          kt.conv2d_backward_weight_direct(dwk, dy + n * p.K * p.P * p.Q, x + n * p.C * p.H * p.W,
                                           p, k);
        }
        return true;
      }));
    }
    if (chunks > 1) FASTCONV_RETURN_IF_ERROR(add_partials(dw, partials, wave, wn));
  }
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
