// Fused CPU kernels for the inference path of the pose MetaFormer's pooling / graph / fc blocks (float32, eval mode,
// no autograd). Each kernel computes exactly what the eager PyTorch path computes (tests compare them to 1e-5), in
// one pass over memory instead of several:
//
//   norm_mix_norm: for every token row of a (B, F, J, C) tensor y
//       x   = LN_pre(y) + pos[frame]           (the previous stream's shared LayerNorm and the temporal position
//                                              embedding; both optional)
//       n1  = LN1(x)
//       x'  = x + scale1 * (M n1)              (M: the block's token mixer minus the identity along its axis, given
//                                              as a sparse L x L matrix in CSR form: pooling windows, skeleton
//                                              neighbours or the fc mixer's dense J x J matrix)
//       res = x' + res_bias                    (the residual the MLP's second product accumulates into)
//       n2  = LN2(x')                          (the MLP's input)
//   bias_gelu_: h = GELU(h + bias) in place (exact erf GELU), after the MLP's first product.
//
// Work is split over sequences (the frames of one joint for the temporal mixer, the joints of one frame for the spatial
// one); each is handled by one thread in two passes: the first normalises its rows into a scratch buffer that stays
// in cache (at most F x C floats: 0.5 MiB at F = 243, C = 512), the second mixes and finishes them. The residual is
// written over the input, which the model no longer needs: no new buffer for it and no extra pass over memory.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifndef FUSED_NAMESPACE
#define FUSED_NAMESPACE poolmixste_fused
#endif

namespace {

constexpr int64_t kBlock = 16;  // channels per vector; C must be a multiple of it

// 16 floats as one value (GCC / Clang vector extension): one AVX-512 register, or two AVX2 registers. Loads and
// stores go through memcpy, so rows need no particular alignment.
typedef float Vec __attribute__((vector_size(kBlock * sizeof(float))));

inline Vec load(const float* p) { Vec v; std::memcpy(&v, p, sizeof(Vec)); return v; }
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof(Vec)); }
inline Vec splat(float x) { return Vec{} + x; }
inline float horizontal_sum(Vec v) {
  float total = 0.f;
  for (int64_t i = 0; i < kBlock; ++i) total += v[i];
  return total;
}

// Sum of a row with two independent vector accumulators (no single dependency chain).
inline float row_sum(const float* x, int64_t c) {
  Vec a{}, b{};
  int64_t k = 0;
  for (; k + 2 * kBlock <= c; k += 2 * kBlock) { a += load(x + k); b += load(x + k + kBlock); }
  if (k < c) a += load(x + k);
  return horizontal_sum(a + b);
}

inline float row_centred_square_sum(const float* x, float mean, int64_t c) {
  const Vec m = splat(mean);
  Vec a{}, b{};
  int64_t k = 0;
  for (; k + 2 * kBlock <= c; k += 2 * kBlock) {
    const Vec d0 = load(x + k) - m, d1 = load(x + k + kBlock) - m;
    a += d0 * d0;
    b += d1 * d1;
  }
  if (k < c) { const Vec d = load(x + k) - m; a += d * d; }
  return horizontal_sum(a + b);
}

struct Norm {
  const float* weight;
  const float* bias;
  float eps;
};

// out = LayerNorm(x) (two passes over the row, which is in L1: mean, then the centred variance, as PyTorch does)
inline void layer_norm_row(const float* x, float* out, const Norm& norm, int64_t c) {
  const float mean = row_sum(x, c) / static_cast<float>(c);
  const float var = row_centred_square_sum(x, mean, c) / static_cast<float>(c);
  const Vec m = splat(mean), r = splat(1.f / std::sqrt(var + norm.eps));
  for (int64_t k = 0; k < c; k += kBlock)
    store(out + k, (load(x + k) - m) * r * load(norm.weight + k) + load(norm.bias + k));
}

// m = x + scale * sum_e values[e] * normed[cols[e]] over the CSR entries [first, last) of one output token, `Lanes`
// vectors of channels at a time: independent accumulators, so the taps do not form one long dependency chain.
template <int64_t Lanes>
inline void mix_row(const float* x, const float* normed, int64_t first, int64_t last, const int64_t* cols,
                    const float* values, const float* scale, float* m, int64_t c) {
  for (int64_t k0 = 0; k0 < c; k0 += Lanes * kBlock) {
    Vec acc[Lanes] = {};
    for (int64_t e = first; e < last; ++e) {
      const Vec v = splat(values[e]);
      const float* n = normed + cols[e] * c + k0;
      for (int64_t l = 0; l < Lanes; ++l) acc[l] += v * load(n + l * kBlock);
    }
    for (int64_t l = 0; l < Lanes; ++l) {
      const int64_t k = k0 + l * kBlock;
      store(m + k, scale ? load(x + k) + load(scale + k) * acc[l] : load(x + k) + acc[l]);
    }
  }
}

// The same for `Rows` consecutive output tokens of a dense mixing matrix (row-major values, `length` per row): each
// input vector is loaded once for all of them.
template <int64_t Rows>
inline void mix_dense_rows(const float* x, int64_t x_stride, const float* normed, int64_t length, const float* values,
                           const float* scale, float* m, int64_t c) {
  for (int64_t k0 = 0; k0 < c; k0 += 2 * kBlock) {
    if (k0 + 2 * kBlock > c) {  // one vector left
      for (int64_t r = 0; r < Rows; ++r) {
        Vec acc{};
        for (int64_t s = 0; s < length; ++s) acc += splat(values[r * length + s]) * load(normed + s * c + k0);
        const Vec base = load(x + r * x_stride + k0);
        store(m + r * c + k0, scale ? base + load(scale + k0) * acc : base + acc);
      }
      continue;
    }
    Vec acc0[Rows] = {}, acc1[Rows] = {};
    for (int64_t s = 0; s < length; ++s) {
      const Vec n0 = load(normed + s * c + k0), n1 = load(normed + s * c + k0 + kBlock);
      for (int64_t r = 0; r < Rows; ++r) {
        const Vec v = splat(values[r * length + s]);
        acc0[r] += v * n0;
        acc1[r] += v * n1;
      }
    }
    for (int64_t r = 0; r < Rows; ++r) {
      const float* xr = x + r * x_stride;
      float* mr = m + r * c;
      if (scale) {
        store(mr + k0, load(xr + k0) + load(scale + k0) * acc0[r]);
        store(mr + k0 + kBlock, load(xr + k0 + kBlock) + load(scale + k0 + kBlock) * acc1[r]);
      } else {
        store(mr + k0, load(xr + k0) + acc0[r]);
        store(mr + k0 + kBlock, load(xr + k0 + kBlock) + acc1[r]);
      }
    }
  }
}

const float* data_or_null(const c10::optional<at::Tensor>& t) { return t.has_value() ? t->data_ptr<float>() : nullptr; }

void check_vector(const at::Tensor& t, int64_t c, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.dim() == 1 && t.size(0) == c, name,
              " must be a contiguous float32 vector of ", c, " channels");
}

void check_optional_vector(const c10::optional<at::Tensor>& t, int64_t c, const char* name) {
  if (t.has_value()) check_vector(*t, c, name);
}

// erf as an odd rational function of x clamped to [-4, 4] (|error| < 1e-7 in exact arithmetic; erf(4) = 1 - 1.5e-8):
// no branches and no calls, so loops over it vectorise.
inline float erf_rational(float x) {
  x = std::min(4.f, std::max(-4.f, x));
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x * p / q;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> norm_mix_norm(
    at::Tensor y, bool temporal, const c10::optional<at::Tensor>& pre_weight,
    const c10::optional<at::Tensor>& pre_bias, double pre_eps, const c10::optional<at::Tensor>& pos,
    const at::Tensor& norm1_weight, const at::Tensor& norm1_bias, double norm1_eps, const at::Tensor& mix_rows,
    const at::Tensor& mix_cols, const at::Tensor& mix_values, const c10::optional<at::Tensor>& scale1,
    const at::Tensor& norm2_weight, const at::Tensor& norm2_bias, double norm2_eps,
    const c10::optional<at::Tensor>& residual_bias) {
  TORCH_CHECK(y.dim() == 4 && y.scalar_type() == at::kFloat && y.is_contiguous() && y.device().is_cpu(),
              "norm_mix_norm: y must be a contiguous float32 CPU tensor (B, F, J, C)");
  const int64_t batch = y.size(0), frames = y.size(1), joints = y.size(2), c = y.size(3);
  TORCH_CHECK(c % kBlock == 0, "norm_mix_norm: channels (", c, ") must be a multiple of ", kBlock);
  TORCH_CHECK(pre_weight.has_value() == pre_bias.has_value(), "norm_mix_norm: pre_weight and pre_bias go together");
  check_optional_vector(pre_weight, c, "pre_weight");
  check_optional_vector(pre_bias, c, "pre_bias");
  check_vector(norm1_weight, c, "norm1_weight");
  check_vector(norm1_bias, c, "norm1_bias");
  check_vector(norm2_weight, c, "norm2_weight");
  check_vector(norm2_bias, c, "norm2_bias");
  check_optional_vector(scale1, c, "scale1");
  check_optional_vector(residual_bias, c, "residual_bias");
  if (pos.has_value())
    TORCH_CHECK(pos->scalar_type() == at::kFloat && pos->is_contiguous() && pos->dim() == 2 &&
                    pos->size(0) == frames && pos->size(1) == c,
                "norm_mix_norm: pos must be a contiguous float32 (F, C) tensor");
  const int64_t length = temporal ? frames : joints;
  TORCH_CHECK(mix_rows.scalar_type() == at::kLong && mix_rows.is_contiguous() && mix_rows.numel() == length + 1,
              "norm_mix_norm: mix_rows must hold L + 1 int64 row offsets");
  const int64_t nnz = mix_cols.numel();
  TORCH_CHECK(mix_cols.scalar_type() == at::kLong && mix_cols.is_contiguous() && mix_values.numel() == nnz &&
                  mix_values.scalar_type() == at::kFloat && mix_values.is_contiguous(),
              "norm_mix_norm: mix_cols (int64) and mix_values (float32) must be contiguous and of equal length");
  const int64_t* rows = mix_rows.data_ptr<int64_t>();
  const int64_t* cols = mix_cols.data_ptr<int64_t>();
  TORCH_CHECK(rows[0] == 0 && rows[length] == nnz, "norm_mix_norm: mix_rows do not describe mix_cols");
  for (int64_t t = 0; t < length; ++t) TORCH_CHECK(rows[t] <= rows[t + 1], "norm_mix_norm: mix_rows must not decrease");
  for (int64_t e = 0; e < nnz; ++e)
    TORCH_CHECK(cols[e] >= 0 && cols[e] < length, "norm_mix_norm: mix_cols must index tokens 0..", length - 1);
  bool dense = nnz == length * length;  // every row lists every token in order (the fc mixer's matrix)
  for (int64_t e = 0; dense && e < nnz; ++e) dense = cols[e] == e % length;

  at::Tensor normed2 = at::empty_like(y);
  float* data = y.data_ptr<float>();  // read, then overwritten with the residual (each sequence by one thread)
  float* norm_out = normed2.data_ptr<float>();
  const float* values = mix_values.data_ptr<float>();
  const float* pos_data = data_or_null(pos);
  const float* scale = data_or_null(scale1);
  const float* res_bias = data_or_null(residual_bias);
  const bool has_pre = pre_weight.has_value();
  const Norm pre{data_or_null(pre_weight), data_or_null(pre_bias), static_cast<float>(pre_eps)};
  const Norm norm1{norm1_weight.data_ptr<float>(), norm1_bias.data_ptr<float>(), static_cast<float>(norm1_eps)};
  const Norm norm2{norm2_weight.data_ptr<float>(), norm2_bias.data_ptr<float>(), static_cast<float>(norm2_eps)};

  const int64_t sequences = temporal ? batch * joints : batch * frames;
  const int64_t token_stride = temporal ? joints * c : c;  // floats between neighbouring tokens of one sequence
  constexpr int64_t kRows = 4;  // output tokens mixed together by the dense loop

  at::parallel_for(0, sequences, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> normed(length * c), mixed(kRows * c);
    for (int64_t seq = begin; seq < end; ++seq) {
      const int64_t b = temporal ? seq / joints : seq / frames;
      float* first = data + (temporal ? (b * frames * joints + seq % joints) * c : seq * joints * c);
      // pass 1: x = LN_pre(y) + pos, written over y (the residual stream), and n1 = LN1(x) into the scratch rows
      for (int64_t t = 0; t < length; ++t) {
        float* x = first + t * token_stride;
        if (t + 1 < length)  // the next row is another 2 KiB block of memory: ask for it early
          for (int64_t k = 0; k < c; k += kBlock) __builtin_prefetch(x + token_stride + k, 1, 3);
        if (has_pre) layer_norm_row(x, x, pre, c);
        if (pos_data) {
          const float* p = pos_data + (temporal ? t : seq % frames) * c;
          for (int64_t k = 0; k < c; k += kBlock) store(x + k, load(x + k) + load(p + k));
        }
        layer_norm_row(x, normed.data() + t * c, norm1, c);
      }
      // pass 2: x' = x + scale * M n1, then n2 = LN2(x') and the residual x' + res_bias over x
      auto finish = [&](int64_t t, const float* m) {
        float* x = first + t * token_stride;
        const int64_t offset = x - data;
        layer_norm_row(m, norm_out + offset, norm2, c);
        if (res_bias) for (int64_t k = 0; k < c; k += kBlock) store(x + k, load(m + k) + load(res_bias + k));
        else std::copy(m, m + c, x);
      };
      int64_t t = 0;
      if (dense)  // every output token reads every token: kRows output rows per pass over the inputs
        for (; t + kRows <= length; t += kRows) {
          mix_dense_rows<kRows>(first + t * token_stride, token_stride, normed.data(), length, values + t * length,
                                scale, mixed.data(), c);
          for (int64_t r = 0; r < kRows; ++r) finish(t + r, mixed.data() + r * c);
        }
      for (; t < length; ++t) {
        const float* x = first + t * token_stride;
        float* m = mixed.data();
        if (c % (4 * kBlock) == 0) mix_row<4>(x, normed.data(), rows[t], rows[t + 1], cols, values, scale, m, c);
        else mix_row<1>(x, normed.data(), rows[t], rows[t + 1], cols, values, scale, m, c);
        finish(t, m);
      }
    }
  });
  return {y, normed2};
}

at::Tensor bias_gelu_(at::Tensor hidden, const at::Tensor& bias) {
  TORCH_CHECK(hidden.scalar_type() == at::kFloat && hidden.is_contiguous() && hidden.device().is_cpu(),
              "bias_gelu_: hidden must be a contiguous float32 CPU tensor");
  const int64_t width = hidden.size(-1), rows = hidden.numel() / std::max<int64_t>(width, 1);
  check_vector(bias, width, "bias");
  float* h = hidden.data_ptr<float>();
  const float* bias_data = bias.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = h + r * width;
      for (int64_t k = 0; k < width; ++k) {
        const float v = row[k] + bias_data[k];
        row[k] = 0.5f * v * (1.f + erf_rational(v * 0.70710678118654752f));
      }
    }
  });
  return hidden;
}

TORCH_LIBRARY(FUSED_NAMESPACE, m) {
  m.def("norm_mix_norm(Tensor(a!) y, bool temporal, Tensor? pre_weight, Tensor? pre_bias, float pre_eps, Tensor? pos, "
        "Tensor norm1_weight, Tensor norm1_bias, float norm1_eps, Tensor mix_rows, Tensor mix_cols, "
        "Tensor mix_values, Tensor? scale1, Tensor norm2_weight, Tensor norm2_bias, float norm2_eps, "
        "Tensor? residual_bias) -> (Tensor(a!), Tensor)");
  m.def("bias_gelu_(Tensor(a!) hidden, Tensor bias) -> Tensor(a!)");
}

TORCH_LIBRARY_IMPL(FUSED_NAMESPACE, CPU, m) {
  m.impl("norm_mix_norm", &norm_mix_norm);
  m.impl("bias_gelu_", &bias_gelu_);
}
