// `marginet default-fund` and `marginet default declare|list|show` (SPEC §10,
// docs/default-management.md).
//
//   marginet default-fund (--store F | --positions F) --instruments F --market F --marks F
//                         [--model M] [--config DF.json] [--record SIZING_ID]
//       stdout: one row per member (group, IM, stress exposure, its scenario, contribution);
//       stderr: the fund (art. 42(3)), Cover-2, the scenario and groups that size them, and the
//       liquidity Cover-2 per asset. --format json: all of it as one object. --record (with
//       --store) makes the contributions the fund's balances.
//   marginet default declare MEMBER [--reason TEXT] [--id ID] (--connect EP | --store F
//                         --instruments F --market F --marks F [--model M] [--config DF.json])
//       stdout: the waterfall, one row per step; stderr: the close-out and the totals.
//   marginet default list --store F          every default recorded
//   marginet default show ID --store F       one default's report (JSON as recorded)
//
// Every amount is in the fund's currency (a column suffix names it); money is exact decimals.

#include <cstdio>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "models/errors.hpp"
#include "models/methodology.hpp"
#include "models/money.hpp"
#include "models/positions.hpp"
#include "models/reference_data.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/client.hpp"
#include "service/margin/default_management.hpp"

namespace marginet::cli {

namespace {

struct DefaultOptions {
  std::string store, positions, instruments, market, marks, model = "span16", config;
  std::string record, member, reason, id;
  ClientOptions connection;
  bool connect_given = false;
};

void add_inputs(CLI::App* cmd, DefaultOptions& o, bool sizing) {
  cmd->add_option("--store", o.store, "Clearing store (SQLite file; the service stopped)");
  if (sizing) cmd->add_option("--positions", o.positions, "Or a positions file (accounts as members)");
  const char* with = sizing ? "" : " (with --store)";
  auto* i = cmd->add_option("--instruments", o.instruments, std::string("instruments.csv") + with);
  auto* m = cmd->add_option("--market", o.market, std::string("market.csv") + with);
  auto* k = cmd->add_option("--marks", o.marks, std::string("marks.csv") + with);
  if (sizing) i->required(), m->required(), k->required();
  cmd->add_option("--model", o.model, "Clearing methodology for IM and haircuts (span16, deribit-pm, hvar, mc-es, or a JSON file)")->capture_default_str();
  cmd->add_option("--config", o.config, "Default-fund configuration (JSON; default: the built-in one)");
}

DefaultFundConfig fund_config(const DefaultOptions& o) {
  return o.config.empty() ? builtin_default_fund_config() : load_default_fund_config(o.config);
}

/// A risk figure on the terminal: fixed with the currency's decimals (CSV and JSON keep them whole).
std::string fixed(double v, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

void print_sizing(const CommonOptions& common, const FundSizingRun& run, const DefaultFundConfig& fund) {
  OutputSink sink(common.out);
  if (common.format == "json") {
    sink.stream() << fund_sizing_json(run, fund) << "\n";
    return;
  }
  const FundSizing& s = run.sizing;
  const std::string c = fund.currency;
  auto scenario = [&](std::int32_t i) { return i < 0 ? std::string("-") : s.scenarios[static_cast<std::size_t>(i)]; };
  if (!common.quiet) {
    auto join = [](const std::vector<std::string>& v) {
      std::string out;
      for (const auto& x : v) out += (out.empty() ? "" : " + ") + x;
      return out.empty() ? std::string("-") : out;
    };
    std::cerr << "default fund (EMIR art. 42(3)): " << format_money(s.fund_minor, fund.scale) << " " << c
              << "  scenario '" << scenario(s.art42_scenario) << "', groups " << join(s.art42_groups) << "\n"
              << "cover-2 (art. 43(2)):          " << fixed(s.cover2, fund.scale) << " " << c << "  scenario '"
              << scenario(s.cover2_scenario) << "', groups " << join(s.cover2_groups) << "\n"
              << "contributions:                 " << format_money(s.contributions_minor, fund.scale) << " " << c
              << " from " << s.members.size() << " members in " << s.groups.size() << " groups (minimum "
              << format_money(fund.minimum_contribution_minor, fund.scale) << " " << c << ")\n";
    for (const LiquidityCover& l : run.liquidity) {
      const int d = l.asset == c ? fund.scale : 8;
      std::cerr << "liquidity cover-2 " << l.asset << ": need " << fixed(l.need, d) << " " << l.asset << " ("
                << join(l.groups) << "), resources " << fixed(l.resources, d) << " " << l.asset
                << (l.shortfall > 0 ? ", SHORT by " + fixed(l.shortfall, d) + " " + l.asset : ", covered") << "\n";
    }
    std::cerr << run.positions << " positions, " << s.scenarios.size() << " default scenarios: stress "
              << fixed(run.stress_seconds * 1e3, 1) << " ms, margin " << fixed(run.margin_seconds * 1e3, 1) << " ms\n";
  }
  Table t;
  t.columns = {"member", "group", "im_" + c, "exposure_" + c, "exposure_scenario", "contribution_" + c};
  for (const MemberContribution& m : s.members)
    t.add_row({m.member, m.group, m.im, m.exposure, scenario(m.exposure_scenario), format_money(m.contribution_minor, fund.scale)});
  write_table(sink.stream(), t, common.format);
}

void run_default_fund(const CommonOptions& common, const DefaultOptions& o) {
  if (o.store.empty() == o.positions.empty()) throw usage_error("default-fund: give --store FILE or --positions FILE");
  if (!o.record.empty() && o.store.empty()) throw usage_error("default-fund: --record needs --store");
  const Backend backend = resolve_backend(common);
  const DefaultFundConfig fund = fund_config(o);
  const ReferenceData ref = load_reference_data(o.instruments, o.market, o.marks);
  const Methodology method = load_methodology(o.model);
  FundSizingRun run;
  if (!o.store.empty()) {
    ClearingStoreOptions so;
    so.instruments = instrument_ids(ref.instruments);
    auto store = open_clearing_store(o.store, o.record.empty() ? OpenMode::reader : OpenMode::writer, so);
    run = size_fund_from_store(DefaultInputs{*store, ref, o.instruments, method, fund, backend});
    if (!o.record.empty()) {
      const Outcome r = record_fund_sizing(*store, run, fund, o.record);
      if (!common.quiet)
        std::cerr << "sizing " << o.record << ": " << to_string(r)
                  << (r == Outcome::recorded ? " (the contributions are the fund's balances now)" : " (recorded before: nothing changed)")
                  << "\n";
    }
  } else {
    run = size_fund(ref.instruments, ref.market, method, fund, read_positions(o.positions, ref.instruments), {}, backend);
  }
  print_sizing(common, run, fund);
}

/// The waterfall as printed: one row per step, amounts as exact decimals of `currency`.
Table steps_table(const std::vector<WaterfallStep>& steps, const std::string& currency, int scale) {
  Table t;
  t.columns = {"step", "layer", "member", "available_" + currency, "absorbed_" + currency, "remaining_" + currency};
  std::int64_t n = 0;
  for (const WaterfallStep& s : steps)
    t.add_row({++n, std::string(to_string(s.layer)), s.member, format_money(s.available_minor, scale),
               format_money(s.absorbed_minor, scale), format_money(s.remaining_after_minor, scale)});
  return t;
}

void print_report(const CommonOptions& common, const DefaultReport& r) {
  OutputSink sink(common.out);
  if (common.format == "json") {
    sink.stream() << default_report_json(r) << "\n";
    return;
  }
  const std::string c = r.currency;
  auto money = [&](std::int64_t minor) { return format_money(minor, r.scale); };
  if (!common.quiet) {
    if (r.outcome != Outcome::recorded) {
      std::cerr << "member " << r.member << " is in default already (" << r.default_id << ", declared " << r.declared_at
                << "): nothing changed\n";
    } else {
      std::cerr << "default " << r.default_id << ": member " << r.member << " (" << r.reason << ")\n"
                << "close-out of " << r.positions << " positions in " << r.accounts.size() << " accounts: loss "
                << fixed(r.close_out_loss, r.scale) << " " << c << " in '" << r.close_out_scenario << "' -> "
                << money(r.inputs.loss_minor) << " " << c << "; positions and collateral moved to " << r.house_account
                << "\n"
                << "covered " << money(r.waterfall.covered_minor) << " " << c << ", uncovered "
                << money(r.waterfall.uncovered_minor) << " " << c << ", margin surplus (owed to the estate) "
                << money(r.waterfall.margin_surplus_minor) << " " << c << "\n";
      for (const auto& [m, used] : r.waterfall.contribution_used)
        std::cerr << "replenish: " << m << " contribution used " << money(used) << " " << c << "\n";
      for (const auto& [m, due] : r.waterfall.assessed)
        std::cerr << "assessment: " << m << " owes " << money(due) << " " << c << "\n";
    }
  }
  write_table(sink.stream(), steps_table(r.waterfall.steps, c, r.scale), common.format);
}

/// A default.declare reply of the service, printed as the offline path prints its report.
void print_reply(const CommonOptions& common, const nlohmann::ordered_json& r) {
  OutputSink sink(common.out);
  if (common.format == "json") {
    sink.stream() << r.dump() << "\n";
    return;
  }
  const std::string c = r.value("currency", "");
  if (!common.quiet)
    std::cerr << "default " << r.value("default_id", "") << ": member " << r.value("member", "") << ", "
              << r.value("outcome", "") << " (" << r.value("reason", "") << "); loss " << r.value("loss", "") << " " << c
              << " in '" << r.value("close_out_scenario", "") << "', covered " << r.value("covered", "") << " " << c
              << ", uncovered " << r.value("uncovered", "") << " " << c << "\n";
  Table t;
  t.columns = {"step", "layer", "member", "available_" + c, "absorbed_" + c, "remaining_" + c};
  std::int64_t n = 0;
  for (const auto& row : r.at("rows"))
    t.add_row({++n, row.at(0).get<std::string>(), row.at(1).get<std::string>(), row.at(2).get<std::string>(),
               row.at(3).get<std::string>(), row.at(4).get<std::string>()});
  write_table(sink.stream(), t, common.format);
}

void run_declare(const CommonOptions& common, const DefaultOptions& o) {
  if (!o.store.empty() && o.connect_given) throw usage_error("default declare: give --connect or --store, not both");
  if (o.store.empty()) {
    MarginClient client(o.connection);
    nlohmann::ordered_json r;
    try {
      r = client.call({{"type", "default.declare"}, {"member", o.member}, {"reason", o.reason}, {"default_id", o.id}});
    } catch (const client_error& e) {
      throw client_error(std::string(e.what()) + " (is `marginet serve --store` running there? with the service "
                                                       "stopped, work on the file with --store FILE)");
    }
    if (r.value("type", "") == "error") throw input_error("service replied " + r.value("code", "") + ": " + r.value("message", ""));
    print_reply(common, r);
    return;
  }
  if (o.instruments.empty() || o.market.empty() || o.marks.empty())
    throw usage_error("default declare --store needs --instruments, --market and --marks (and --model, --config)");
  const Backend backend = resolve_backend(common);
  const DefaultFundConfig fund = fund_config(o);
  const ReferenceData ref = load_reference_data(o.instruments, o.market, o.marks);
  const Methodology method = load_methodology(o.model);
  ClearingStoreOptions so;
  so.instruments = instrument_ids(ref.instruments);
  auto store = open_clearing_store(o.store, OpenMode::writer, so);
  const DefaultReport r = declare_default(DefaultInputs{*store, ref, o.instruments, method, fund, backend},
                                          DefaultDeclaration{o.member, o.reason, o.id});
  print_report(common, r);
}

void run_list(const CommonOptions& common, const DefaultOptions& o) {
  auto store = open_clearing_store(o.store, OpenMode::reader);
  Table t;
  t.columns = {"default_id", "member", "declared_at", "loss", "currency", "covered", "uncovered", "positions_moved",
               "collateral_moved", "reason"};
  for (const DefaultSummary& d : store->defaults()) {
    std::int64_t uncovered = 0;
    for (const WaterfallStep& s : d.steps)
      if (s.layer == WaterfallLayer::uncovered) uncovered = s.absorbed_minor;
    t.add_row({d.default_id, d.member, d.declared_at, format_money(d.loss_minor, d.scale), d.currency,
               format_money(d.loss_minor - uncovered, d.scale), format_money(uncovered, d.scale), d.positions_moved,
               d.collateral_moved, d.reason});
  }
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void run_show(const CommonOptions& common, const DefaultOptions& o) {
  auto store = open_clearing_store(o.store, OpenMode::reader);
  for (const DefaultSummary& d : store->defaults()) {
    if (d.default_id != o.id && d.member != o.id) continue;
    OutputSink sink(common.out);
    if (common.format == "json") {
      sink.stream() << d.report_json << "\n";
      return;
    }
    write_table(sink.stream(), steps_table(d.steps, d.currency, d.scale), common.format);
    return;
  }
  throw input_error(o.store, 0, "default", "no default '" + o.id + "' (by id or member)");
}

}  // namespace

void add_default_fund_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<DefaultOptions>();
  CLI::App* cmd = app.add_subcommand("default-fund",
                                     "Size the default fund: stress losses per member group, EMIR art. 42(3), "
                                     "Cover-2, contributions, liquidity Cover-2 (SPEC §10)");
  add_inputs(cmd, *o, true);
  cmd->add_option("--record", o->record, "With --store: record this sizing; its contributions become the fund");
  cmd->callback([&common, o] { run_default_fund(common, *o); });
}

void add_default_command(CLI::App& app, CommonOptions& common) {
  CLI::App* cmd = app.add_subcommand("default", "Default management: declare a member in default, list, show (SPEC §10)");
  cmd->require_subcommand(1);
  {
    auto o = std::make_shared<DefaultOptions>();
    CLI::App* declare = cmd->add_subcommand(
        "declare", "Close out a member's positions under the default scenarios and run the loss down the waterfall");
    declare->add_option("member", o->member, "The member in default")->required();
    declare->add_option("--connect", o->connection.endpoint, "Through the service at this endpoint (default)")
        ->capture_default_str();
    declare->add_option("--timeout-ms", o->connection.timeout_ms, "Reply timeout (ms)")->capture_default_str();
    declare->add_option("--server-key", o->connection.server_key_file, "CURVE: the server's public key file");
    declare->add_option("--client-key", o->connection.client_key_file, "CURVE: this client's key file");
    add_inputs(declare, *o, false);
    declare->add_option("--reason", o->reason, "Why (kept with the default)");
    declare->add_option("--id", o->id, "The default's id (default: default-MEMBER-<UTC time>)");
    declare->callback([&common, o, declare] {
      o->connect_given = declare->count("--connect") > 0;
      run_declare(common, *o);
    });
  }
  {
    auto o = std::make_shared<DefaultOptions>();
    CLI::App* list = cmd->add_subcommand("list", "Every default recorded in the store");
    list->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
    list->callback([&common, o] { run_list(common, *o); });
  }
  {
    auto o = std::make_shared<DefaultOptions>();
    CLI::App* show = cmd->add_subcommand("show", "One default's waterfall (--format json: its whole report)");
    show->add_option("default", o->id, "Default id or member")->required();
    show->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
    show->callback([&common, o] { run_show(common, *o); });
  }
}

}  // namespace marginet::cli
