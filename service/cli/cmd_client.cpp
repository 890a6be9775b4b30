// `marginet client ping|status|margin|whatif|greeks|net`: talk to a running `marginet serve`.
// Reads the same CSV files as the offline commands and prints the same tables, so that
//   marginet client margin --positions P.csv        and   marginet margin ... --positions P.csv
// give identical output on the same reference data and model.
//
//   common:  --connect tcp://127.0.0.1:7400  --timeout-ms 30000
//            [--server-key SERVER.pub --client-key CLIENT.key]   (CURVE)
//   ping                                    "pong from ENDPOINT in X ms"
//   status                                  the status reply as JSON
//   margin  --positions F [--collateral F] [--priority high|normal] [--cycle-id ID]
//   whatif  --account A --trades F [--positions F]   (without --positions: the server's book)
//   greeks  [--instrument ID ...]
//   net     --trades F --assets F [--cycle-id ID]
//   submit  --trades F [--sign-key NAME.sign.key]   trade capture: one trade.submit per trade or
//                                           package of the file (service/clearing/trade_csv.hpp);
//                                           one row per submission: line, outcome, seqs or why;
//                                           exit 2 when any was refused
//   positions [--account A]                 the kept positions of a server with --store

#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>

#include "models/errors.hpp"
#include "models/money.hpp"
#include "service/cli/common.hpp"
#include "service/cli/margin_table.hpp"
#include "service/cli/table.hpp"
#include "service/clearing/trade_csv.hpp"
#include "service/margin/client.hpp"

namespace marginet::cli {

namespace {

struct ClientCliOptions {
  ClientOptions connection;
  std::string positions, trades, assets, account, priority = "normal", cycle_id, collateral, sign_key;
  std::string summary_out;  // net: the per-asset summary table
  std::vector<std::string> instruments;
};

void add_connection_options(CLI::App* cmd, ClientCliOptions& o) {
  cmd->add_option("--connect", o.connection.endpoint, "Service endpoint")->capture_default_str();
  cmd->add_option("--timeout-ms", o.connection.timeout_ms, "Reply timeout")->capture_default_str();
  cmd->add_option("--server-key", o.connection.server_key_file, "CURVE: the server's public key file");
  cmd->add_option("--client-key", o.connection.client_key_file, "CURVE: this client's key file");
}

/// Maps service failures to the CLI's exit codes: error replies about the request are bad
/// input (2), a timeout or an internal error is 1.
template <class Body>
void talking(Body&& body) {
  try {
    body();
  } catch (const service_error& e) {
    if (e.code() == "internal" || e.code() == "busy") throw std::runtime_error(std::string("service: ") + e.what());
    throw input_error(std::string("service replied ") + e.what());
  }
}

double num(const nlohmann::ordered_json& j, const char* key) { return j.at(key).get<double>(); }
std::int64_t integer(const nlohmann::ordered_json& j, const char* key) { return j.at(key).get<std::int64_t>(); }

void print_margin(const CommonOptions& common, const nlohmann::ordered_json& reply) {
  OutputSink sink(common.out);
  if (common.format == "json") {
    sink.stream() << reply.at("accounts").dump(2) << "\n";
    return;
  }
  write_table(sink.stream(), margin_table(reply.at("accounts"), pretty_output(sink.stream(), common.format)),
              common.format);
}

void print_whatif(const CommonOptions& common, const nlohmann::ordered_json& r) {
  OutputSink sink(common.out);
  if (common.format == "json") {
    nlohmann::ordered_json out;
    for (const char* k : {"account", "model", "units", "im_change", "mm_change", "before", "after"}) out[k] = r.at(k);
    sink.stream() << out.dump(2) << "\n";
    return;
  }
  write_table(sink.stream(),
              whatif_table(r.at("account"), r.at("before"), r.at("after"), pretty_output(sink.stream(), common.format)),
              common.format);
}

void print_greeks(const CommonOptions& common, const nlohmann::ordered_json& r) {
  Table table;
  for (const auto& c : r.at("columns")) table.columns.push_back(c.get<std::string>());
  for (const auto& row : r.at("rows")) {
    std::vector<Cell> cells;
    cells.reserve(row.size());
    cells.emplace_back(std::in_place_type<std::string>, row.at(0).get<std::string>());
    for (std::size_t i = 1; i < row.size(); ++i)
      cells.emplace_back(std::in_place_type<double>,
                         row.at(i).is_null() ? std::numeric_limits<double>::quiet_NaN() : row.at(i).get<double>());
    table.add_row(std::move(cells));
  }
  OutputSink sink(common.out);
  write_table(sink.stream(), table, common.format);
}

void print_net(const CommonOptions& common, const nlohmann::ordered_json& r, const std::string& summary_out) {
  OutputSink sink(common.out);
  if (common.format == "json") {
    sink.stream() << r.dump(2) << "\n";
    return;
  }
  Table nets;
  nets.columns = {"member", "asset", "net"};
  for (const auto& n : r.at("nets"))
    nets.add_row({n.at("member").get<std::string>(), n.at("asset").get<std::string>(), n.at("net").get<std::string>()});
  write_table(sink.stream(), nets, common.format);
  // The summary of `marginet net` (bilateral_gross is not computed by the service).
  Table summary;
  summary.columns = {"asset",     "scale",     "gross_deliveries", "pay_ins",         "pay_outs",
                     "payers",    "receivers", "netting_efficiency", "bilateral_gross", "net_minimal",
                     "excess"};
  for (const auto& a : r.at("assets")) {
    const int sc = static_cast<int>(integer(a, "scale"));
    const std::int64_t gross = integer(a, "gross_deliveries_minor"), ins = integer(a, "pay_ins_minor");
    summary.add_row({a.at("asset").get<std::string>(), static_cast<std::int64_t>(sc), format_money(gross, sc),
                     format_money(ins, sc), format_money(integer(a, "pay_outs_minor"), sc), integer(a, "payers"),
                     integer(a, "receivers"), num(a, "efficiency"), std::string(), format_money(ins, sc),
                     format_money(gross - ins, sc)});
  }
  // One table per stream, as `marginet net`: the summary to its own file.
  if (!summary_out.empty()) {
    std::ofstream f(summary_out);
    if (!f) throw input_error(summary_out, 0, "", "cannot write");
    write_csv(f, summary);
  }
  if (!common.quiet) std::cerr << "settlement cycle " << r.at("cycle_id").get<std::string>() << ": "
                               << r.at("instructions").get<std::int64_t>() << " instructions\n";
}

}  // namespace

void add_client_command(CLI::App& app, CommonOptions& common) {
  CLI::App* client = app.add_subcommand("client", "Talk to a running margin service");
  client->require_subcommand(1);
  auto o = std::make_shared<ClientCliOptions>();

  CLI::App* ping = client->add_subcommand("ping", "Round trip to the service");
  add_connection_options(ping, *o);
  ping->callback([o] {
    MarginClient c(o->connection);
    const auto t0 = std::chrono::steady_clock::now();
    talking([&] { c.ping(); });
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "pong from " << o->connection.endpoint << " in " << format_double(ms) << " ms\n";
  });

  CLI::App* status = client->add_subcommand("status", "Service status (JSON)");
  add_connection_options(status, *o);
  status->callback([&common, o] {
    MarginClient c(o->connection);
    nlohmann::ordered_json r;
    talking([&] { r = c.status(); });
    OutputSink sink(common.out);
    sink.stream() << r.dump(2) << "\n";
  });

  CLI::App* margin = client->add_subcommand("margin", "Margin of the portfolios in a positions file");
  add_connection_options(margin, *o);
  margin->add_option("--positions", o->positions, "positions.csv (account,instrument,quantity)")->required();
  margin->add_option("--priority", o->priority, "high (intraday) or normal (end of day)")
      ->check(CLI::IsMember({"high", "normal"}))->capture_default_str();
  margin->add_option("--cycle-id", o->cycle_id, "Settlement cycle id of the margin calls pushed to the scheduler");
  margin->add_option("--collateral", o->collateral, "collateral.csv (account,asset,amount): collateral value and call");
  margin->callback([&common, o] {
    const auto positions = read_inline_positions(o->positions);
    std::vector<protocol::InlineCollateral> collateral;
    if (!o->collateral.empty()) collateral = read_inline_collateral(o->collateral);
    MarginClient c(o->connection);
    nlohmann::ordered_json r;
    talking([&] { r = c.margin(positions, o->priority, o->cycle_id, collateral); });
    print_margin(common, r);
  });

  CLI::App* whatif = client->add_subcommand("whatif", "Incremental margin of proposed trades for one account");
  add_connection_options(whatif, *o);
  whatif->add_option("--account", o->account, "The account")->required();
  whatif->add_option("--trades", o->trades, "Proposed trades: instrument,quantity")->required();
  whatif->add_option("--positions", o->positions, "The account's book (positions.csv; other accounts ignored); "
                                                  "default: the server's book");
  whatif->callback([&common, o] {
    const auto trades = read_inline_trades(o->trades, o->account);
    std::vector<protocol::InlinePosition> book;
    if (!o->positions.empty())
      for (auto& p : read_inline_positions(o->positions))
        if (p.account == o->account) book.push_back(std::move(p));
    MarginClient c(o->connection);
    nlohmann::ordered_json r;
    talking([&] { r = c.whatif(o->account, trades, o->positions.empty() ? nullptr : &book); });
    print_whatif(common, r);
  });

  CLI::App* greeks = client->add_subcommand("greeks", "Price and greeks of the server's instruments");
  add_connection_options(greeks, *o);
  greeks->add_option("--instrument", o->instruments, "Only these instruments (repeatable)");
  greeks->callback([&common, o] {
    MarginClient c(o->connection);
    nlohmann::ordered_json r;
    talking([&] { r = c.greeks(o->instruments); });
    print_greeks(common, r);
  });

  CLI::App* net = client->add_subcommand("net", "Multilateral netting of a trades file");
  add_connection_options(net, *o);
  net->add_option("--trades", o->trades, "trades.csv")->required();
  net->add_option("--assets", o->assets, "assets.csv")->required();
  net->add_option("--cycle-id", o->cycle_id, "Settlement cycle id (default: derived from the trades)");
  net->add_option("--summary", o->summary_out, "CSV: write the per-asset summary table to FILE");
  net->callback([&common, o] {
    MarginClient c(o->connection);
    nlohmann::ordered_json r;
    talking([&] { r = c.net(o->trades, o->assets, o->cycle_id); });
    print_net(common, r, o->summary_out);
  });

  CLI::App* submit = client->add_subcommand("submit", "Trade capture: submit a trades file (a server with --store)");
  add_connection_options(submit, *o);
  submit->add_option("--trades", o->trades, "source,trade_id,account,instrument,quantity,price,time[,side][,package_id]")
      ->required();
  submit->add_option("--sign-key", o->sign_key, "Sign every leg with this Ed25519 key file (marginet members keygen)");
  submit->callback([&common, o] {
    std::vector<std::vector<long>> lines;
    const std::vector<Submission> subs = read_trade_submissions_csv(o->trades, &lines);
    const std::string key = o->sign_key.empty() ? std::string() : read_signing_key_file(o->sign_key);
    MarginClient c(o->connection);
    Table table;
    table.columns = {"line", "trade_id", "outcome", "journal_seqs", "message"};
    std::size_t refused = 0;
    for (std::size_t i = 0; i < subs.size(); ++i) {
      const Submission& s = subs[i];
      const std::string package = s.legs.size() > 1 || !s.legs[0].package_id.empty() ? s.legs[0].package_id : "";
      nlohmann::ordered_json r;
      try {
        r = c.submit_trades(s.legs, package, key);
      } catch (const input_error& e) {
        throw input_error(o->trades, lines[i][0], e.field(), e.what());
      }
      std::string outcome, seqs, message;
      long line = lines[i][0];
      if (r.at("type") == "error") {
        ++refused;
        outcome = r.at("code").get<std::string>();
        message = r.at("message").get<std::string>();
        if (r.contains("leg")) line = lines[i].at(r.at("leg").get<std::size_t>());
      } else {
        outcome = r.at("outcome").get<std::string>();
        for (const auto& l : r.at("legs")) seqs += (seqs.empty() ? "" : " ") + std::to_string(l.at("journal_seq").get<std::int64_t>());
      }
      table.add_row({static_cast<std::int64_t>(line), package.empty() ? s.legs[0].trade_id : package, outcome, seqs, message});
    }
    OutputSink sink(common.out);
    write_table(sink.stream(), table, common.format);
    if (refused) throw input_error(o->trades, 0, "", std::to_string(refused) + " of " + std::to_string(subs.size()) +
                                                      " submissions refused (see the table)");
  });

  CLI::App* positions = client->add_subcommand("positions", "Kept positions of a server with a clearing store");
  add_connection_options(positions, *o);
  positions->add_option("--account", o->account, "Only this account");
  positions->callback([&common, o] {
    MarginClient c(o->connection);
    nlohmann::ordered_json r;
    talking([&] { r = c.positions(o->account); });
    Table table;
    table.columns = {"account", "instrument", "quantity"};
    for (const auto& row : r.at("rows"))
      table.add_row({row.at(0).get<std::string>(), row.at(1).get<std::string>(), row.at(2).get<std::string>()});
    OutputSink sink(common.out);
    write_table(sink.stream(), table, common.format);
  });
}

}  // namespace marginet::cli
