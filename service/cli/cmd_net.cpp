// `marginet net`: multilateral netting of trades into per-member, per-asset obligations
// (SPEC §6). Output (docs/netting.md):
//   csv  — one table per stream: stdout (or --out) the `member,asset,net` table (positive =
//          receives); the per-asset summary to --summary FILE (and a line per asset on stderr);
//          the transfer plan (--plan) to --plan-out FILE, the bilateral view (--bilateral) to
//          --bilateral-out FILE.
//   json — one object {"nets": [...], "assets": [...], "plan": [...], "bilateral": [...]}
//          ("plan" and "bilateral" only when asked).
// Amounts are exact decimal text in the asset's scale (JSON adds the minor units as integers).
// --cycle-out FILE writes the settlement cycle (models/settlement_cycle.hpp) for the scheduler:
// JSON (the scheduler's file form), or one CSV row per instruction when FILE ends in .csv.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "host/backend.hpp"
#include "host/netting_engine.hpp"
#include "models/asset.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"
#include "models/settlement_cycle.hpp"
#include "models/trade.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"

namespace marginet::cli {

namespace {

struct NetOptions {
  std::string summary_out, plan_out, bilateral_out;  // CSV: the other tables, one per file
  std::string trades;
  std::string assets;
  std::string collateral_calls;
  std::string cycle_id;
  std::string cycle_out;
  std::string deadline;
  std::string plan;  // "", "hub" or "p2p"
  std::string algorithm = "dense";
  bool bilateral = false;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// FNV-1a 64: the default cycle id is derived from the inputs, so a re-run of the same inputs
/// gives the same instruction ids (the scheduler treats the redelivery as a no-op).
std::uint64_t fnv1a(std::string_view text, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string member_or_ccp(const TradeSet& trades, std::int32_t id) {
  return id == kCcp ? std::string("CCP") : trades.members().name(id);
}

void run_net(const CommonOptions& common, const NetOptions& opts) {
  if (!opts.plan.empty() && opts.plan != "hub" && opts.plan != "p2p")
    throw usage_error("--plan must be hub or p2p");
  if (common.format != "json" && !opts.plan.empty() && opts.plan_out.empty())
    throw usage_error("net --plan: give --plan-out FILE for the plan table (CSV: one table per stream), or --format json");
  if (common.format != "json" && opts.bilateral && opts.bilateral_out.empty())
    throw usage_error("net --bilateral: give --bilateral-out FILE (CSV: one table per stream), or --format json");
  NettingOptions netting;
  netting.backend = resolve_backend(common);
  netting.algorithm = opts.algorithm == "sort_reduce" ? NettingAlgorithm::sort_reduce : NettingAlgorithm::dense;
  netting.bilateral = opts.bilateral;

  auto t0 = Clock::now();
  const AssetTable assets = read_assets_csv(opts.assets);
  const std::string text = read_file_text(opts.trades);
  TradeParseOptions parse;
  parse.threads = static_cast<unsigned>(cpu_threads());  // --threads (all cores by default)
  const TradeSet trades = parse_trades_csv(text, opts.trades, assets, parse);
  std::vector<MarginCall> calls;
  if (!opts.collateral_calls.empty()) calls = read_margin_calls_csv(opts.collateral_calls, assets);
  const double parse_s = seconds_since(t0);

  t0 = Clock::now();
  const NettingResult result = net_trades(trades, netting);
  const double net_s = seconds_since(t0);
  if (!common.quiet)
    spdlog::info("netted {} trades, {} members, {} assets: parse {:.3f} s, netting {:.3f} s ({}), conservation checked",
                 trades.size(), trades.members().size(), assets.size(), parse_s, net_s,
                 netting_algorithm_name(netting.algorithm));

  std::vector<Transfer> plan;
  if (opts.plan == "hub") plan = hub_plan(trades, result);
  if (opts.plan == "p2p") plan = p2p_plan(trades, result);

  if (!opts.cycle_out.empty()) {
    std::string cycle_id = opts.cycle_id;
    if (cycle_id.empty()) {
      std::uint64_t h = fnv1a(text);
      for (const auto& c : calls) h = fnv1a(c.account + "," + c.asset + "," + std::to_string(c.amount) + "\n", h);
      char buf[32];
      std::snprintf(buf, sizeof buf, "net-%016llx", static_cast<unsigned long long>(h));
      cycle_id = buf;
    }
    double deadline = 0;
    if (!opts.deadline.empty()) {
      const auto t = parse_iso8601_utc(opts.deadline);
      if (!t) throw usage_error("--deadline must be an ISO 8601 UTC time (YYYY-MM-DDTHH:MM:SSZ)");
      deadline = *t;
    } else {
      deadline = static_cast<double>(std::time(nullptr) + 3600);  // one hour from now
    }
    const SettlementCycle cycle = build_settlement_cycle(trades, result, calls, cycle_id, deadline);
    std::ofstream out(opts.cycle_out);
    if (!out) throw input_error(opts.cycle_out, 0, "", "cannot open for writing");
    const bool csv = opts.cycle_out.size() > 4 && opts.cycle_out.compare(opts.cycle_out.size() - 4, 4, ".csv") == 0;
    if (csv)
      write_cycle_csv(out, cycle);
    else
      write_cycle_json(out, cycle);
    if (!out) throw input_error(opts.cycle_out, 0, "", "write failed");
    if (!common.quiet)
      spdlog::info("settlement cycle {}: {} instructions written to {}", cycle.cycle_id,
                   cycle.instructions.size(), opts.cycle_out);
  }

  // Nets: ordered by member name, then asset (file order); zero nets left out.
  std::vector<std::int32_t> order(trades.members().size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int32_t>(i);
  std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return trades.members().name(a) < trades.members().name(b);
  });
  auto scale_of = [&](std::int32_t a) { return assets[a].scale; };

  OutputSink sink(common.out);
  std::ostream& out = sink.stream();
  if (common.format == "json") {
    nlohmann::ordered_json j;
    j["nets"] = nlohmann::ordered_json::array();
    for (std::int32_t m : order)
      for (std::int32_t a = 0; a < result.assets; ++a) {
        const std::int64_t n = result.net_of(m, a);
        if (n == 0) continue;
        j["nets"].push_back({{"member", trades.members().name(m)},
                             {"asset", assets[a].name},
                             {"net", format_money(n, scale_of(a))},
                             {"net_minor", n}});
      }
    j["assets"] = nlohmann::ordered_json::array();
    for (const AssetNetting& s : result.by_asset) {
      const int sc = scale_of(s.asset);
      nlohmann::ordered_json o;
      o["asset"] = assets[s.asset].name;
      o["scale"] = sc;
      o["gross_deliveries"] = format_money(s.gross_deliveries, sc);
      o["pay_ins"] = format_money(s.pay_ins, sc);
      o["pay_outs"] = format_money(s.pay_outs, sc);
      o["payers"] = s.payers;
      o["receivers"] = s.receivers;
      o["netting_efficiency"] = s.efficiency;
      o["bilateral_gross"] = s.bilateral_gross < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(format_money(s.bilateral_gross, sc));
      o["net_minimal"] = format_money(s.net_minimal, sc);
      o["excess"] = format_money(s.excess, sc);
      o["gross_deliveries_minor"] = s.gross_deliveries;
      o["pay_ins_minor"] = s.pay_ins;
      o["pay_outs_minor"] = s.pay_outs;
      j["assets"].push_back(std::move(o));
    }
    if (!opts.plan.empty()) {
      j["plan"] = nlohmann::ordered_json::array();
      for (const Transfer& t : plan)
        j["plan"].push_back({{"asset", assets[t.asset].name},
                             {"from", member_or_ccp(trades, t.from)},
                             {"to", member_or_ccp(trades, t.to)},
                             {"amount", format_money(t.amount, scale_of(t.asset))},
                             {"amount_minor", t.amount}});
    }
    if (opts.bilateral) {
      j["bilateral"] = nlohmann::ordered_json::array();
      for (const auto& b : result.bilateral)
        j["bilateral"].push_back({{"member_a", trades.members().name(b.member_a)},
                                  {"member_b", trades.members().name(b.member_b)},
                                  {"asset", assets[b.asset].name},
                                  {"net", format_money(b.net, scale_of(b.asset))},
                                  {"net_minor", b.net}});
    }
    out << j.dump(2) << "\n";
    return;
  }

  Table nets;
  nets.columns = {"member", "asset", "net"};
  for (std::int32_t m : order)
    for (std::int32_t a = 0; a < result.assets; ++a) {
      const std::int64_t n = result.net_of(m, a);
      if (n != 0) nets.add_row({trades.members().name(m), assets[a].name, format_money(n, scale_of(a))});
    }
  write_table(out, nets, common.format);

  // One table per stream: the per-asset summary, the plan and the bilateral view go to their own
  // files; on stderr a line per asset says what netting did.
  if (!common.quiet)
    for (const AssetNetting& s : result.by_asset) {
      const int sc = scale_of(s.asset);
      std::fprintf(stderr, "%s: gross %s, pay-ins %s, pay-outs %s %s; members paying %d, receiving %d; netting efficiency %.2f %%\n",
                   assets[s.asset].name.c_str(), format_money(s.gross_deliveries, sc).c_str(),
                   format_money(s.pay_ins, sc).c_str(), format_money(s.pay_outs, sc).c_str(), assets[s.asset].name.c_str(),
                   s.payers, s.receivers, 100.0 * s.efficiency);
    }
  auto file = [](const std::string& path) {
    auto f = std::make_unique<std::ofstream>(path);
    if (!*f) throw input_error(path, 0, "", "cannot write");
    return f;
  };

  Table summary;
  summary.columns = {"asset",     "scale",     "gross_deliveries", "pay_ins",         "pay_outs",
                     "payers",    "receivers", "netting_efficiency", "bilateral_gross", "net_minimal",
                     "excess"};
  for (const AssetNetting& s : result.by_asset) {
    const int sc = scale_of(s.asset);
    summary.add_row({assets[s.asset].name, static_cast<std::int64_t>(sc), format_money(s.gross_deliveries, sc),
                     format_money(s.pay_ins, sc), format_money(s.pay_outs, sc),
                     static_cast<std::int64_t>(s.payers), static_cast<std::int64_t>(s.receivers), s.efficiency,
                     s.bilateral_gross < 0 ? std::string() : format_money(s.bilateral_gross, sc),
                     format_money(s.net_minimal, sc), format_money(s.excess, sc)});
  }
  if (!opts.summary_out.empty()) write_csv(*file(opts.summary_out), summary);

  if (!opts.plan.empty()) {
    Table t;
    t.columns = {"asset", "from", "to", "amount"};
    for (const Transfer& x : plan)
      t.add_row({assets[x.asset].name, member_or_ccp(trades, x.from), member_or_ccp(trades, x.to),
                 format_money(x.amount, scale_of(x.asset))});
    write_csv(*file(opts.plan_out), t);
  }
  if (opts.bilateral) {
    Table t;
    t.columns = {"member_a", "member_b", "asset", "net"};
    for (const auto& b : result.bilateral)
      t.add_row({trades.members().name(b.member_a), trades.members().name(b.member_b), assets[b.asset].name,
                 format_money(b.net, scale_of(b.asset))});
    write_csv(*file(opts.bilateral_out), t);
  }
}

}  // namespace

void add_net_command(CLI::App& app, CommonOptions& common) {
  auto opts = std::make_shared<NetOptions>();
  CLI::App* cmd = app.add_subcommand("net", "Multilateral netting of trades into per-member, per-asset obligations");
  cmd->add_option("--trades", opts->trades, "trades.csv: trade_id,buyer,seller,base_asset,quote_asset,quantity,price")
      ->required();
  cmd->add_option("--assets", opts->assets, "assets.csv: asset,scale")->required();
  cmd->add_option("--collateral-calls", opts->collateral_calls,
                  "Margin calls (account,asset,amount) joining the cycle as pay-ins");
  cmd->add_option("--cycle-id", opts->cycle_id, "Settlement cycle id (default: derived from the inputs)");
  cmd->add_option("--cycle-out", opts->cycle_out, "Write the settlement cycle to FILE (JSON; CSV when FILE ends in .csv)");
  cmd->add_option("--deadline", opts->deadline, "Cycle deadline, ISO 8601 UTC (default: one hour from now)");
  cmd->add_option("--plan", opts->plan, "Also print a transfer plan: hub (via the CCP) or p2p (no hub, <= n-1 per asset)")
      ->check(CLI::IsMember({"hub", "p2p"}));
  cmd->add_option("--algorithm", opts->algorithm, "Netting kernel: dense or sort_reduce")
      ->check(CLI::IsMember({"dense", "sort_reduce"}))
      ->capture_default_str();
  cmd->add_flag("--bilateral", opts->bilateral, "Also compute and print the bilateral view per member pair");
  cmd->add_option("--summary", opts->summary_out, "CSV: write the per-asset summary table to FILE");
  cmd->add_option("--plan-out", opts->plan_out, "CSV: write the --plan table to FILE");
  cmd->add_option("--bilateral-out", opts->bilateral_out, "CSV: write the --bilateral table to FILE");
  cmd->callback([&common, opts] { run_net(common, *opts); });
}

}  // namespace marginet::cli
