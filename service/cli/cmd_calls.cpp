// `marginet calls run|show` and `marginet collateral deposit|withdraw|list|movements`
// (SPEC §9, docs/clearing.md "Collateral and calls"). Each works through a running service
// (--connect ENDPOINT: the server holds the store's writer lock) or, with the service stopped,
// on the store file itself (--store FILE; `calls run` and `collateral withdraw` then also need
// the reference data and the model, as `marginet margin` does).
//
//   marginet calls run [--run-id ID] [--kind eod|intraday|on_demand] (--connect EP | --store F
//                      --instruments F --market F --marks F [--model M] [--risk-arrays F])
//   marginet calls show [RUN] (--connect EP | --store F)      RUN "" = the latest run
//   marginet collateral deposit ACCOUNT ASSET AMOUNT [--reference R] (--connect EP | --store F)
//   marginet collateral withdraw ACCOUNT ASSET AMOUNT|excess [--reference R]
//                      (--connect EP | --store F --instruments F --market F --marks F [--model M])
//   marginet collateral list [--account A] (--connect EP | --store F)
//   marginet collateral movements [--account A] --store F
//
// Tables: `calls run|show` one row per account (im, mm, collateral_value in USD; call and
// settled in the run's settlement asset; state), with the run's facts on stderr; collateral
// rows in exact decimals of each asset. A refused withdrawal or deposit exits 2 with the figures.

#include <spdlog/spdlog.h>

#include <cmath>
#include <iostream>
#include <memory>

#include "host/collateral.hpp"
#include "host/margin_engine.hpp"
#include "models/errors.hpp"
#include "models/methodology.hpp"
#include "models/money.hpp"
#include "models/reference_data.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/call_run.hpp"
#include "service/margin/client.hpp"
#include "service/margin/protocol.hpp"

namespace marginet::cli {

namespace {

using json = nlohmann::ordered_json;

struct CallsOptions {
  ClientOptions connection;
  bool connect_given = false;
  std::string store, instruments, market, marks, model = "span16", risk_arrays;
  std::string run_id, kind = "on_demand";
  std::string account, asset, amount, reference;
};

void add_target_options(CLI::App* cmd, CallsOptions& o, bool needs_reference_data) {
  cmd->add_option("--connect", o.connection.endpoint, "Through the service at this endpoint (default)")
      ->capture_default_str();
  cmd->add_option("--timeout-ms", o.connection.timeout_ms, "Reply timeout (ms)")->capture_default_str();
  cmd->add_option("--server-key", o.connection.server_key_file, "CURVE: the server's public key file");
  cmd->add_option("--client-key", o.connection.client_key_file, "CURVE: this client's key file");
  cmd->add_option("--store", o.store, "On the clearing store file itself (the service stopped)");
  if (needs_reference_data) {
    cmd->add_option("--instruments", o.instruments, "With --store: instruments.csv");
    cmd->add_option("--market", o.market, "With --store: market.csv");
    cmd->add_option("--marks", o.marks, "With --store: marks.csv");
    cmd->add_option("--model", o.model, "With --store: methodology (span16, deribit-pm, hvar, mc-es, or a JSON file)")->capture_default_str();
    cmd->add_option("--risk-arrays", o.risk_arrays, "With --store: span16 published risk arrays");
  }
}

/// The service's reply, or an input_error (exit 2) for a refusal, runtime_error (exit 1) for
/// busy/internal/timeouts.
json ask(const CallsOptions& o, json request) {
  MarginClient client(o.connection);
  json r;
  try {
    r = client.call(std::move(request));
  } catch (const client_error& e) {
    throw client_error(std::string(e.what()) + " (is `marginet serve --store` running there? with the service "
                                                     "stopped, work on the file with --store FILE)");
  }
  if (r.value("type", "") == "error") {
    const std::string code = r.value("code", "");
    std::string message = "service replied " + code + ": " + r.value("message", "");
    if (code == "internal" || code == "busy") throw std::runtime_error(message);
    throw input_error(message);
  }
  return r;
}

/// Decodes one of our own msgpack replies (the offline path prints what the service would).
json as_json(const std::string& frame) { return json::from_msgpack(frame); }

/// The reference data, model and an engine for the offline call run and withdrawal check.
struct Offline {
  std::unique_ptr<ClearingStore> store;
  ReferenceData ref;
  Methodology method;
  std::unique_ptr<MarginEngine> engine;

  Offline(const CallsOptions& o, Backend backend, bool needs_reference_data) {
    if (needs_reference_data && (o.instruments.empty() || o.market.empty() || o.marks.empty()))
      throw usage_error("with --store this needs --instruments, --market and --marks (and --model)");
    ClearingStoreOptions so;
    if (needs_reference_data) {
      ref = load_reference_data(o.instruments, o.market, o.marks);
      so.instruments = instrument_ids(ref.instruments);
      method = load_methodology(o.model);
      engine = std::make_unique<MarginEngine>(ref.instruments, ref.market, method, backend);
      if (!o.risk_arrays.empty()) engine->use_published_risk_arrays(read_risk_arrays(o.risk_arrays));
    }
    store = open_clearing_store(o.store, OpenMode::writer, std::move(so));
  }
  CallRunInputs inputs(const CallsOptions& o) { return CallRunInputs{*store, ref, o.instruments, method, *engine}; }
};

void print_run(const CommonOptions& common, const json& r) {
  if (!common.quiet) {
    std::cerr << "call run " << r.value("run_id", "") << " (" << r.value("kind", "") << ", " << r.value("at", "")
              << ", " << r.value("model", "") << "): " << r.at("rows").size() << " accounts, total call "
              << r.value("total_call", "") << " " << r.value("asset", "") << ", cycle "
              << (r.value("cycle_id", "").empty() ? std::string("none") : r.value("cycle_id", "")) << " ("
              << r.value("cycle_state", "") << ")";
    if (!r.value("outcome", "").empty()) std::cerr << ", " << r.value("outcome", "");
    std::cerr << "\n";
  }
  Table t;
  const std::string units = r.value("units", "USD"), asset = r.value("asset", "");
  t.columns = {"account", "im_" + units, "mm_" + units, "collateral_value_" + units, "call_" + asset,
               "settled_" + asset, "state", "instruction_id"};
  for (const json& row : r.at("rows"))
    t.add_row({row.at(0).get<std::string>(), row.at(1).get<double>(), row.at(2).get<double>(), row.at(3).get<double>(),
               row.at(4).get<std::string>(), row.at(5).get<std::string>(), row.at(6).get<std::string>(),
               row.at(7).get<std::string>()});
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void print_change(const CommonOptions& common, const json& r) {
  Table t;
  t.columns = {"outcome", "account", "asset", "amount", "balance", "movement_seq", "cycle_id"};
  t.add_row({r.value("outcome", ""), r.value("account", ""), r.value("asset", ""), r.value("amount", ""),
             r.value("balance", ""), r.value("movement_seq", std::int64_t{0}), r.value("cycle_id", "")});
  if (r.contains("check") && !common.quiet) {
    const json& c = r.at("check");
    std::cerr << "check: IM " << c.value("im", 0.0) << " " << c.value("units", "USD") << ", collateral value "
              << c.value("value_before", 0.0) << " -> " << c.value("value_after", 0.0) << " " << c.value("units", "USD")
              << "\n";
  }
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void print_balances(const CommonOptions& common, const json& r) {
  Table t;
  t.columns = {"account", "asset", "amount", "amount_minor", "scale"};
  for (const json& row : r.at("rows"))
    t.add_row({row.at(0).get<std::string>(), row.at(1).get<std::string>(), row.at(2).get<std::string>(),
               row.at(3).get<std::int64_t>(), row.at(4).get<std::int64_t>()});
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void require_one_target(const CallsOptions& o, const char* what) {
  if (!o.store.empty() && o.connect_given)
    throw usage_error(std::string(what) + ": give --connect or --store, not both");
}

void run_calls(const CommonOptions& common, const CallsOptions& o) {
  require_one_target(o, "calls run");
  if (o.store.empty()) {
    print_run(common, ask(o, {{"type", "calls.run"}, {"run_id", o.run_id}, {"kind", o.kind}}));
    return;
  }
  Offline off(o, resolve_backend(common), true);
  CallRunRequest rq;
  rq.run_id = o.run_id;
  rq.kind = o.kind;
  const CallRunOutcome r = run_margin_calls(off.inputs(o), rq);
  print_run(common, as_json(protocol::encode_calls_result(protocol::nil_id(), protocol::RequestType::calls_run,
                                                          call_run_text(r.run, to_string(r.outcome)))));
}

void show_calls(const CommonOptions& common, const CallsOptions& o) {
  require_one_target(o, "calls show");
  if (o.store.empty()) {
    print_run(common, ask(o, {{"type", "calls.query"}, {"run_id", o.run_id}}));
    return;
  }
  auto store = open_clearing_store(o.store, OpenMode::reader);
  const auto run = store->call_run(o.run_id);
  if (!run) throw input_error(o.store, 0, "run", o.run_id.empty() ? "no call run yet" : "no call run '" + o.run_id + "'");
  print_run(common, as_json(protocol::encode_calls_result(protocol::nil_id(), protocol::RequestType::calls_query,
                                                          call_run_text(*run, ""))));
}

int scale_of(const ClearingStore& store, const std::string& asset) {
  const auto scales = store.asset_scales();
  const auto it = scales.find(asset);
  if (it == scales.end()) throw input_error("", 0, "asset", "'" + asset + "' is not a collateral asset of " + store.path());
  return it->second;
}

void change_collateral(const CommonOptions& common, const CallsOptions& o, bool deposit) {
  const char* what = deposit ? "collateral deposit" : "collateral withdraw";
  require_one_target(o, what);
  if (o.store.empty()) {
    print_change(common, ask(o, {{"type", deposit ? "collateral.deposit" : "collateral.withdraw"},
                                 {"account", o.account}, {"asset", o.asset}, {"amount", o.amount},
                                 {"reference", o.reference}}));
    return;
  }
  Offline off(o, resolve_backend(common), !deposit);
  const int scale = scale_of(*off.store, o.asset);
  const bool excess = !deposit && o.amount == "excess";
  const std::int64_t minor = excess ? -1 : parse_money(o.amount, scale, "command line", 0, "amount");
  CollateralResult r;
  std::int64_t amount = minor;
  protocol::CollateralFigures figures;
  if (deposit) {
    r = off.store->deposit({o.account, o.asset, minor, o.reference});
  } else {
    const WithdrawalCheck c = check_withdrawal(off.inputs(o), o.account, o.asset, minor);
    figures.im = c.im;
    figures.value_before = c.value_before;
    figures.value_after = c.value_after;
    if (!c.allowed)
      throw input_error("", 0, "amount",
                        "account " + o.account + ": withdrawal refused: IM " + format_double(c.im) +
                            " USD, collateral value " + format_double(c.value_before) + " USD, after it " +
                            format_double(c.value_after) + " USD; at most " + format_money(c.excess_minor, scale) + " " +
                            o.asset + " may leave");
    amount = excess ? c.excess_minor : minor;
    const double now = unix_time_now();
    const std::string cycle_id = "withdrawal-" + o.account + "-" + (o.reference.empty() ? utc_id_stamp(now) : o.reference);
    r = off.store->withdraw({o.account, o.asset, amount, o.reference},
                            withdrawal_cycle(cycle_id, o.account, o.asset, scale, amount, std::floor(now) + 3600));
  }
  if (r.outcome != Outcome::recorded && r.outcome != Outcome::duplicate) throw input_error("", 0, "amount", r.message);
  protocol::CollateralChangeResult out = collateral_change_text(r, o.account, o.asset, amount, scale);
  if (!deposit) out.figures = &figures;
  const auto type = deposit ? protocol::RequestType::collateral_deposit : protocol::RequestType::collateral_withdraw;
  print_change(common, as_json(protocol::encode_collateral_change_result(protocol::nil_id(), type, out)));
}

void list_collateral(const CommonOptions& common, const CallsOptions& o) {
  require_one_target(o, "collateral list");
  if (o.store.empty()) {
    print_balances(common, ask(o, {{"type", "collateral.query"}, {"account", o.account}}));
    return;
  }
  auto store = open_clearing_store(o.store, OpenMode::reader);
  print_balances(common, as_json(protocol::encode_collateral_query_result(protocol::nil_id(),
                                                                         balance_rows_text(store->balances(o.account)))));
}

void list_movements(const CommonOptions& common, const CallsOptions& o) {
  if (o.store.empty()) throw usage_error("collateral movements: --store FILE is required");
  auto store = open_clearing_store(o.store, OpenMode::reader);
  const auto scales = store->asset_scales();
  Table t;
  t.columns = {"seq", "account", "asset", "amount", "kind", "reference", "recorded_at"};
  for (const Movement& m : store->movements(o.account)) {
    const auto s = scales.find(m.asset);
    t.add_row({m.seq, m.account, m.asset, s == scales.end() ? std::to_string(m.amount_minor) : format_money(m.amount_minor, s->second),
               std::string(to_string(m.kind)), m.reference, m.recorded_at});
  }
  const CollateralVerifyReport v = store->verify_collateral();
  if (!common.quiet) std::cerr << "collateral: " << v.summary() << "\n";
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
  if (!v.ok) throw input_error(o.store, 0, "collateral", v.summary());
}

}  // namespace

void add_calls_command(CLI::App& app, CommonOptions& common) {
  CLI::App* calls = app.add_subcommand("calls", "Margin call runs over the clearing store (SPEC §9)");
  calls->require_subcommand(1);
  {
    auto o = std::make_shared<CallsOptions>();
    CLI::App* run = calls->add_subcommand("run", "Margin every account, make the calls, queue their settlement cycle");
    run->add_option("--run-id", o->run_id, "The run's id (default: KIND-<UTC time>); an existing id shows that run");
    run->add_option("--kind", o->kind, "eod, intraday or on_demand")
        ->check(CLI::IsMember({"eod", "intraday", "on_demand"}))
        ->capture_default_str();
    add_target_options(run, *o, true);
    run->callback([&common, o, run] {
      o->connect_given = run->count("--connect") > 0;
      run_calls(common, *o);
    });
  }
  {
    auto o = std::make_shared<CallsOptions>();
    CLI::App* show = calls->add_subcommand("show", "A call run: each account's figures, call and settlement state");
    show->add_option("run", o->run_id, "Run id (default: the latest)");
    add_target_options(show, *o, false);
    show->callback([&common, o, show] {
      o->connect_given = show->count("--connect") > 0;
      show_calls(common, *o);
    });
  }
}

void add_collateral_command(CLI::App& app, CommonOptions& common) {
  CLI::App* col = app.add_subcommand("collateral", "Collateral balances of the clearing store (SPEC §9)");
  col->require_subcommand(1);
  for (const bool deposit : {true, false}) {
    auto o = std::make_shared<CallsOptions>();
    CLI::App* cmd = col->add_subcommand(deposit ? "deposit" : "withdraw",
                                        deposit ? "Credit an account's balance of an asset"
                                                : "Debit a balance (never below IM) and queue its pay-out");
    cmd->add_option("account", o->account, "Account")->required();
    cmd->add_option("asset", o->asset, "Asset (BTC, ETH, USD, USDC, USDT, ...)")->required();
    cmd->add_option("amount", o->amount, deposit ? "Exact decimal amount of the asset" : "Exact decimal amount, or 'excess'")
        ->required();
    cmd->add_option("--reference", o->reference, "Idempotency key: the same reference again is a duplicate");
    add_target_options(cmd, *o, !deposit);
    cmd->callback([&common, o, cmd, deposit] {
      o->connect_given = cmd->count("--connect") > 0;
      change_collateral(common, *o, deposit);
    });
  }
  {
    auto o = std::make_shared<CallsOptions>();
    CLI::App* list = col->add_subcommand("list", "Balances per account and asset");
    list->add_option("--account", o->account, "Only this account");
    add_target_options(list, *o, false);
    list->callback([&common, o, list] {
      o->connect_given = list->count("--connect") > 0;
      list_collateral(common, *o);
    });
  }
  {
    auto o = std::make_shared<CallsOptions>();
    CLI::App* mv = col->add_subcommand("movements", "Every movement of the balances (checked against them)");
    mv->add_option("--account", o->account, "Only this account");
    mv->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
    mv->callback([&common, o] { list_movements(common, *o); });
  }
}

}  // namespace marginet::cli
