#pragma once
// The margin service (SPEC §7, docs/protocol.md): a ZeroMQ ROUTER front end and one compute
// thread that owns the engines.
//
//   socket thread   ROUTER on --bind: decodes every frame (service/margin/protocol.hpp), answers
//                   ping/status itself (also while a batch runs), rejects bad frames with an
//                   `error` reply, puts compute work on two bounded queues (high, normal) and
//                   answers `busy` when a queue is full; forwards the compute thread's replies
//                   (inproc PAIR) to the clients (router_mandatory: unroutable replies are
//                   counted and dropped, never block).
//   compute thread  takes high-priority work first (intraday, RFQ what-if overtakes queued
//                   end-of-day margin); gathers margin requests from many clients for up to
//                   the batch window or the maximum batch size and runs them as ONE engine
//                   pass; what-if runs from the cached P&L rows of the book loaded at start;
//                   market.update re-runs the book and recomputes greeks. Margin and what-if
//                   queries have no side effects.
//                   With a clearing store (--store): trade.submit / trade.cancel record trades
//                   durably (contiguous submits share one commit), the book is the store's
//                   positions and its cached P&L rows follow every recorded trade; packages of
//                   accounts with a pre-trade headroom are checked by what-if first;
//                   collateral.deposit / collateral.withdraw change balances (a withdrawal never
//                   below IM); calls.run (and the scheduled runs, --eod-time / --call-times)
//                   makes margin calls; net cycles, calls and withdrawals go to the store's
//                   outbox.
//   settlement link with --scheduler (service/margin/settlement_link.hpp): sends the outbox to
//                   the scheduler until acknowledged, asks for each cycle's settlement and
//                   credits final calls to the collateral balances, exactly once.
//
// Shutdown (stop() or SIGINT/SIGTERM): queued work is rejected with `busy` replies, the running
// job finishes and is answered, then sockets close with linger 0.
//
// The engines are not thread-safe: only the compute thread touches them and the market.

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "service/margin/curve.hpp"
#include "service/margin/protocol.hpp"

namespace marginet {

struct ServerOptions {
  std::string bind = "tcp://127.0.0.1:7400";
  std::string instruments, market, marks;  // reference data (required)
  std::string positions;                   // optional book: margined at start, the what-if base
  std::string store;                       // clearing store (SQLite; created when absent): the
                                           // book is its positions; trade capture enabled
  std::string collateral;                  // collateral.csv: the pre-trade check's collateral
  std::string model = "span16";
  std::string risk_arrays;                 // span16 published risk arrays (optional)
  std::string returns, stress_returns;     // hvar: returns files (override the model's)
  std::size_t paths = 0;                   // mc-es: paths (0 = the model's)
  long long seed = -1;                     // mc-es: seed (−1 = the model's)
  std::string scheduler;                   // the scheduler's ROUTER (`scheduler --bind`); needs --store
  std::string scheduler_key_file;          // the scheduler's NAME.pub: CURVE to the scheduler when set
  std::string scheduler_client_key_file;   // this service's NAME.key for the scheduler (its producers list)
  double call_deadline_s = 3600;           // deadline of call and withdrawal cycles, seconds from now
  std::string default_fund;                // default-fund config (JSON) for defaults the scheduler
                                           // hands over; "" = the built-in one
  std::string eod_time;                    // "HH:MM" UTC: the end-of-day call run ("" = none)
  std::vector<std::string> call_times;     // "HH:MM" UTC: intraday call runs
  Backend backend = Backend::cpu;
  double batch_window_us = 500;            // how long a margin batch waits for more requests
  // A what-if on the cached rows is answered on the socket thread when the compute thread is
  // idle and nothing is queued (no hand-off to the compute thread and back); off: always queued.
  bool whatif_fast_lane = true;
  std::size_t max_batch = 64;              // requests per engine pass (1 = batching off)
  std::size_t queue_capacity = 1024;       // per priority; beyond it: busy
  // Memory bounds (docs/protocol.md "Limits"): bytes of queued requests per client and in all
  // (a request counts 3 × its frame: decoded it holds at most 2 × the frame in strings); replies
  // not yet taken by a slow client: ZeroMQ's pipe to it holds at most max_unsent_replies
  // messages, the rest wait in the server, at most max_client_unsent_bytes per client and
  // max_unsent_bytes in all (beyond: dropped and counted).
  std::size_t max_client_queued_bytes = std::size_t(64) << 20;
  std::size_t max_queued_bytes = std::size_t(512) << 20;
  int max_unsent_replies = 100;
  std::size_t max_client_unsent_bytes = std::size_t(64) << 20;
  std::size_t max_unsent_bytes = std::size_t(512) << 20;
  protocol::Limits limits;
  CurveServerOptions curve;                // enabled when curve.secret_key_file is set
  bool quiet = false;
};

class MarginServer {
 public:
  /// Loads the reference data, the methodology and the book, binds the sockets. Errors in the
  /// files are input_errors (the CLI exits 2); a bind failure is a usage_error.
  explicit MarginServer(ServerOptions options);
  ~MarginServer();
  MarginServer(const MarginServer&) = delete;
  MarginServer& operator=(const MarginServer&) = delete;

  /// The endpoint actually bound (a `*` port resolved), e.g. tcp://127.0.0.1:40123.
  const std::string& endpoint() const;

  /// Serves until stop() is called or SIGINT/SIGTERM arrives (see install_signal_handlers).
  void run();
  /// Asks run() to shut down gracefully; safe from any thread.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// SIGINT and SIGTERM make every running MarginServer shut down gracefully.
void install_server_signal_handlers();

}  // namespace marginet
