// `marginet contagion`: clearing payments, defaults and default waves across a network of CCPs,
// members and other creditors (SPEC §11; docs/contagion.md).
//
//   marginet contagion (--network net.json | --from-store F --instruments F --market F --marks F
//                      [--model M] [--config DF.json] [--scenario NAME]) [--network-out F]
//                      [--shock shock.json] [--alpha A --beta B]
//                      [--algorithm picard|fictitious-default] [--max-iterations N]
//                      [--device] [--format csv|json] [--out F] [--quiet]
//     CSV: node,payment,total_liability,shortfall,equity,defaulted,wave — one row per node in file
//          order; amounts in the network's currency (its "currency", default USD), shortest
//          round-trip decimals; defaulted true|false; wave 0 = solvent.
//     JSON: {"units", "algorithm", "alpha", "beta", "summary": {...}, "nodes": [...]} — each node
//          also with inflow, margin_received and margin_posted.
// A summary line goes to stderr unless --quiet; a disagreement between the two algorithms or a
// run that did not converge is a warning even with --quiet.

#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include <fstream>

#include "host/contagion_engine.hpp"
#include "models/methodology.hpp"
#include "models/reference_data.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/default_management.hpp"
#include "models/contagion.hpp"
#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"

namespace marginet::cli {

namespace {

struct ContagionCliOptions {
  std::string network;
  std::string store, instruments, market, marks, model = "span16", config, scenario, network_out;
  std::string shock;
  double alpha = 1.0;
  double beta = 1.0;
  std::string algorithm = "picard";
  std::int64_t max_iterations = ClearingParams{}.max_iterations;
};

nlohmann::ordered_json summary_json(const ContagionRun& run) {
  nlohmann::ordered_json j;
  j["nodes"] = run.system.nodes;
  j["links"] = run.system.links();
  j["defaulted"] = run.nodes.defaulted_count;
  j["waves"] = run.nodes.waves;
  j["total_shortfall"] = run.nodes.total_shortfall;
  j["picard_iterations"] = run.picard.iterations;
  j["picard_converged"] = run.picard.converged;
  j["fictitious_default_iterations"] = run.fictitious_default.sweeps;
  j["fictitious_default_converged"] = run.fictitious_default.converged;
  j["tolerance"] = run.tolerance;
  j["max_difference"] = run.max_difference;
  j["default_mismatches"] = run.default_mismatches;
  j["algorithms_agree"] = run.agree;
  return j;
}

void run_contagion(const CommonOptions& common, const ContagionCliOptions& o) {
  ContagionOptions options;
  options.params.alpha = o.alpha;
  options.params.beta = o.beta;
  options.params.max_iterations = o.max_iterations;
  options.algorithm = parse_contagion_algorithm(o.algorithm);
  check_clearing_params(options.params);  // before reading anything: a usage error is the first to report
  options.backend = resolve_backend(common);

  if (o.network.empty() == o.store.empty()) throw usage_error("contagion: give --network FILE or --from-store FILE");
  Network network;
  if (!o.store.empty()) {
    if (o.instruments.empty() || o.market.empty() || o.marks.empty())
      throw usage_error("contagion --from-store needs --instruments, --market and --marks (and --model, --config)");
    const ReferenceData ref = load_reference_data(o.instruments, o.market, o.marks);
    const Methodology method = load_methodology(o.model);
    const DefaultFundConfig fund = o.config.empty() ? builtin_default_fund_config() : load_default_fund_config(o.config);
    auto store = open_clearing_store(o.store, OpenMode::reader);
    StoreNetwork built = store_network(DefaultInputs{*store, ref, o.instruments, method, fund, options.backend}, o.scenario);
    if (!common.quiet)
      spdlog::info("network of {}: CCP and {} members under '{}': losses {} {}, gains {} {}", o.store,
                   built.network.nodes() - 1, built.scenario, format_double(built.losses), fund.currency,
                   format_double(built.gains), fund.currency);
    network = std::move(built.network);
  } else {
    network = read_network_json(o.network);
  }
  if (!o.shock.empty()) apply_shock(network, read_shock_json(o.shock));
  if (!o.network_out.empty()) {
    std::ofstream out(o.network_out);
    out << network_json(network) << "\n";
    if (!out) throw input_error(o.network_out, 0, "", "cannot write the network");
  }
  const ContagionRun run = clear_network(network, options);
  const NodeResults& r = run.nodes;

  if (!common.quiet)
    spdlog::info("contagion: {} nodes, {} links; picard {} iterations ({:.3f} s), fictitious default {} waves, "
                 "{} iterations ({:.3f} s); {} defaulted, total shortfall {} {}; algorithms agree: {} "
                 "(max |dp| {:g})",
                 run.system.nodes, run.system.links(), run.picard.iterations, run.picard_s,
                 run.fictitious_default.waves, run.fictitious_default.sweeps, run.fictitious_default_s,
                 r.defaulted_count, format_double(r.total_shortfall), network.currency, run.agree ? "yes" : "no",
                 run.max_difference);
  if (!run.picard.converged || !run.fictitious_default.converged)
    spdlog::warn("contagion: not converged within {} iterations (picard last |dp| {:g}, tolerance {:g}); "
                 "raise --max-iterations",
                 o.max_iterations, run.picard.last_change, run.tolerance);
  else if (!run.agree)
    spdlog::warn("contagion: picard and the fictitious default algorithm disagree (max |dp| {:g}, {} nodes "
                 "defaulted under one only)",
                 run.max_difference, run.default_mismatches);

  OutputSink sink(common.out);
  const auto n = static_cast<std::size_t>(run.system.nodes);
  if (common.format == "json") {
    nlohmann::ordered_json j;
    j["units"] = network.currency;
    j["algorithm"] = contagion_algorithm_name(options.algorithm);
    j["alpha"] = options.params.alpha;
    j["beta"] = options.params.beta;
    j["summary"] = summary_json(run);
    auto& nodes = j["nodes"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < n; ++i) {
      nlohmann::ordered_json x;
      x["node"] = network.ids[i];
      x["payment"] = r.payment[i];
      x["total_liability"] = r.total_liability[i];
      x["shortfall"] = r.shortfall[i];
      x["equity"] = r.equity[i];
      x["defaulted"] = r.defaulted[i] != 0;
      x["wave"] = r.wave[i];
      x["inflow"] = r.inflow[i];
      x["margin_received"] = r.margin_received[i];
      x["margin_posted"] = r.margin_posted[i];
      nodes.push_back(std::move(x));
    }
    sink.stream() << j.dump(2) << "\n";
    return;
  }
  Table table;
  const std::string& c = network.currency;  // every amount is in the network's one currency
  table.columns = {"node", "payment_" + c, "total_liability_" + c, "shortfall_" + c, "equity_" + c, "defaulted", "wave"};
  for (std::size_t i = 0; i < n; ++i)
    table.add_row({network.ids[i], r.payment[i], r.total_liability[i], r.shortfall[i], r.equity[i],
                   std::string(r.defaulted[i] ? "true" : "false"), static_cast<std::int64_t>(r.wave[i])});
  write_table(sink.stream(), table, common.format);
}

}  // namespace

void add_contagion_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<ContagionCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "contagion",
      "Clearing payments, defaults and default waves across a network of CCPs, members and creditors "
      "(Eisenberg-Noe / Rogers-Veraart). Amounts in the network's currency (its \"currency\", default USD)");
  cmd->add_option("--network", o->network,
                  "Network JSON: {\"currency\", \"nodes\": [{id, external_assets}], "
                  "\"liabilities\": [{from, to, amount, margin?}]}");
  cmd->add_option("--from-store", o->store,
                  "Or build the network from a clearing store: the CCP and its members under a default scenario");
  cmd->add_option("--instruments", o->instruments, "With --from-store: instruments.csv");
  cmd->add_option("--market", o->market, "With --from-store: market.csv");
  cmd->add_option("--marks", o->marks, "With --from-store: marks.csv");
  cmd->add_option("--model", o->model, "With --from-store: methodology of the collateral haircuts")->capture_default_str();
  cmd->add_option("--config", o->config, "With --from-store: default-fund config (its scenarios; default built-in)");
  cmd->add_option("--scenario", o->scenario, "With --from-store: the default scenario (default: the largest total loss)");
  cmd->add_option("--network-out", o->network_out, "Write the network cleared (after --shock) as network JSON");
  cmd->add_option("--shock", o->shock,
                  "Shock JSON on external assets: {\"scale\", \"scale_nodes\": {id: factor}, "
                  "\"external_assets\": {id: value}}");
  cmd->add_option("--alpha", o->alpha, "Recovery rate on a defaulted node's external assets, in (0, 1]")
      ->capture_default_str();
  cmd->add_option("--beta", o->beta, "Recovery rate on a defaulted node's claims on other nodes, in (0, 1]")
      ->capture_default_str();
  cmd->add_option("--algorithm", o->algorithm,
                  "Whose payments are reported: picard or fictitious-default (both run; waves always "
                  "come from the fictitious default algorithm)")
      ->check(CLI::IsMember({"picard", "fictitious-default"}))
      ->capture_default_str();
  cmd->add_option("--max-iterations", o->max_iterations, "Iterations per algorithm (per round for fictitious-default)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->callback([&common, o] { run_contagion(common, *o); });
}

}  // namespace marginet::cli
