// `marginet serve`: the ZeroMQ margin service (SPEC §7; docs/protocol.md).
//
//   marginet serve --bind tcp://127.0.0.1:7400 --instruments F --market F --marks F
//                  [--positions F | --store FILE.sqlite [--collateral F]] [--model span16|deribit-pm|hvar|mc-es|FILE] [--risk-arrays F]
//                  [--returns F] [--stress-returns F] [--paths N] [--seed N]
//                  [--scheduler tcp://HOST:PORT [--call-deadline-s S]] [--eod-time HH:MM]
//                  [--call-times HH:MM,...] [--batch-window-us N] [--max-batch N] [--no-whatif-fast-lane]
//                  [--queue-capacity N] [--max-frame-bytes N]
//                  [--curve-key NAME.key [--curve-allow FILE] [--curve-domain D]] [--device ...]
//
// Prints `marginet serve: listening on ENDPOINT` on stdout once bound (a `*` port resolved), so
// that scripts and tests can bind `tcp://127.0.0.1:*` and read the port. SIGINT/SIGTERM shut
// it down gracefully.

#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "service/cli/common.hpp"
#include "service/margin/server.hpp"

namespace marginet::cli {

void add_serve_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<ServerOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "The ZeroMQ margin service (ROUTER; msgpack protocol)");
  cmd->add_option("--bind", o->bind, "ZeroMQ endpoint to bind (tcp://127.0.0.1:* picks a free port)")->capture_default_str();
  cmd->add_option("--instruments", o->instruments, "instruments.csv")->required();
  cmd->add_option("--market", o->market, "market.csv")->required();
  cmd->add_option("--marks", o->marks, "marks.csv")->required();
  cmd->add_option("--positions", o->positions, "positions.csv: the book margined at start, the base of what-if");
  cmd->add_option("--store", o->store,
                  "Clearing store (SQLite, created when absent): trade capture; its positions are the book");
  cmd->add_option("--collateral", o->collateral, "collateral.csv: collateral of the pre-trade check of RFQ packages");
  cmd->add_option("--model", o->model, "Methodology: span16, deribit-pm, hvar (needs --returns), mc-es, or a JSON file (examples/models/)")->capture_default_str();
  cmd->add_option("--risk-arrays", o->risk_arrays, "span16 only: published risk arrays");
  cmd->add_option("--returns", o->returns, "hvar: daily returns (date,underlying,return[,vol_return])");
  cmd->add_option("--stress-returns", o->stress_returns, "hvar: stressed-period returns (a floor)");
  cmd->add_option("--paths", o->paths, "mc-es: number of paths");
  cmd->add_option("--seed", o->seed, "mc-es: random seed");
  cmd->add_option("--scheduler", o->scheduler,
                  "The scheduler's ROUTER (`scheduler --bind`): the store's outbox of calls, withdrawals and net "
                  "cycles is handed to it exactly once (needs --store)");
  cmd->add_option("--scheduler-key", o->scheduler_key_file,
                  "CURVE to the scheduler: its public key file (NAME.pub); needs --scheduler-client-key");
  cmd->add_option("--scheduler-client-key", o->scheduler_client_key_file,
                  "CURVE to the scheduler: this service's secret key file (NAME.key), listed in the scheduler's "
                  "--producers with the right to draw (withdrawals)");
  cmd->add_option("--default-fund", o->default_fund,
                  "Default-fund config (JSON) for members the scheduler hands over (default: built-in)");
  cmd->add_option("--call-deadline-s", o->call_deadline_s, "Deadline of call and withdrawal cycles (seconds from now)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--eod-time", o->eod_time, "End-of-day call run at this UTC time (HH:MM) each day (needs --store)");
  cmd->add_option("--call-times", o->call_times, "Intraday call runs at these UTC times (HH:MM, comma-separated)")
      ->delimiter(',');
  cmd->add_flag("!--no-whatif-fast-lane", o->whatif_fast_lane,
                "Queue every what-if for the compute thread (default: a what-if on the cached rows is answered on "
                "the socket thread when the compute thread is idle and nothing is queued)");
  cmd->add_option("--batch-window-us", o->batch_window_us, "How long a margin batch waits for more requests (µs)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--max-batch", o->max_batch, "Margin requests per engine pass (1 = batching off)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--queue-capacity", o->queue_capacity, "Queued requests per priority before `busy`")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-frame-bytes", o->limits.max_frame_bytes, "Largest request frame (bytes)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--curve-key", o->curve.secret_key_file, "CURVE: the server's secret key file (marginet keygen)");
  cmd->add_option("--curve-allow", o->curve.allow_list_file, "CURVE: allow-list of client public keys");
  cmd->add_option("--curve-domain", o->curve.domain, "CURVE: ZAP domain")->capture_default_str();
  cmd->callback([&common, o] {
    o->backend = resolve_backend(common);
    o->quiet = common.quiet;
    MarginServer server(*o);
    install_server_signal_handlers();
    std::cout << "marginet serve: listening on " << server.endpoint() << std::endl;
    if (!common.quiet)
      spdlog::info("serving {} on {} (model {}, batch window {} µs, max batch {}, queue {}{})", backend_name(o->backend),
                   server.endpoint(), o->model, o->batch_window_us, o->max_batch, o->queue_capacity,
                   o->curve.enabled() ? ", CURVE" : "");
    server.run();
  });
}

}  // namespace marginet::cli
