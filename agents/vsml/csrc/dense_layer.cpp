// One step of a dense VSML layer on the CPU: input terms, fused micro ticks and the outgoing
// messages in one call, the CPU's twin of agents/vsml/triton_layer.py (float32 tensors).
//
// Every sub-LSTM s = (p, b, a, o) does, `ticks` times with the same inputs,
//   gates = h_s @ W_h[p] + u[p, b, a] + v[p, b, o]      (internal order i, f, o, 2g)
//   c = sig(f) c + sig(i) (2 sig(2g) - 1);  h = sig(o) (2 sig(2c) - 1);  optional clip.
// with the input terms u = fwd @ W_fwd (+ u_add) per input unit and v = bwd @ W_bwd + bias
// (+ v_add) per output unit. The outgoing messages are the linear read-outs of the new h's
// means over a (forward) and over o (backward), the means taken while h is in registers.
// The eager version writes and re-reads the 4N gates several times per tick, and around it a
// dozen small torch ops cost as much as the ticks of a single network; here the states are read
// and written once per call and everything in between stays in registers and L1.
//
// AVX2 path (picked at run time, so the file builds with plain -O3 anywhere): 8 sub-LSTMs
// with consecutive input units a and the same output unit o share one register, lane l
// holding a0 + l, states transposed to structure-of-arrays. Then v[p, b, o] is a broadcast,
// u[p, b, a0..a0+7] one transposed block reused for all O outputs, and every gate column is
// sum_k h_k (8 lanes) * W[k][col] (broadcast): W (N x 4N floats) stays in L1. Two groups of
// 8 (outputs o, o + 1) share every broadcast of W. Other CPUs and state sizes take the scalar
// path, which computes the same thing one sub-LSTM at a time.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/empty.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VSML_X86 1
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kLanes = 8;  // sub-LSTMs per work item along a (one AVX2 register)
constexpr int64_t kLineFloats = 64 / sizeof(float);  // floats per cache line

// out[j] += sum_k x[k] w[k][j], j < J: one row of the small (1 x K) @ (K x J) products around the
// ticks (input terms, read-outs)
inline void add_row_product(const float* __restrict__ x, const float* __restrict__ w, int64_t k_size, int64_t j_size,
                            float* __restrict__ out) {
  for (int64_t k = 0; k < k_size; ++k)
    for (int64_t j = 0; j < j_size; ++j) out[j] += x[k] * w[k * j_size + j];
}

struct Problem {
  const float *h, *c;               // (P, B, A, O, N) each
  const float *fwd, *w_fwd, *u_add;  // (P, B, A, Mf), (P, Mf, 4N), (P, A, 4N) or null
  const float *v, *w;               // (P, B, O, 4N) (computed first), (P, N, 4N)
  const float *fwd_w, *fwd_b;       // (P, N, M), (P, M) or null: no read-outs
  const float *bwd_w, *bwd_b;       // the same for the backward read-out
  float *h_out, *c_out;
  float *sum_a;    // (P, B, blocks, O, N): each block's sums over a / A, for the forward read-out
  float *fwd_out;  // (P, B, O, M)
  float *bwd_out;  // (P, B, A, M)
  int64_t batch, num_a, num_o, n, mf, m, blocks;
  int64_t ticks;
  bool clip;
  float clip_value;
  bool stream;  // write the outputs with streaming stores (AVX2 path)

  bool read_outs() const { return bwd_w != nullptr; }
  int64_t member(int64_t pb) const { return pb / batch; }
  int64_t state_row(int64_t pb, int64_t a, int64_t o) const { return ((pb * num_a + a) * num_o + o) * n; }
  int64_t v_row(int64_t pb, int64_t o) const { return (pb * num_o + o) * 4 * n; }
  const float* weights(int64_t pb) const { return w + member(pb) * n * 4 * n; }
  float* sum_a_row(int64_t pb, int64_t a0, int64_t o) const { return sum_a + ((pb * blocks + a0 / kLanes) * num_o + o) * n; }

  // u[p, b, a] = fwd[p, b, a] @ W_fwd[p] (+ u_add[p, a]), 4N floats
  void u_row(int64_t pb, int64_t a, float* out) const {
    const int64_t cols = 4 * n, p = member(pb);
    const float* x = fwd + (pb * num_a + a) * mf;
    const float* add = u_add ? u_add + (p * num_a + a) * cols : nullptr;
    for (int64_t col = 0; col < cols; ++col) out[col] = add ? add[col] : 0.0f;
    add_row_product(x, w_fwd + p * mf * cols, mf, cols, out);
  }

  // fwd_out[p, b, o] = mean over a of h[p, b, :, o] (the blocks' sums added up) @ fwd_w[p] + fwd_b[p]
  void forward_message(int64_t pb, int64_t o, float* mean_a) const {
    std::fill(mean_a, mean_a + n, 0.0f);
    for (int64_t block = 0; block < blocks; ++block) {
      const float* sums = sum_a + ((pb * blocks + block) * num_o + o) * n;
      for (int64_t k = 0; k < n; ++k) mean_a[k] += sums[k];
    }
    const int64_t p = member(pb);
    float* out = fwd_out + (pb * num_o + o) * m;
    std::copy(fwd_b + p * m, fwd_b + (p + 1) * m, out);
    add_row_product(mean_a, fwd_w + p * n * m, n, m, out);
  }

  // bwd_out[p, b, a] = mean_o[a] @ bwd_w[p] + bwd_b[p], M floats, from the mean over o of h
  void backward_message(int64_t pb, int64_t a, const float* mean_o) const {
    const int64_t p = member(pb);
    float* out = bwd_out + (pb * num_a + a) * m;
    std::copy(bwd_b + p * m, bwd_b + (p + 1) * m, out);
    add_row_product(mean_o, bwd_w + p * n * m, n, m, out);
  }
};

// y[row] = x[row] @ w[p] + b[p] (+ add[p, row % rows]) for every row of every member: the
// small matrix products around the ticks (rows x K) @ (K x J), members of `per_member` rows.
void member_rows(const float* x, const float* w, const float* b, const float* add, float* y, int64_t members,
                 int64_t per_member, int64_t k_size, int64_t j_size, int64_t add_rows) {
  at::parallel_for(0, members * per_member, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t p = row / per_member;
      float* out = y + row * j_size;
      for (int64_t j = 0; j < j_size; ++j) out[j] = b[p * j_size + j];
      if (add)
        for (int64_t j = 0; j < j_size; ++j) out[j] += add[(p * add_rows + row % add_rows) * j_size + j];
      add_row_product(x + row * k_size, w + p * k_size * j_size, k_size, j_size, out);
    }
  });
}

constexpr int64_t kStreamBytes = 1 << 20;  // outputs beyond this bypass the caches (this machine's L2s)

// ------------------------------------------------------------------------------------ scalar
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// All sub-LSTMs (pb, a0..a0+7, *) one after the other.
void scalar_item(const Problem& pr, int64_t pb, int64_t a0) {
  const int64_t n = pr.n, a_end = std::min(a0 + kLanes, pr.num_a);
  const float* w = pr.weights(pb);
  std::vector<float> u(4 * n), gates(4 * n), h(n), c(n), sum_o(n), sum_a(pr.num_o * n, 0.0f);
  for (int64_t a = a0; a < a_end; ++a) {
    std::fill(sum_o.begin(), sum_o.end(), 0.0f);
    pr.u_row(pb, a, u.data());
    for (int64_t o = 0; o < pr.num_o; ++o) {
      const float* v = pr.v + pr.v_row(pb, o);
      const int64_t row = pr.state_row(pb, a, o);
      std::copy(pr.h + row, pr.h + row + n, h.begin());
      std::copy(pr.c + row, pr.c + row + n, c.begin());
      for (int64_t t = 0; t < pr.ticks; ++t) {
        for (int64_t col = 0; col < 4 * n; ++col) gates[col] = u[col] + v[col];
        for (int64_t k = 0; k < n; ++k)
          for (int64_t col = 0; col < 4 * n; ++col) gates[col] += h[k] * w[k * 4 * n + col];
        for (int64_t j = 0; j < n; ++j) {
          const float i = sigmoid(gates[j]), f = sigmoid(gates[n + j]), out = sigmoid(gates[2 * n + j]);
          const float g = 2.0f * sigmoid(gates[3 * n + j]) - 1.0f;
          float cj = f * c[j] + i * g;
          float hj = out * (2.0f * sigmoid(2.0f * cj) - 1.0f);
          if (pr.clip) {
            cj = std::min(std::max(cj, -pr.clip_value), pr.clip_value);
            hj = std::min(std::max(hj, -pr.clip_value), pr.clip_value);
          }
          c[j] = cj;
          h[j] = hj;
        }
      }
      std::copy(h.begin(), h.end(), pr.h_out + row);
      std::copy(c.begin(), c.end(), pr.c_out + row);
      for (int64_t j = 0; j < n; ++j) {
        sum_o[j] += h[j];
        sum_a[o * n + j] += h[j];
      }
    }
    for (int64_t j = 0; j < n; ++j) sum_o[j] /= pr.num_o;
    if (pr.read_outs()) pr.backward_message(pb, a, sum_o.data());
  }
  if (!pr.read_outs()) return;
  for (int64_t o = 0; o < pr.num_o; ++o)
    for (int64_t j = 0; j < n; ++j) pr.sum_a_row(pb, a0, o)[j] = sum_a[o * n + j] / pr.num_a;
}

// -------------------------------------------------------------------------------------- AVX2
#ifdef VSML_X86
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

// In-place sigmoids 1 / (1 + exp(-x)) of K registers, computed in lockstep: each is a chain
// of ~15 dependent instructions, and interleaving K of them keeps the FMA units busy where
// the out-of-order window would not reach the next chain.
//   exp(-x) = 2^n exp(r), -x = n ln2 + r, |r| <= ln2 / 2, exp(r) by a degree-5 polynomial
// (a relative-error fit on that interval: 2e-7 with float rounding). A sigmoid turns a
// relative error d of exp(-x) into an absolute one of at most d / 4, and for large |n|
// (where a one-part ln2 loses digits) it is saturated anyway. The argument is clamped so that
// 2^n stays a normal float; NaN passes through (min/max return their second operand). The
// division is exactly rounded and on current cores no slower than a refined reciprocal.
template <int K>
AVX2_INLINE void sigmoids(__m256* x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  // adding 1.5 * 2^23 + 127 rounds to an integer n (+ 127, the exponent bias), in the low bits
  const __m256 magic = _mm256_set1_ps(12583039.0f);
  __m256 z[K], shifted[K], r[K], p[K];
  // z = -x is never formed: n = round(-x log2e) comes from x directly, q = x + n ln2 = -r, and
  // the polynomial in r is evaluated in q with its odd coefficients negated
  for (int k = 0; k < K; ++k) z[k] = _mm256_max_ps(_mm256_set1_ps(-88.0f), _mm256_min_ps(_mm256_set1_ps(87.0f), x[k]));
  for (int k = 0; k < K; ++k) shifted[k] = _mm256_fmadd_ps(z[k], _mm256_set1_ps(-1.44269502163f), magic);
  for (int k = 0; k < K; ++k)
    r[k] = _mm256_fmadd_ps(_mm256_sub_ps(shifted[k], magic), _mm256_set1_ps(0.693147182465f), z[k]);  // q = -r
  for (int k = 0; k < K; ++k) p[k] = _mm256_fmadd_ps(_mm256_set1_ps(-8.296206594e-03f), r[k], _mm256_set1_ps(4.192535579e-02f));
  for (int k = 0; k < K; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(-1.666764915e-01f));
  for (int k = 0; k < K; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(4.999880493e-01f));
  for (int k = 0; k < K; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(-9.999996424e-01f));
  for (int k = 0; k < K; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(1.000000119e+00f));
  for (int k = 0; k < K; ++k) {
    // 2^n: the biased exponent shifted into place, the magic number's own bits shifted out
    const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(shifted[k]), 23));
    x[k] = _mm256_div_ps(one, _mm256_fmadd_ps(p[k], scale, one));
  }
}

AVX2_INLINE void transpose8x8(__m256 (&r)[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

// out[j] lane l = rows[l][col + j], j < 8
AVX2_INLINE void load_transposed(const float* const (&rows)[kLanes], int64_t col, __m256* out) {
  __m256 r[8];
  for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(rows[l] + col);
  transpose8x8(r);
  for (int j = 0; j < 8; ++j) out[j] = r[j];
}

// rows[l][k] = in[k] lane l, k < N. Streaming stores write each row (whole cache lines)
// past the caches: no read for ownership of lines that are overwritten anyway. With `sum`,
// also sum[k] = scale * (in[k] summed over the first `lanes` lanes), from the rows at hand.
template <int N>
AVX2_INLINE void store_transposed(const __m256* in, float* const (&rows)[kLanes], bool stream,
                                  float* sum = nullptr, int64_t lanes = kLanes, float scale = 1.0f) {
  __m256 r[N / 8][8];
  for (int b = 0; b < N / 8; ++b) {
    for (int j = 0; j < 8; ++j) r[b][j] = in[8 * b + j];
    transpose8x8(r[b]);
  }
  for (int l = 0; l < kLanes; ++l) {
    for (int b = 0; b < N / 8; ++b) {
      if (stream)
        _mm256_stream_ps(rows[l] + 8 * b, r[b][l]);
      else
        _mm256_storeu_ps(rows[l] + 8 * b, r[b][l]);
    }
  }
  if (sum == nullptr) return;
  for (int b = 0; b < N / 8; ++b) {
    __m256 total = r[b][0];
    for (int64_t l = 1; l < lanes; ++l) total = _mm256_add_ps(total, r[b][l]);
    _mm256_storeu_ps(sum + 8 * b, _mm256_mul_ps(total, _mm256_set1_ps(scale)));
  }
}

// Gate pre-activations of G groups for one tick: pre[g][col] = u + v + h @ W, column col
// of the internal order (i, f, o, 2g). A separate (not inlined) function so that the
// compiler keeps its 4G accumulators in registers instead of the sigmoid's constants.
template <int N, int G>
AVX2 __attribute__((noinline)) void avx2_gates(const __m256 (&h)[G][N], const __m256* u_t, const float* const (&v)[G],
                                               const float* w, __m256 (&pre)[G][4 * N]) {
  for (int j = 0; j < N; ++j) {
    __m256 acc[G][4];  // columns q N + j, q = i, f, o, g
    for (int q = 0; q < 4; ++q)
      for (int g = 0; g < G; ++g) acc[g][q] = _mm256_add_ps(u_t[q * N + j], _mm256_set1_ps(v[g][q * N + j]));
    for (int k = 0; k < N; ++k) {
      for (int q = 0; q < 4; ++q) {
        const __m256 wk = _mm256_set1_ps(w[k * 4 * N + q * N + j]);  // shared by the G groups
        for (int g = 0; g < G; ++g) acc[g][q] = _mm256_fmadd_ps(h[g][k], wk, acc[g][q]);
      }
    }
    for (int q = 0; q < 4; ++q)
      for (int g = 0; g < G; ++g) pre[g][q * N + j] = acc[g][q];
  }
}

// The LSTM cells of G groups from their gate pre-activations: updates c and h. All gates
// first, then all cells: independent work, four sigmoids at a time.
template <int N, int G>
AVX2 __attribute__((noinline)) void avx2_cells(__m256 (&pre)[G][4 * N], __m256 (&c)[G][N], __m256 (&h)[G][N],
                                               bool clip, float clip_value) {
  constexpr int K = 4;
  const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
  const __m256 lo = _mm256_set1_ps(-clip_value), hi = _mm256_set1_ps(clip_value);
  for (int g = 0; g < G; ++g)
    for (int col = 0; col < 4 * N; col += K) sigmoids<K>(pre[g] + col);
  for (int g = 0; g < G; ++g) {
    for (int j0 = 0; j0 < N; j0 += K) {
      __m256 squashed[K];  // tanh c = 2 sigmoid(2c) - 1
      for (int j = j0; j < j0 + K; ++j) {
        const __m256 cell = _mm256_fmsub_ps(two, pre[g][3 * N + j], one);  // tanh via sigmoid of 2g
        c[g][j] = _mm256_fmadd_ps(pre[g][N + j], c[g][j], _mm256_mul_ps(pre[g][j], cell));
        squashed[j - j0] = _mm256_mul_ps(c[g][j], two);
      }
      sigmoids<K>(squashed);
      for (int j = j0; j < j0 + K; ++j) {
        h[g][j] = _mm256_mul_ps(pre[g][2 * N + j], _mm256_fmsub_ps(two, squashed[j - j0], one));
        if (clip) {
          c[g][j] = _mm256_max_ps(lo, _mm256_min_ps(hi, c[g][j]));
          h[g][j] = _mm256_max_ps(lo, _mm256_min_ps(hi, h[g][j]));
        }
      }
    }
  }
}

// G groups of 8 sub-LSTMs (pb, a0 + lane, o0 + g), all ticks. u_t: the block's u transposed
// (4N registers); lanes past the last input unit read `zeros` and write `sink`.
template <int N, int G>
AVX2 void avx2_groups(const Problem& pr, int64_t pb, int64_t a0, int64_t lanes, int64_t o0, const __m256* u_t,
                      __m256* sum_o, const float* zeros, float* sink) {
  __m256 h[G][N], c[G][N], pre[G][4 * N];
  const float* v[G];
  for (int g = 0; g < G; ++g) {
    const float* h_rows[kLanes];
    const float* c_rows[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const int64_t row = pr.state_row(pb, a0 + l, o0 + g);
      h_rows[l] = l < lanes ? pr.h + row : zeros;
      c_rows[l] = l < lanes ? pr.c + row : zeros;
    }
    for (int k = 0; k < N; k += 8) {
      load_transposed(h_rows, k, h[g] + k);
      load_transposed(c_rows, k, c[g] + k);
    }
    v[g] = pr.v + pr.v_row(pb, o0 + g);
  }
  // the next group's rows into L1 while this one ticks: the next outputs of this item, else
  // the first ones of the next item (of the same network)
  const bool next_in_item = o0 + G < pr.num_o;
  const int64_t next_a = next_in_item ? a0 : a0 + kLanes, next_o = next_in_item ? o0 + G : 0;
  for (int64_t a = next_a; a < std::min(next_a + kLanes, pr.num_a); ++a) {
    const int64_t row = pr.state_row(pb, a, next_o);
    for (int64_t k = 0; k < std::min<int64_t>(G, pr.num_o - next_o) * N; k += kLineFloats) {
      _mm_prefetch(reinterpret_cast<const char*>(pr.h + row + k), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(pr.c + row + k), _MM_HINT_T0);
    }
  }
  for (int64_t t = 0; t < pr.ticks; ++t) {
    avx2_gates<N, G>(h, u_t, v, pr.weights(pb), pre);
    avx2_cells<N, G>(pre, c, h, pr.clip, pr.clip_value);
  }
  for (int g = 0; g < G; ++g) {
    float* h_rows[kLanes];
    float* c_rows[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const int64_t row = pr.state_row(pb, a0 + l, o0 + g);
      h_rows[l] = l < lanes ? pr.h_out + row : sink;
      c_rows[l] = l < lanes ? pr.c_out + row : sink;
    }
    store_transposed<N>(c[g], c_rows, pr.stream);
    float* sum_a = pr.read_outs() ? pr.sum_a_row(pb, a0, o0 + g) : nullptr;  // h's means over a, in part
    store_transposed<N>(h[g], h_rows, pr.stream, sum_a, lanes, 1.0f / pr.num_a);
    if (!pr.read_outs()) continue;
    for (int k = 0; k < N; ++k) sum_o[k] = _mm256_add_ps(sum_o[k], h[g][k]);
  }
}

// Asks for the memory of the next item (pb, a0..a0+7) into L2 while this one computes (and
// for the output rows with the intent to write, unless they are streamed): items read their
// rows strided, which the hardware prefetchers do not anticipate from one item to the next.
// Each group of outputs then pulls the next group's rows on into L1 (`avx2_groups`): a whole
// item there would crowd out the ticks' working set (4-10 % faster at P=8 and P=32 than the
// whole item into L1, benchmarks/cpu_kernel_ab.py).
AVX2_INLINE void prefetch_item(const Problem& pr, int64_t pb, int64_t a0) {
  const int64_t a_end = std::min(a0 + kLanes, pr.num_a);
  for (int64_t i = pr.state_row(pb, a0, 0); i < pr.state_row(pb, a_end, 0); i += kLineFloats) {
    _mm_prefetch(reinterpret_cast<const char*>(pr.h + i), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(pr.c + i), _MM_HINT_T1);
    if (pr.stream) continue;
    __builtin_prefetch(pr.h_out + i, 1, 2);
    __builtin_prefetch(pr.c_out + i, 1, 2);
  }
}

// The input terms u of the lanes' units a0 + l, transposed (lane l of u_t[col] is u[p, b, a0 + l][col]):
// each column one FMA per message channel, the lanes' messages gathered once.
template <int N>
AVX2_INLINE void input_terms(const Problem& pr, int64_t pb, int64_t a0, int64_t lanes, const float* zeros,
                             __m256* u_t) {
  const int64_t p = pr.member(pb);
  if (pr.u_add) {
    const float* rows[kLanes];
    for (int l = 0; l < kLanes; ++l) rows[l] = l < lanes ? pr.u_add + (p * pr.num_a + a0 + l) * 4 * N : zeros;
    for (int col = 0; col < 4 * N; col += 8) load_transposed(rows, col, u_t + col);
  } else {
    for (int col = 0; col < 4 * N; ++col) u_t[col] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < pr.mf; ++k) {
    alignas(32) float x[kLanes] = {};
    for (int64_t l = 0; l < lanes; ++l) x[l] = pr.fwd[(pb * pr.num_a + a0 + l) * pr.mf + k];
    const __m256 xk = _mm256_load_ps(x);
    const float* w = pr.w_fwd + (p * pr.mf + k) * 4 * N;
    for (int col = 0; col < 4 * N; ++col) u_t[col] = _mm256_fmadd_ps(xk, _mm256_set1_ps(w[col]), u_t[col]);
  }
}

// bwd_out[p, b, a0 + l] = mean over o of h (lane l of mean_o) @ bwd_w[p] + bwd_b[p], each message
// channel one FMA per state dimension for all lanes at once
template <int N>
AVX2_INLINE void backward_messages(const Problem& pr, int64_t pb, int64_t a0, int64_t lanes, const __m256* mean_o) {
  const int64_t p = pr.member(pb), m = pr.m;
  const float* w = pr.bwd_w + p * N * m;
  for (int64_t j = 0; j < m; ++j) {
    __m256 acc = _mm256_set1_ps(pr.bwd_b[p * m + j]);
    for (int k = 0; k < N; ++k) acc = _mm256_fmadd_ps(mean_o[k], _mm256_set1_ps(w[k * m + j]), acc);
    alignas(32) float out[kLanes];
    _mm256_store_ps(out, acc);
    for (int64_t l = 0; l < lanes; ++l) pr.bwd_out[(pb * pr.num_a + a0 + l) * m + j] = out[l];
  }
}

// All sub-LSTMs (pb, a0..a0+7, *): u computed once for the 8 lanes, then the outputs two at a time.
template <int N>
AVX2 void avx2_item(const Problem& pr, int64_t pb, int64_t a0) {
  alignas(32) static const float zeros[4 * N] = {};
  alignas(32) float sink[N];  // aligned for the streaming stores
  if (a0 + kLanes < pr.num_a) prefetch_item(pr, pb, a0 + kLanes);
  const int64_t lanes = std::min(kLanes, pr.num_a - a0);
  __m256 u_t[4 * N];
  input_terms<N>(pr, pb, a0, lanes, zeros, u_t);
  __m256 sum_o[N];  // lane l: the sum over o of h (pb, a0 + l, o, k)
  for (int k = 0; k < N; ++k) sum_o[k] = _mm256_setzero_ps();
  int64_t o = 0;
  for (; o + 2 <= pr.num_o; o += 2) avx2_groups<N, 2>(pr, pb, a0, lanes, o, u_t, sum_o, zeros, sink);
  if (o < pr.num_o) avx2_groups<N, 1>(pr, pb, a0, lanes, o, u_t, sum_o, zeros, sink);
  if (pr.stream) _mm_sfence();  // streaming stores are weakly ordered
  if (!pr.read_outs()) return;
  for (int k = 0; k < N; ++k) sum_o[k] = _mm256_mul_ps(sum_o[k], _mm256_set1_ps(1.0f / pr.num_o));
  backward_messages<N>(pr, pb, a0, lanes, sum_o);
}
#endif

// Output buffers of dead state tensors, for reuse. glibc hands multi-megabyte blocks back to
// the OS on free, so a fresh (P, B, A, O, N) output page-faults in on every call: for P = 32
// thousands of faults that cost more than the ticks themselves.
class BufferPool {
 public:
  at::Tensor empty(at::IntArrayRef sizes) {
    const size_t bytes = c10::multiply_integers(sizes) * sizeof(float);
    void* data = take(bytes);
    if (data == nullptr) data = c10::alloc_cpu(bytes);
    return at::from_blob(data, sizes, [this, bytes](void* block) { give(block, bytes); }, at::dtype(at::kFloat));
  }

 private:
  static constexpr size_t kMaxFree = 8;
  struct Block {
    void* data;
    size_t bytes;
  };

  // the most recently freed block first: its lines are the likeliest to be in a cache still
  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
      if (it->bytes != bytes) continue;
      void* data = it->data;
      free_.erase(std::next(it).base());
      return data;
    }
    return nullptr;
  }

  void give(void* data, size_t bytes) {
    if (data == nullptr) return;  // empty tensors
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.size() == kMaxFree) {  // the oldest goes
      c10::free_cpu(free_.front().data);
      free_.erase(free_.begin());
    }
    free_.push_back({data, bytes});
  }

  std::mutex mutex_;
  std::vector<Block> free_;
};

using ItemFn = void (*)(const Problem&, int64_t, int64_t);

ItemFn pick_item([[maybe_unused]] int64_t n) {
#ifdef VSML_X86
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    switch (n) {
      case 8: return avx2_item<8>;
      case 16: return avx2_item<16>;
      case 32: return avx2_item<32>;
      default: break;
    }
  }
#endif
  return scalar_item;
}

void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "dense_layer takes float32 CPU tensors, ", name,
              " is ", t.scalar_type(), " on ", t.device());
}

at::Tensor contiguous_float(const at::Tensor& t, const char* name) {
  check_float(t, name);
  return t.contiguous();
}

void check_shape(const at::Tensor& t, at::IntArrayRef expected, const char* name) {
  TORCH_CHECK(t.sizes() == expected, name, ": expected ", expected, ", got ", t.sizes());
}

// The layer step from the states h, c into h_out, c_out, which may be h and c themselves: each
// sub-LSTM's state is read and then written by the one thread that owns it, and read by no one
// else. Returns the outgoing forward and backward messages (empty without read-outs).
// h, c (P, B, A, O, N) contiguous; fwd (P, B, A, Mf), w_fwd (P, >= Mf, 4N), u_add (P, A, 4N); bwd
// (P, B, O, Mb), w_bwd (P, >= Mb, 4N) (messages may carry only their first channels: the input
// maps' first Mf / Mb rows are read), bias (P, 4N), v_add (P, O, 4N); w_h (P, N, 4N); read-outs
// fwd_w, bwd_w (P, N, M), fwd_b, bwd_b (P, M), all four or none.
std::tuple<at::Tensor, at::Tensor> layer_step(
    const at::Tensor& h, const at::Tensor& c, const at::Tensor& h_out, const at::Tensor& c_out, bool stream,
    const at::Tensor& fwd, const at::Tensor& bwd, const at::Tensor& w_fwd, const at::Tensor& w_bwd,
    const at::Tensor& bias, const at::Tensor& w_h, const std::optional<at::Tensor>& u_add,
    const std::optional<at::Tensor>& v_add, const std::optional<at::Tensor>& fwd_w,
    const std::optional<at::Tensor>& fwd_b, const std::optional<at::Tensor>& bwd_w,
    const std::optional<at::Tensor>& bwd_b, int64_t ticks, std::optional<double> clip) {
  TORCH_CHECK(h.dim() == 5 && c.sizes() == h.sizes(), "h, c: (P, B, A, O, N), got ", h.sizes(), " and ", c.sizes());
  const int64_t pop = h.size(0), batch = h.size(1), num_a = h.size(2), num_o = h.size(3), n = h.size(4);
  TORCH_CHECK(fwd.dim() == 4 && bwd.dim() == 4, "fwd, bwd: (P, B, A, Mf) and (P, B, O, Mb)");
  const int64_t mf = fwd.size(3), mb = bwd.size(3);
  check_shape(fwd, {pop, batch, num_a, mf}, "fwd");
  check_shape(bwd, {pop, batch, num_o, mb}, "bwd");
  TORCH_CHECK(w_fwd.dim() == 3 && w_fwd.size(0) == pop && w_fwd.size(1) >= mf && w_fwd.size(2) == 4 * n,
              "w_fwd: expected (", pop, ", >= ", mf, ", ", 4 * n, "), got ", w_fwd.sizes());
  TORCH_CHECK(w_bwd.dim() == 3 && w_bwd.size(0) == pop && w_bwd.size(1) >= mb && w_bwd.size(2) == 4 * n,
              "w_bwd: expected (", pop, ", >= ", mb, ", ", 4 * n, "), got ", w_bwd.sizes());
  check_shape(bias, {pop, 4 * n}, "bias");
  check_shape(w_h, {pop, n, 4 * n}, "w_h");
  if (u_add) check_shape(*u_add, {pop, num_a, 4 * n}, "u_add");
  if (v_add) check_shape(*v_add, {pop, num_o, 4 * n}, "v_add");
  const bool read_outs = fwd_w.has_value();
  TORCH_CHECK(read_outs == fwd_b.has_value() && read_outs == bwd_w.has_value() && read_outs == bwd_b.has_value(),
              "give all four read-out tensors or none");
  const int64_t m = read_outs ? fwd_w->size(-1) : 0;
  if (read_outs) {
    check_shape(*fwd_w, {pop, n, m}, "fwd_w");
    check_shape(*bwd_w, {pop, n, m}, "bwd_w");
    check_shape(*fwd_b, {pop, m}, "fwd_b");
    check_shape(*bwd_b, {pop, m}, "bwd_b");
  }
  TORCH_CHECK(ticks >= 0, "ticks must be >= 0, got ", ticks);
  const at::Tensor fc = contiguous_float(fwd, "fwd"), bc = contiguous_float(bwd, "bwd"),
                   wfc = contiguous_float(w_fwd.narrow(1, 0, mf), "w_fwd"),  // the rows the messages' channels read
                   wbc = contiguous_float(w_bwd.narrow(1, 0, mb), "w_bwd"),
                   biasc = contiguous_float(bias, "bias"), whc = contiguous_float(w_h, "w_h");
  const at::Tensor uac = u_add ? contiguous_float(*u_add, "u_add") : at::Tensor(),
                   vac = v_add ? contiguous_float(*v_add, "v_add") : at::Tensor();
  const at::Tensor fwc = read_outs ? contiguous_float(*fwd_w, "fwd_w") : at::Tensor(),
                   fbc = read_outs ? contiguous_float(*fwd_b, "fwd_b") : at::Tensor(),
                   bwc = read_outs ? contiguous_float(*bwd_w, "bwd_w") : at::Tensor(),
                   bbc = read_outs ? contiguous_float(*bwd_b, "bwd_b") : at::Tensor();

  at::Tensor v = at::empty({pop, batch, num_o, 4 * n}, h.options());
  member_rows(bc.data_ptr<float>(), wbc.data_ptr<float>(), biasc.data_ptr<float>(),
              v_add ? vac.data_ptr<float>() : nullptr, v.data_ptr<float>(), pop, batch * num_o, mb, 4 * n, num_o);
  const int64_t blocks = (num_a + kLanes - 1) / kLanes, items = pop * batch * blocks;
  at::Tensor sum_a = at::empty({read_outs ? pop : 0, batch, blocks, num_o, n}, h.options());
  at::Tensor bwd_out = at::empty({read_outs ? pop : 0, batch, num_a, m}, h.options());
  at::Tensor fwd_out = at::empty({read_outs ? pop : 0, batch, num_o, m}, h.options());
  const Problem pr{h.data_ptr<float>(), c.data_ptr<float>(), fc.data_ptr<float>(), wfc.data_ptr<float>(),
                   u_add ? uac.data_ptr<float>() : nullptr, v.data_ptr<float>(), whc.data_ptr<float>(),
                   read_outs ? fwc.data_ptr<float>() : nullptr, read_outs ? fbc.data_ptr<float>() : nullptr,
                   read_outs ? bwc.data_ptr<float>() : nullptr, read_outs ? bbc.data_ptr<float>() : nullptr,
                   h_out.data_ptr<float>(), c_out.data_ptr<float>(), sum_a.data_ptr<float>(),
                   fwd_out.data_ptr<float>(), bwd_out.data_ptr<float>(), batch, num_a, num_o, n, mf, m, blocks, ticks,
                   clip.has_value(), static_cast<float>(clip.value_or(0.0)), stream};
  const ItemFn item = pick_item(n);
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), items));
  // dynamic: on a shared machine a descheduled thread must not hold up the others; in runs of
  // four consecutive items, so that the item prefetched is mostly the thread's next one
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < items; ++i) item(pr, i / blocks, (i % blocks) * kLanes);
  if (read_outs)
    at::parallel_for(0, pop * batch * num_o, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> mean_a(n);
      for (int64_t row = begin; row < end; ++row) pr.forward_message(row / num_o, row % num_o, mean_a.data());
    });
  return {fwd_out, bwd_out};
}

// The layer step into fresh state tensors; returns the new h and c and, with read-outs, the
// outgoing forward (P, B, O, M) and backward (P, B, A, M) messages (else empty).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> dense_layer(
    const at::Tensor& h, const at::Tensor& c, const at::Tensor& fwd, const at::Tensor& bwd, const at::Tensor& w_fwd,
    const at::Tensor& w_bwd, const at::Tensor& bias, const at::Tensor& w_h, const std::optional<at::Tensor>& u_add,
    const std::optional<at::Tensor>& v_add, const std::optional<at::Tensor>& fwd_w,
    const std::optional<at::Tensor>& fwd_b, const std::optional<at::Tensor>& bwd_w,
    const std::optional<at::Tensor>& bwd_b, int64_t ticks, std::optional<double> clip) {
  const at::Tensor hc = contiguous_float(h, "h"), cc = contiguous_float(c, "c");
  static BufferPool* pool = new BufferPool;  // never destroyed: tensors may outlive static destructors
  at::Tensor h_out = pool->empty(hc.sizes()), c_out = pool->empty(cc.sizes());
  // outputs that outgrow the L2 caches go past all caches (no read for ownership, no eviction
  // of the inputs to come), where a row is whole cache lines: ~8 % faster at P=4 and P=8
  // (benchmarks/cpu_kernel_ab.py), the next step's reads of them being prefetched anyway
  const bool stream = 2 * h_out.nbytes() > kStreamBytes && hc.size(-1) % kLineFloats == 0;
  auto [fwd_out, bwd_out] = layer_step(hc, cc, h_out, c_out, stream, fwd, bwd, w_fwd, w_bwd, bias, w_h, u_add, v_add,
                                       fwd_w, fwd_b, bwd_w, bwd_b, ticks, clip);
  return {h_out, c_out, fwd_out, bwd_out};
}

// The layer step with the new states written over h and c (contiguous): for callers that hand
// their states over. Small states then need no second set of buffers in the caches; larger ones
// are better served by `dense_layer`'s streamed fresh buffers (the caller chooses: measurements
// at cpu_ticks.IN_PLACE_MAX_BYTES). Returns the messages.
std::tuple<at::Tensor, at::Tensor> dense_layer_(
    at::Tensor& h, at::Tensor& c, const at::Tensor& fwd, const at::Tensor& bwd, const at::Tensor& w_fwd,
    const at::Tensor& w_bwd, const at::Tensor& bias, const at::Tensor& w_h, const std::optional<at::Tensor>& u_add,
    const std::optional<at::Tensor>& v_add, const std::optional<at::Tensor>& fwd_w,
    const std::optional<at::Tensor>& fwd_b, const std::optional<at::Tensor>& bwd_w,
    const std::optional<at::Tensor>& bwd_b, int64_t ticks, std::optional<double> clip) {
  TORCH_CHECK(h.is_contiguous() && c.is_contiguous() && !h.is_same(c), "dense_layer_ updates two distinct "
              "contiguous state tensors in place");
  check_float(h, "h");
  check_float(c, "c");
  return layer_step(h, c, h, c, false, fwd, bwd, w_fwd, w_bwd, bias, w_h, u_add, v_add, fwd_w, fwd_b, bwd_w, bwd_b,
                    ticks, clip);
}

}  // namespace

TORCH_LIBRARY(vsml_gym, m) {
  m.def("dense_layer(Tensor h, Tensor c, Tensor fwd, Tensor bwd, Tensor w_fwd, Tensor w_bwd, Tensor bias, "
        "Tensor w_h, Tensor? u_add, Tensor? v_add, Tensor? fwd_w, Tensor? fwd_b, Tensor? bwd_w, Tensor? bwd_b, "
        "int ticks, float? clip) -> (Tensor, Tensor, Tensor, Tensor)",
        &dense_layer);
  m.def("dense_layer_(Tensor(a!) h, Tensor(b!) c, Tensor fwd, Tensor bwd, Tensor w_fwd, Tensor w_bwd, Tensor bias, "
        "Tensor w_h, Tensor? u_add, Tensor? v_add, Tensor? fwd_w, Tensor? fwd_b, Tensor? bwd_w, Tensor? bwd_b, "
        "int ticks, float? clip) -> (Tensor, Tensor)",
        &dense_layer_);
}
