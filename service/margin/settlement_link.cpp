#include "service/margin/settlement_link.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "models/errors.hpp"
#include "service/settlement/wire.hpp"

namespace marginet {

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double backoff(double first, double max, double factor, std::int64_t attempts) {
  return std::min(max, first * std::pow(factor, static_cast<double>(std::min<std::int64_t>(attempts, 30))));
}

}  // namespace

SettlementLink::SettlementLink(zmq::context_t& context, ClearingStore& store, SettlementLinkOptions options)
    : store_(store), opt_(std::move(options)), socket_(context, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::immediate, true);  // no queueing for a scheduler that is not there
  socket_.set(zmq::sockopt::sndhwm, 1000);
  socket_.set(zmq::sockopt::maxmsgsize, opt_.max_reply_bytes);
  if (opt_.scheduler_key_file.empty() != opt_.client_key_file.empty())
    throw usage_error("CURVE to the scheduler needs both its public key and this service's secret key");
  if (!opt_.scheduler_key_file.empty())
    enable_curve_client(socket_, read_curve_key_file(opt_.scheduler_key_file).public_key,
                        read_curve_key_file(opt_.client_key_file));
  try {
    socket_.connect(opt_.endpoint);
  } catch (const zmq::error_t& e) {
    throw usage_error("cannot connect to the scheduler " + opt_.endpoint + ": " + e.what());
  }
  refresh_stats();
  thread_ = std::thread([this] { run(); });
}

SettlementLink::~SettlementLink() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

SettlementLinkStats SettlementLink::stats() const {
  std::lock_guard<std::mutex> lk(stats_mu_);
  return stats_;
}

void SettlementLink::refresh_stats() {
  const OutboxStats o = store_.outbox_stats();
  std::lock_guard<std::mutex> lk(stats_mu_);
  stats_.outbox = o;
}

void SettlementLink::run() {
  auto last_stats = std::chrono::steady_clock::now();
  while (!stop_) {
    try {
      const double now = unix_now();
      if (wake_.exchange(false)) round(now);
      zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 1, std::chrono::milliseconds(50));
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 256; ++i) {
          zmq::message_t msg;
          if (!socket_.recv(msg, zmq::recv_flags::dontwait)) break;
          while (msg.more()) {  // a DEALER reply is one frame; drop any extra parts
            zmq::message_t rest;
            if (!socket_.recv(rest, zmq::recv_flags::dontwait)) break;
            msg = std::move(rest);
          }
          handle_reply(msg, unix_now());
        }
      }
      round(unix_now());
      if (std::chrono::steady_clock::now() - last_stats > std::chrono::milliseconds(200)) {
        refresh_stats();
        last_stats = std::chrono::steady_clock::now();
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      if (e.num() == ETERM) return;
      spdlog::error("settlement link: {}", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } catch (const std::exception& e) {
      // The store failed (disk full, ...): log, wait, try again; nothing is lost, the outbox stays.
      spdlog::error("settlement link: {}", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

void SettlementLink::round(double now) {
  const std::vector<OutboxEntry> due = store_.outbox_due(now, opt_.batch);
  for (const OutboxEntry& e : due) {
    const bool ask = e.state == "recorded";
    const std::string frame = ask ? encode_settlement_query(e.cycle_id) : encode_settlement_cycle(e.cycle);
    const bool sent = socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
    const double next = ask ? backoff(opt_.first_query_s, opt_.max_query_s, 1.5, e.attempts)
                            : backoff(opt_.first_retry_s, opt_.max_retry_s, 2.0, e.attempts);
    store_.outbox_attempted(e.cycle_id, now + next);
    if (!sent) continue;  // no connection now: the next attempt is scheduled
    std::lock_guard<std::mutex> lk(stats_mu_);
    ++(ask ? stats_.queries_sent : stats_.cycles_sent);
  }
}

void SettlementLink::handle_reply(const zmq::message_t& msg, double now) {
  const std::string_view frame(static_cast<const char*>(msg.data()), msg.size());
  try {
    const std::string type = settlement_message_type(frame);
    if (type == "settlement.ack") {
      const SettlementAck ack = decode_settlement_ack(frame);
      if (ack.status == "rejected" && !opt_.quiet)
        spdlog::error("the scheduler rejected cycle {}: {}", ack.cycle_id.empty() ? "?" : ack.cycle_id, ack.message);
      store_.outbox_acked(ack.cycle_id, ack.status, ack.message, now + opt_.first_query_s);
      std::lock_guard<std::mutex> lk(stats_mu_);
      ++stats_.acks_received;
    } else if (type == "settlement.report") {
      const SettlementReport report = decode_settlement_report(frame);
      const ReportApplied a = store_.apply_settlement_report(report);
      if (a.completed && !opt_.quiet)
        spdlog::info("cycle {} settled: {} call(s) credited", report.cycle_id, a.credits);
      for (const ReportApplied::MissedPayIn& m : a.missed) {
        spdlog::warn("member {} missed its margin call {} ({} minor units unpaid): handed over to default management",
                     m.member, m.instruction_id, m.unpaid_minor);
        if (opt_.on_missed_pay_in) opt_.on_missed_pay_in(m, report.cycle_id);
      }
      std::lock_guard<std::mutex> lk(stats_mu_);
      ++stats_.reports_applied;
      stats_.credits += static_cast<std::uint64_t>(a.credits);
    } else {
      throw input_error("", 0, "type", "unexpected message type '" + type.substr(0, 64) + "'");
    }
  } catch (const input_error& e) {
    spdlog::warn("settlement link: a bad reply from the scheduler dropped: {}", e.what());
    std::lock_guard<std::mutex> lk(stats_mu_);
    ++stats_.bad_replies;
  }
}

}  // namespace marginet
