// `marginet demo`: generate a sample book and run the whole pipeline end to end.
//
// What exists so far: the backend probe and the per-account scenario reduction stage. The demo
// runs that stage on a seeded synthetic P&L matrix on every backend that answers, checks each
// result against the plain reference loop, and prints what it measured. It prints no margin
// figures until the margin engine exists.

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "host/backend.hpp"
#include "host/dispatch.hpp"
#include "kernels/scenario_reduce.hpp"
#include "models/scenario_math.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"

namespace marginet::cli {

namespace {

struct DemoOptions {
  std::size_t accounts = 10000;
  std::size_t scenarios = 1250;
  unsigned seed = 42;
};

void run_demo(const CommonOptions& common, const DemoOptions& opts) {
  const Backend chosen = resolve_backend(common);

  // A seeded P&L matrix: accounts × scenarios, losses of varying size per account.
  std::mt19937_64 rng(opts.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::lognormal_distribution<double> size(10.0, 1.5);
  std::vector<double> pnl(opts.accounts * opts.scenarios);
  Progress progress("generating P&L", opts.accounts, common.quiet);
  for (std::size_t a = 0; a < opts.accounts; ++a) {
    const double scale = size(rng);
    for (std::size_t s = 0; s < opts.scenarios; ++s) pnl[a * opts.scenarios + s] = scale * normal(rng);
    progress.advance(a + 1);
  }
  progress.finish();
  std::vector<double> weights(opts.scenarios, 1.0);

  // Reference: the plain loop from models/.
  std::vector<double> ref_loss(opts.accounts);
  std::vector<std::int32_t> ref_scn(opts.accounts);
  for (std::size_t a = 0; a < opts.accounts; ++a) {
    const WorstLoss w = worst_weighted_loss(&pnl[a * opts.scenarios], weights.data(), opts.scenarios);
    ref_loss[a] = w.loss;
    ref_scn[a] = w.scenario;
  }

  Table table;
  table.columns = {"stage", "backend", "device", "rows", "scenarios", "seconds", "matches_reference"};
  std::vector<Backend> backends{Backend::cpu};
  if (probe_cuda().available()) backends.push_back(Backend::cuda);
  for (Backend b : backends) {
    std::vector<double> loss(opts.accounts);
    std::vector<std::int32_t> scn(opts.accounts);
    const kernels::WorstLossArgs args{pnl.data(), opts.accounts, opts.scenarios, weights.data(),
                                      loss.data(), scn.data()};
    const auto t0 = std::chrono::steady_clock::now();
    MARGINET_DISPATCH(b, weighted_worst_loss, args);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool same = loss == ref_loss && scn == ref_scn;
    table.add_row({std::string("worst_scenario_loss"), std::string(backend_name(b)),
                   describe_device(b), static_cast<std::int64_t>(opts.accounts),
                   static_cast<std::int64_t>(opts.scenarios), secs,
                   std::string(same ? "yes" : "NO")});
    if (!same) MARGINET_FAIL(std::string("backend ") + backend_name(b) + " disagrees with the reference");
  }
  if (!common.quiet) {
    spdlog::info("default backend here: {}", backend_name(chosen));
    spdlog::info("the margin engine is not built yet: this demo runs the stages that exist");
  }
  OutputSink sink(common.out);
  write_table(sink.stream(), table, common.format);
}

}  // namespace

void add_demo_command(CLI::App& app, CommonOptions& common) {
  auto opts = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "Generate a sample book and run the pipeline end to end");
  cmd->add_option("--accounts", opts->accounts, "Accounts in the sample book")->capture_default_str();
  cmd->add_option("--scenarios", opts->scenarios, "Scenarios per account")->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Generator seed")->capture_default_str();
  cmd->callback([&common, opts] { run_demo(common, *opts); });
}

}  // namespace marginet::cli
