// `marginet demo`: a clearing day on the real components, on loopback (service/demo/
// clearing_day.hpp): the service and the scheduler started and stopped here, members' trades,
// collateral and RFQ packages over ZeroMQ, an intraday move and call run, the end-of-day margin
// and calls, netting into one settlement cycle, a missed pay-in and the default waterfall, the
// ledger verified. Prints an aligned summary of the day and the path of its report.html.
//
// `marginet report RUN_DIR`: makes RUN_DIR/report.html again from RUN_DIR/day.json.
//
// Exit: 0 when every step of the day succeeded, 1 when one failed (the step and why are
// printed), 2 on bad usage.

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>

#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/demo/clearing_day.hpp"

namespace marginet::cli {

namespace {

void run_demo(const CommonOptions& common, demo::ClearingDayOptions o) {
  o.device = common.device;
  o.threads = common.threads;
  const auto t0 = std::chrono::steady_clock::now();
  Progress progress("clearing day", demo::kDaySteps, common.quiet);
  demo::DayProgress told;
  std::size_t ended = 0;
  told.starting = [&](std::size_t done, std::size_t, const std::string&) { progress.advance(done); };
  told.finished = [&](const demo::DayStep& s) {  // each step's outcome as it ends
    progress.advance(++ended);
    if (!s.ok)
      spdlog::error("{} failed after {:.1f} s: {}", s.name, s.seconds, s.detail);
    else if (!common.quiet)
      spdlog::info("{} ({:.1f} s): {}", s.name, s.seconds, s.detail);
  };
  const demo::ClearingDayResult r = demo::run_clearing_day(o, told);
  progress.finish();
  Table table;
  table.columns = {"clearing day", "result"};
  for (const auto& [label, text] : r.summary) table.add_row({label, text});
  if (!r.report_html.empty()) table.add_row({std::string("report"), r.report_html});
  OutputSink sink(common.out);
  write_table(sink.stream(), table, common.format);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) throw run_failed("the clearing day did not complete: a step failed (above); logs in " + o.workdir + "/logs/");
  if (!common.quiet) spdlog::info("demo done in {:.1f} s; files in {}/", secs, o.workdir);
}

}  // namespace

void add_demo_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<demo::ClearingDayOptions>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "A clearing day on the real service and scheduler: trades, collateral, a market move, calls, "
              "netting, settlement, a default, the ledger verified; a summary and report.html");
  cmd->add_option("--workdir", o->workdir, "Folder of the day's files (emptied when an earlier demo made it)")
      ->capture_default_str();
  cmd->add_option("--members", o->members, "Clearing members (3..100)")->capture_default_str();
  cmd->add_option("--model", o->model, "The methodology of the service's calls: span16, deribit-pm, hvar, mc-es")
      ->check(CLI::IsMember({"span16", "deribit-pm", "hvar", "mc-es"}))
      ->capture_default_str();
  cmd->add_option("--positions", o->positions, "Positions of the book (yesterday's and today's trades)")
      ->capture_default_str();
  cmd->add_option("--instruments", o->instruments, "Instruments (BTC and ETH)")->capture_default_str();
  cmd->add_option("--paths", o->paths, "mc-es paths of the IM comparison")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Generator seed")->capture_default_str();
  cmd->add_option("--evm-rpc", o->evm_rpc,
                  "Settle ETH and USDC on this Ethereum node (a local anvil: scripts/evm/anvil.sh start) instead of a "
                  "simulated chain");
  cmd->add_option("--evm-contracts", o->evm_contracts, "Compiled contracts for --evm-rpc (default: build/evm/contracts.json)");
  cmd->callback([&common, o] {
    if (!o->evm_rpc.empty() && o->evm_contracts.empty()) o->evm_contracts = "build/evm/contracts.json";
    run_demo(common, *o);
  });

  auto dir = std::make_shared<std::string>();
  CLI::App* report = app.add_subcommand("report", "Make RUN_DIR/report.html again from a demo run's day.json");
  report->add_option("RUN_DIR", *dir, "The demo's --workdir")->required();
  report->callback([&common, dir] {
    const std::string path = demo::make_report(*dir);
    OutputSink sink(common.out);
    sink.stream() << path << "\n";
  });
}

}  // namespace marginet::cli
