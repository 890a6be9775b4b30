// Strong scaling of the distributed EOD run (service/scaleout/, docs/scale-out.md): the real
// binary on the standard EOD book under hvar (1,250 scenarios), as one process and under
// `mpirun -np 1` and `-np 2`, the ranks' figures read from `--stats`: the slowest rank's
// compute, the time in MPI (waiting for the slower rank included) and the bytes moved. Each
// run is the whole command (reading the files, the run, writing the CSV), as an EOD job is.
//
//   build/bench/bench_scaleout                 # needs a build with MPI (-DMARGINET_MPI)
//   MARGINET_EOD_POSITIONS=200000 build/bench/bench_scaleout   # a smaller book

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/bench_context.hpp"
#include "host/book_generator.hpp"

namespace marginet {
namespace {

namespace fs = std::filesystem;

const std::string& book_dir() {
  static const std::string dir = [] {
    const BookSpec spec = bench::eod_book_spec();
    const std::string d = "/tmp/marginet_bench_scaleout_" + std::to_string(spec.positions);
    if (!fs::exists(d + "/returns.csv")) {
      const GeneratedBook book = generate_book(spec);
      write_book(book, d);
      write_returns_history(d + "/returns.csv", book.underlyings, 1251, spec.valuation_time, 7, false);
    }
    return d;
  }();
  return dir;
}

std::string margin_args() {
  const std::string& d = book_dir();
  return " margin --instruments " + d + "/instruments.csv --market " + d + "/market.csv --marks " + d +
         "/marks.csv --positions " + d + "/positions.csv --model hvar --returns " + d +
         "/returns.csv --format csv --quiet --out " + d + "/margin.csv --stats " + d + "/stats.json";
}

/// ranks 0: one process without a launcher; else mpirun -np ranks. `threads` OpenMP threads each.
void BM_EodHvar(benchmark::State& state, int ranks, int threads, int partitions, const char* split) {
  if (ranks > 0 && std::string(MARGINET_MPIEXEC).empty()) {
    state.SkipWithError("built without MPI");
    return;
  }
  std::string cmd = std::string(MARGINET_EXE) + " --threads " + std::to_string(threads) + margin_args();
  if (partitions) cmd += " --partitions " + std::to_string(partitions);
  cmd += std::string(" --split ") + split;
  if (ranks > 0)
    cmd = "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " + std::string(MARGINET_MPIEXEC) +
          " --oversubscribe --bind-to none -np " + std::to_string(ranks) + " " + cmd;
  nlohmann::json stats;
  for (auto _ : state) {
    const int rc = std::system(cmd.c_str());
    if (rc != 0) {
      state.SkipWithError(("command failed: " + cmd).c_str());
      return;
    }
    std::ifstream in(book_dir() + "/stats.json");
    stats = nlohmann::json::parse(in);
  }
  double slowest = 0, mpi = 0, bytes = 0;
  for (const auto& r : stats["per_rank"]) {
    slowest = std::max(slowest, r["compute_s"].get<double>());
    mpi = std::max(mpi, r["mpi_s"].get<double>());
    bytes += r["bytes_sent"].get<double>();
  }
  state.counters["ranks"] = std::max(ranks, 1);
  state.counters["positions"] = stats["positions"].get<double>();
  state.counters["slowest_compute_s"] = slowest;
  state.counters["max_mpi_s"] = mpi;
  state.counters["bytes_moved_MB"] = bytes / 1e6;
  state.counters["run_s"] = stats["wall_s"].get<double>();
}

#define MARGINET_EOD_BENCH(name, ...) \
  BENCHMARK_CAPTURE(BM_EodHvar, name, __VA_ARGS__)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime()
// The baselines: one process using both cores, as `marginet margin` runs without a launcher,
// and one rank of one thread.
MARGINET_EOD_BENCH(one_process_2_threads, 0, 2, 0, "accounts");
MARGINET_EOD_BENCH(mpi_1_rank_1_thread, 1, 1, 0, "accounts");
// Strong scaling at one thread per rank, 2 ranks on the machine's 2 cores: accounts split (each
// rank revalues the instruments its accounts hold), then scenarios split (each rank revalues
// every instrument over half the scenarios; rank 0 gathers P and reduces).
MARGINET_EOD_BENCH(mpi_2_ranks_split_accounts, 2, 1, 0, "accounts");
MARGINET_EOD_BENCH(mpi_2_ranks_split_scenarios, 2, 1, 0, "scenarios");
// 16 partitions checkpointed: the cost of the checkpoints and of revaluing shared instruments.
MARGINET_EOD_BENCH(mpi_2_ranks_16_partitions, 2, 1, 16, "accounts");

}  // namespace
}  // namespace marginet

MARGINET_BENCHMARK_MAIN()
