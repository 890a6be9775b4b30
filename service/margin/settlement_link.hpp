#pragma once
// The exactly-once hand-off from the clearing store's outbox to the settlement scheduler
// (SPEC §9, docs/clearing.md "The outbox"). One thread, one ZeroMQ DEALER socket connected to
// the scheduler's ROUTER (`marginet scheduler --bind`):
//
//   outbox state   what the link does                          what moves it on
//   pending        sends settlement.cycle, backing off         settlement.ack recorded|duplicate
//                  (0.5 s, 1 s, 2 s, ... up to 30 s)            -> recorded; rejected -> rejected
//   recorded       sends settlement.query, every 0.5 s then     settlement.report: final calls
//                  backing off to 10 s                          credited; complete -> settled
//
// Every state change is a store transaction, so a kill -9 of the service at any moment loses
// nothing: after a restart the outbox is read again and a cycle whose ack was lost is sent
// again, which the scheduler answers `duplicate`. Credits are unique by instruction id in the
// store, so a report applied twice credits once. The link never blocks the service: sends are
// non-blocking (a scheduler that is down just means the next attempt), replies are bounded
// (maxmsgsize) and every bad reply is logged and dropped.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "service/clearing/clearing_store.hpp"
#include "service/margin/curve.hpp"

namespace marginet {

struct SettlementLinkOptions {
  std::string endpoint;               // the scheduler's ROUTER, e.g. tcp://127.0.0.1:7401
  std::string scheduler_key_file;     // CURVE: the scheduler's NAME.pub (both or neither)
  std::string client_key_file;        // CURVE: this producer's NAME.key
  double first_retry_s = 0.5;         // an unacknowledged cycle: resent after 0.5, 1, 2, ... s
  double max_retry_s = 30;
  double first_query_s = 0.5;         // an acknowledged cycle: asked about after 0.5, 0.75, ... s
  double max_query_s = 10;
  std::size_t batch = 64;             // cycles handled per round
  std::int64_t max_reply_bytes = std::int64_t{64} << 20;
  bool quiet = false;
  /// Called on the link's thread for each margin-call pay-in a report ends defaulted (the
  /// scheduler's hand-over); the service queues the member's default. May be empty.
  std::function<void(const ReportApplied::MissedPayIn& missed, const std::string& cycle_id)> on_missed_pay_in;
};

/// Counters and the outbox's state as last read (for `status`, without touching the store).
struct SettlementLinkStats {
  std::uint64_t cycles_sent = 0, queries_sent = 0, acks_received = 0, reports_applied = 0;
  std::uint64_t credits = 0, bad_replies = 0;
  OutboxStats outbox;
};

class SettlementLink {
 public:
  /// Connects (the scheduler may be down: ZeroMQ reconnects) and starts the thread.
  /// usage_error when the endpoint is malformed.
  SettlementLink(zmq::context_t& context, ClearingStore& store, SettlementLinkOptions options);
  ~SettlementLink();  // stops the thread
  SettlementLink(const SettlementLink&) = delete;
  SettlementLink& operator=(const SettlementLink&) = delete;

  /// A cycle was put in the outbox: send it now rather than at the next round.
  void wake() { wake_ = true; }
  SettlementLinkStats stats() const;
  const std::string& endpoint() const { return opt_.endpoint; }

 private:
  void run();
  void round(double now);
  void handle_reply(const zmq::message_t& msg, double now);
  void refresh_stats();

  ClearingStore& store_;
  SettlementLinkOptions opt_;
  zmq::socket_t socket_;
  std::atomic<bool> stop_{false}, wake_{true};
  mutable std::mutex stats_mu_;
  SettlementLinkStats stats_;
  std::thread thread_;
};

}  // namespace marginet
