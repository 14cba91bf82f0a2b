// The effective clock of each CPU thread, measured: a chain of dependent integer adds, which any
// current x86 core retires at one per cycle, timed on every OpenMP thread at once. On a shared
// VM the speed a benchmark gets swings with the host's load (here 1.3-2.5 GHz within minutes);
// recorded beside examples/s it makes runs of different moments comparable.

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <chrono>
#include <omp.h>

namespace {

// GHz of each of the `threads` threads running `iterations` dependent adds simultaneously
at::Tensor clock_probe(int64_t iterations, int64_t threads) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  TORCH_CHECK(iterations > 0 && threads > 0, "clock_probe: iterations and threads must be positive");
  at::Tensor ghz = at::empty({threads}, at::kDouble);
  double* out = ghz.data_ptr<double>();
#pragma omp parallel num_threads(threads)
  {
    const auto start = std::chrono::steady_clock::now();
    int64_t x = 0;
    for (int64_t i = 0; i < iterations; ++i) __asm__ volatile("add $1, %0" : "+r"(x));
    const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
    out[omp_get_thread_num()] = static_cast<double>(x) / seconds.count() / 1e9;
  }
  return ghz;
#else
  TORCH_CHECK(false, "clock_probe measures x86 cores only");
#endif
}

}  // namespace

TORCH_LIBRARY(vsml_gym_bench, m) { m.def("clock_probe(int iterations, int threads) -> Tensor", &clock_probe); }
