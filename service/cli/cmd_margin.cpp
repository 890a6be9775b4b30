// `marginet margin` (the end-of-day run) and `marginet whatif` (incremental margin of proposed
// trades for one account), SPEC §2 and §5.
//
//   marginet margin --instruments F --market F --marks F --positions F|--store S --model NAME|FILE
//                   [--risk-arrays F] [--device] [--format auto|table|csv|json] [--out F]
//                   [--collateral F] [--returns F] [--stress-returns F] [--paths N] [--seed N]
//     CSV: the columns of service/cli/margin_table.hpp (a unit column; deribit-pm in coin: a row
//          per account and currency); on a terminal an aligned table, figures rounded.
//     JSON: every figure with a `units` object, the per-underlying breakdown and the five worst
//          scenarios with their P&L (the fields of margin.result).
//     --store S reads the positions kept by a clearing store (opened as reader) instead of a
//     positions file: exactly one of the two.
//   marginet whatif --account A --trades F [--new-account] ... (same reference data, model,
//                   --positions or --store; an account with no position is an error unless
//                   --new-account)
//     trades.csv: instrument,quantity  (an optional account column must name A)
//
// Scenario ids in output are 1-based (span16's 1–16); 0 means none.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "host/collateral.hpp"
#include "host/margin_engine.hpp"
#include "models/money.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/reference_data.hpp"
#include "service/cli/common.hpp"
#include "service/cli/margin_table.hpp"
#include "service/cli/table.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/protocol.hpp"

namespace marginet::cli {

namespace {

struct MarginOptions {
  std::string instruments, market, marks, positions, model = "span16", risk_arrays;
  std::string collateral, returns, stress_returns;
  std::size_t paths = 0;
  long long seed = -1;
  std::string account, trades;  // whatif
  bool new_account = false;     // whatif: the account may hold nothing yet
  std::string store;            // margin, whatif: positions from a clearing store instead of --positions
};

void add_reference_options(CLI::App* cmd, MarginOptions& o, bool positions_from_store = false) {
  cmd->add_option("--instruments", o.instruments, "instruments.csv")->required();
  cmd->add_option("--market", o.market, "market.csv")->required();
  cmd->add_option("--marks", o.marks, "marks.csv")->required();
  CLI::Option* positions =
      cmd->add_option("--positions", o.positions, "positions.csv (account,instrument,quantity)");
  if (positions_from_store) {
    CLI::Option* store =
        cmd->add_option("--store", o.store, "Clearing store (SQLite file): its kept positions instead of --positions");
    positions->excludes(store);
  } else {
    positions->required();
  }
  cmd->add_option("--model", o.model, "Methodology: span16, deribit-pm, hvar (needs --returns), mc-es, or a JSON file (examples/models/)")->capture_default_str();
  cmd->add_option("--risk-arrays", o.risk_arrays,
                  "span16 only: published risk arrays (instrument,s1..s16 losses per long unit)");
  cmd->add_option("--returns", o.returns, "hvar: daily returns (date,underlying,return[,vol_return])");
  cmd->add_option("--stress-returns", o.stress_returns, "hvar: stressed-period returns (a floor)");
  cmd->add_option("--paths", o.paths, "mc-es: number of paths (default 10000)");
  cmd->add_option("--seed", o.seed, "mc-es: random seed");
}

/// The methodology with the command line's overrides.
Methodology methodology_of(const MarginOptions& o) {
  Methodology m = load_methodology(o.model);
  if (!o.returns.empty()) m.hvar.returns = o.returns;
  if (!o.stress_returns.empty()) m.hvar.stress_returns = o.stress_returns;
  if (o.paths) m.mc.paths = o.paths;
  if (o.seed >= 0) m.mc.seed = static_cast<std::uint64_t>(o.seed);
  if ((!o.returns.empty() || !o.stress_returns.empty()) && m.kind != MethodologyKind::hvar)
    throw usage_error("--returns / --stress-returns apply to hvar only");
  return m;
}

/// Runs `body`, naming the marks file in errors about missing marks (they have no file yet).
template <class Body>
void naming_marks(const MarginOptions& o, Body&& body) {
  try {
    body();
  } catch (const input_error& e) {
    if (!e.file().empty()) throw;
    throw input_error(o.marks, 0, "instrument", e.what());
  }
}

/// The positions kept by a clearing store (opened as a reader), for the risk engine.
std::vector<Position> store_positions(const MarginOptions& o, const InstrumentTable& instruments) {
  return kept_positions(*open_clearing_store(o.store, OpenMode::reader), instruments, o.instruments);
}

/// One account's result: the fields margin.result carries (one definition, protocol.hpp).
nlohmann::ordered_json account_json(const AccountMargin& a, const ScenarioSet& set, const Methodology& m) {
  return nlohmann::ordered_json::from_msgpack(protocol::encode_account(a, set, m));
}

void log_times(const CommonOptions& common, const MarginRun& run, std::size_t positions) {
  if (common.quiet) return;
  const StageTimes& t = run.times;
  spdlog::info("{} accounts, {} positions: prepare {:.3f} s, risk arrays {:.3f} s ({} revaluations), "
               "aggregation {:.3f} s, reduction {:.3f} s, total {:.3f} s",
               run.accounts.size(), positions, t.prepare_s, t.risk_arrays_s, t.revaluations,
               t.aggregation_s, t.reduction_s, t.total_s);
}

void run_margin(const CommonOptions& common, const MarginOptions& o) {
  const Backend backend = resolve_backend(common);
  if (o.positions.empty() == o.store.empty())
    throw usage_error("margin: give exactly one of --positions FILE or --store STORE");
  const ReferenceData ref = load_reference_data(o.instruments, o.market, o.marks);
  const std::vector<Position> positions =
      o.store.empty() ? read_positions(o.positions, ref.instruments) : store_positions(o, ref.instruments);
  const Methodology m = methodology_of(o);
  MarginEngine engine(ref.instruments, ref.market, m, backend);
  if (!o.risk_arrays.empty()) engine.use_published_risk_arrays(read_risk_arrays(o.risk_arrays));
  MarginRun run;
  naming_marks(o, [&] { run = engine.run(positions); });
  const std::vector<CollateralHolding> holdings =
      o.collateral.empty() ? std::vector<CollateralHolding>{} : read_collateral(o.collateral);
  // An account with collateral and no positions is still an account: IM 0, its collateral value.
  std::set<std::string> listed;
  for (const AccountMargin& a : run.accounts) listed.insert(a.account);
  for (const CollateralHolding& h : holdings)
    if (listed.insert(h.account).second) {
      AccountMargin a;
      a.account = h.account;
      a.model = m.name;
      run.accounts.push_back(std::move(a));
    }
  std::sort(run.accounts.begin(), run.accounts.end(),
            [](const AccountMargin& x, const AccountMargin& y) { return x.account < y.account; });
  apply_collateral(run, holdings, ref.market, m);
  log_times(common, run, positions.size());

  OutputSink sink(common.out);
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const AccountMargin& a : run.accounts) out.push_back(account_json(a, engine.scenarios(), m));
  if (common.format == "json") {
    sink.stream() << out.dump(2) << "\n";
    return;
  }
  write_table(sink.stream(), margin_table(out, pretty_output(sink.stream(), common.format)), common.format);
}

std::vector<Position> read_trades(const std::string& path, const std::string& account,
                                  const InstrumentTable& instruments) {
  CsvReader csv(path, {"instrument", "quantity"});
  std::vector<Position> trades;
  while (csv.next()) {
    if (csv.has("account") && !csv.text("account").empty() && csv.text("account") != account)
      csv.fail("account", "trade for '" + csv.text("account") + "' in a what-if for '" + account + "'");
    const std::string& id = csv.required_text("instrument");
    if (!instruments.contains(id)) csv.fail("instrument", "unknown instrument '" + id + "'");
    trades.push_back(Position{account, instruments.index_of(id), csv.number("quantity")});
  }
  return trades;
}

void run_whatif(const CommonOptions& common, const MarginOptions& o) {
  const Backend backend = resolve_backend(common);
  const ReferenceData ref = load_reference_data(o.instruments, o.market, o.marks);
  if (o.positions.empty() == o.store.empty())
    throw usage_error("whatif: give exactly one of --positions FILE or --store STORE");
  std::vector<Position> positions;
  for (Position& p : o.store.empty() ? read_positions(o.positions, ref.instruments) : store_positions(o, ref.instruments))
    if (p.account == o.account) positions.push_back(std::move(p));
  if (positions.empty() && !o.new_account)
    throw input_error(o.store.empty() ? o.positions : o.store, 0, "account",
                      "account '" + o.account + "' holds no position here (a what-if of an account with no book yet: "
                      "--new-account)");
  const std::vector<Position> trades = read_trades(o.trades, o.account, ref.instruments);
  const Methodology m = methodology_of(o);
  MarginEngine engine(ref.instruments, ref.market, m, backend);
  if (!o.risk_arrays.empty()) engine.use_published_risk_arrays(read_risk_arrays(o.risk_arrays));
  // The account's own book is enough: its P&L rows are cached by the run, the trades added to
  // them; the traded instruments are covered by the scenario set and the risk-array cache.
  std::vector<std::size_t> traded;
  for (const Position& t : trades) traded.push_back(t.instrument);
  WhatIfResult w;
  naming_marks(o, [&] {
    engine.run(positions, traded);
    w = engine.whatif(o.account, trades);
  });
  if (!common.quiet)
    spdlog::info("what-if for {}: {} trades, {} instruments revalued", o.account, trades.size(),
                 w.instruments_revalued);
  OutputSink sink(common.out);
  nlohmann::ordered_json out;
  out["account"] = o.account;
  out["model"] = w.after.model;
  out["units"] = {{"im_change", "USD"}, {"mm_change", "USD"}};  // per coin: before/after underlyings
  out["im_change"] = w.im_change;
  out["mm_change"] = w.mm_change;
  out["before"] = account_json(w.before, engine.scenarios(), m);
  out["after"] = account_json(w.after, engine.scenarios(), m);
  if (common.format == "json") {
    sink.stream() << out.dump(2) << "\n";
    return;
  }
  write_table(sink.stream(),
              whatif_table(out["account"], out["before"], out["after"], pretty_output(sink.stream(), common.format)),
              common.format);
}

}  // namespace

void add_margin_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<MarginOptions>();
  CLI::App* cmd = app.add_subcommand("margin", "Margin of accounts' positions under a methodology (EOD run)");
  add_reference_options(cmd, *o, /*positions_from_store=*/true);
  cmd->add_option("--collateral", o->collateral, "collateral.csv (account,asset,amount): adds collateral value and call");
  cmd->callback([&common, o] { run_margin(common, *o); });
}

void add_whatif_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<MarginOptions>();
  CLI::App* cmd = app.add_subcommand("whatif", "Incremental margin of proposed trades for one account");
  add_reference_options(cmd, *o, /*positions_from_store=*/true);
  cmd->add_option("--account", o->account, "The account")->required();
  cmd->add_option("--trades", o->trades, "Proposed trades: instrument,quantity")->required();
  cmd->add_flag("--new-account", o->new_account, "The account holds no position yet (else that is an error)");
  cmd->callback([&common, o] { run_whatif(common, *o); });
}

}  // namespace marginet::cli
