// `marginet demo`: generate a realistic book and run the end-of-day margin under every
// methodology, end to end through the same files and code paths as `marginet margin`.
//
// Into --workdir (default ./marginet-demo) it writes a BTC and ETH book — option chains across
// expiries and strikes, dated futures, perpetuals (inverse, Deribit style) — a few thousand
// accounts of power-law sizes, their collateral, two years of synthetic daily returns and a
// stressed period; then loads those files back, margins every account under span16,
// deribit-pm, hvar (filtered historical ES with a stressed floor) and mc-es (10,000 Philox
// paths), and prints one summary row per methodology: accounts, total IM and MM, calls, the
// largest call, seconds per stage, backend. Every figure printed is computed by this run.

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "host/book_generator.hpp"
#include "host/collateral.hpp"
#include "host/margin_engine.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"
#include "models/positions.hpp"
#include "models/reference_data.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"

namespace marginet::cli {

namespace {

struct DemoOptions {
  std::string workdir = "marginet-demo";
  std::size_t accounts = 3000;
  std::size_t positions = 60000;
  std::size_t instruments = 2000;
  std::size_t paths = 10000;
  unsigned seed = 42;
};

void run_demo(const CommonOptions& common, const DemoOptions& o) {
  const Backend backend = resolve_backend(common);
  const auto t_start = std::chrono::steady_clock::now();
  namespace fs = std::filesystem;
  fs::create_directories(o.workdir);
  const std::string dir = o.workdir;

  // 1. The sample book, written as the files a clearing house would hand over.
  BookSpec spec;
  spec.underlyings = 2;  // BTC, ETH
  spec.instruments = o.instruments;
  spec.accounts = o.accounts;
  spec.positions = o.positions;
  spec.seed = o.seed;
  {
    const GeneratedBook book = generate_book(spec);
    write_book(book, dir);
    write_collateral(book, dir + "/collateral.csv", o.seed + 1);
    write_returns_history(dir + "/returns.csv", book.underlyings, 730, spec.valuation_time, o.seed + 2, false);
    write_returns_history(dir + "/stress_returns.csv", book.underlyings, 90, spec.valuation_time - 900 * 86400.0,
                          o.seed + 3, true);
  }
  if (!common.quiet) spdlog::info("sample book written to {}/", dir);

  // 2. Load it back through the loaders the CLI uses.
  const ReferenceData ref = load_reference_data(dir + "/instruments.csv", dir + "/market.csv", dir + "/marks.csv");
  const std::vector<Position> positions = read_positions(dir + "/positions.csv", ref.instruments);
  const std::vector<CollateralHolding> collateral = read_collateral(dir + "/collateral.csv");
  if (!common.quiet)
    spdlog::info("{} instruments, {} positions, {} collateral lines", ref.instruments.size(), positions.size(),
                 collateral.size());

  // 3. The EOD run under every methodology.
  std::vector<Methodology> methods{load_methodology("span16"), load_methodology("deribit-pm"),
                                   load_methodology("hvar"), load_methodology("mc-es")};
  methods[2].hvar.returns = dir + "/returns.csv";
  methods[2].hvar.stress_returns = dir + "/stress_returns.csv";
  methods[3].mc.paths = o.paths;
  methods[3].mc.seed = o.seed;
  methods[3].mc.vols = {{"BTC", 0.55}, {"ETH", 0.70}};
  methods[3].mc.correlations = {{"BTC/ETH", 0.85}};

  Table table;
  // IM in USD (deribit-pm: each coin's IM at its index), calls in the settlement asset, times in s.
  const std::string asset = methods[0].settlement_asset;
  table.columns = {"model", "scenarios", "accounts", "total_im_USD", "total_mm_USD", "accounts_called",
                   "total_calls_" + asset, "largest_call_account", "largest_call_" + asset, "risk_arrays_s",
                   "aggregation_s", "reduction_s", "total_s", "backend"};
  Progress progress("margin runs", methods.size(), common.quiet);
  for (std::size_t i = 0; i < methods.size(); ++i) {
    const Methodology& m = methods[i];
    MarginEngine engine(ref.instruments, ref.market, m, backend);
    MarginRun run = engine.run(positions);
    apply_collateral(run, collateral, ref.market, m);
    double im = 0, mm = 0;
    std::int64_t calls = 0, called = 0;
    const AccountMargin* largest = nullptr;
    for (const AccountMargin& a : run.accounts) {
      im += a.im;
      mm += a.mm;
      if (a.call_minor > 0) {
        ++called;
        if (!checked_add(calls, a.call_minor, calls)) MARGINET_FAIL("sum of calls overflows int64");
        if (!largest || a.call_minor > largest->call_minor) largest = &a;
      }
    }
    const int scale = m.settlement_scale;
    table.add_row({m.name, static_cast<std::int64_t>(engine.scenarios().count),
                   static_cast<std::int64_t>(run.accounts.size()), Figure{im, 2}, Figure{mm, 2}, called,
                   format_money(calls, scale), largest ? largest->account : std::string("-"),
                   largest ? format_money(largest->call_minor, scale) : std::string("0"),
                   Figure{run.times.risk_arrays_s, 3}, Figure{run.times.aggregation_s, 3},
                   Figure{run.times.reduction_s, 3}, Figure{run.times.total_s, 3},
                   std::string(backend_name(backend))});
    if (!common.quiet)
      spdlog::info("{}: {} accounts, total IM {:.2f} USD in {:.3f} s", m.name, run.accounts.size(), im,
                   run.times.total_s);
    progress.advance(i + 1);
  }
  progress.finish();
  OutputSink sink(common.out);
  write_table(sink.stream(), table, common.format);
  if (!common.quiet)
    spdlog::info("demo done in {:.1f} s on {} ({}); files in {}/", 
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(),
                 backend_name(backend), describe_device(backend), dir);
}

}  // namespace

void add_demo_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "Generate a sample book and run the EOD margin under every methodology");
  cmd->add_option("--workdir", o->workdir, "Folder for the generated files")->capture_default_str();
  cmd->add_option("--accounts", o->accounts, "Accounts in the sample book")->capture_default_str();
  cmd->add_option("--positions", o->positions, "Positions in the sample book")->capture_default_str();
  cmd->add_option("--instruments", o->instruments, "Instruments (BTC and ETH)")->capture_default_str();
  cmd->add_option("--paths", o->paths, "mc-es paths")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Generator seed")->capture_default_str();
  cmd->callback([&common, o] { run_demo(common, *o); });
}

}  // namespace marginet::cli
