// `marginet greeks --instruments F --market F --marks F [--device] [--format csv|json] [--out F]`:
// price and greeks of every instrument under a market snapshot (SPEC §2, §4), one row per
// instrument: id,price,price_coin,delta,delta_coin,gamma,vega,theta,rho,vanna,volga,iv.
// Units and what each column means per kind and settlement: docs/pricing.md.

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>

#include "host/greeks_engine.hpp"
#include "models/errors.hpp"
#include "models/reference_data.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"

namespace marginet::cli {

namespace {

struct GreeksOptions {
  std::string instruments, market, marks;
};

void run_greeks(const CommonOptions& common, const GreeksOptions& opts) {
  const Backend backend = resolve_backend(common);
  const ReferenceData ref = load_reference_data(opts.instruments, opts.market, opts.marks);

  GreeksBatch batch;
  try {
    batch = flatten_greeks_batch(ref.instruments, ref.market);
  } catch (const input_error& e) {
    if (!e.file().empty()) throw;
    throw input_error(opts.marks, 0, "instrument", e.what());  // a missing mark: name the file
  }
  const auto t0 = std::chrono::steady_clock::now();
  const GreeksTable g = compute_greeks(backend, batch);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!common.quiet)
    spdlog::info("greeks of {} instruments on {} in {:.3f} ms", g.size(), backend_name(backend),
                 secs * 1e3);

  Table table;
  table.columns = {"id",    "price", "price_coin", "delta", "delta_coin", "gamma",
                   "vega",  "theta", "rho",        "vanna", "volga",      "iv"};
  for (std::size_t i = 0; i < g.size(); ++i)
    table.add_row({ref.instruments[i].id, g.price[i], g.price_coin[i], g.delta[i], g.delta_coin[i],
                   g.gamma[i], g.vega[i], g.theta[i], g.rho[i], g.vanna[i], g.volga[i], g.iv[i]});
  OutputSink sink(common.out);
  write_table(sink.stream(), table, common.format);
}

}  // namespace

void add_greeks_command(CLI::App& app, CommonOptions& common) {
  auto opts = std::make_shared<GreeksOptions>();
  CLI::App* cmd =
      app.add_subcommand("greeks", "Price and greeks of instruments under a market snapshot");
  cmd->add_option("--instruments", opts->instruments, "instruments.csv")->required();
  cmd->add_option("--market", opts->market, "market.csv (index, rate, valuation time)")->required();
  cmd->add_option("--marks", opts->marks, "marks.csv (mark price and/or mark IV)")->required();
  cmd->callback([&common, opts] { run_greeks(common, *opts); });
}

}  // namespace marginet::cli
