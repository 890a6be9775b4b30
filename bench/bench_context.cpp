#include "bench/bench_context.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace marginet::bench {

namespace {
Backend g_backend = Backend::cpu;
}

Backend backend() { return g_backend; }

void set_bandwidth_counters(benchmark::State& state, double bytes_per_iteration) {
  const double total = bytes_per_iteration * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(total));
  state.counters["GB/s"] = benchmark::Counter(total / 1e9, benchmark::Counter::kIsRate);
  if (g_backend == Backend::cuda && probe_cuda().peak_bandwidth_gbs > 0) {
    state.counters["pct_of_peak"] = benchmark::Counter(
        100.0 * total / 1e9 / probe_cuda().peak_bandwidth_gbs, benchmark::Counter::kIsRate);
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const auto k = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

BookSpec eod_book_spec() {
  BookSpec spec;  // 20 underlyings, 100k instruments, 10k accounts, 1M positions
  if (const char* n = std::getenv("MARGINET_EOD_POSITIONS")) {
    const double f = std::stod(n) / static_cast<double>(spec.positions);
    spec.positions = static_cast<std::size_t>(std::stod(n));
    spec.instruments = std::max<std::size_t>(400, static_cast<std::size_t>(static_cast<double>(spec.instruments) * f));
    spec.accounts = std::max<std::size_t>(10, static_cast<std::size_t>(static_cast<double>(spec.accounts) * f));
  }
  spec.seed = 2024;
  return spec;
}

int run_main(int argc, char** argv) {
  std::string device = "auto";
  int threads = 0;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--device=", 9) == 0)
      device = argv[i] + 9;
    else if (std::strncmp(argv[i], "--threads=", 10) == 0)
      threads = std::stoi(argv[i] + 10);
    else
      rest.push_back(argv[i]);
  }
  set_cpu_threads(threads);
  g_backend = select_backend(parse_device_choice(device));

  benchmark::AddCustomContext("marginet_revision", git_revision());
  benchmark::AddCustomContext("marginet_backend", backend_name(g_backend));
  benchmark::AddCustomContext("marginet_device", describe_device(g_backend));
  benchmark::AddCustomContext("marginet_backends_built", backends_built());
  benchmark::AddCustomContext("thrust_version", thrust_version());
  benchmark::AddCustomContext("compiler", compiler_version());
  benchmark::AddCustomContext("cpu_threads", std::to_string(cpu_threads()));
  const CudaProbe& cuda = probe_cuda();
  benchmark::AddCustomContext("cuda_runtime", std::to_string(cuda.runtime_version));
  benchmark::AddCustomContext("cuda_driver", std::to_string(cuda.driver_version));

  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace marginet::bench
