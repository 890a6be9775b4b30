// `marginet scheduler`: the settlement scheduler daemon (SPEC §8, docs/settlement.md).
//
//   marginet scheduler --ledger FILE.sqlite --chains FILE.json
//                      [--bind tcp://127.0.0.1:7401] [--pull tcp://127.0.0.1:7402] [--ack ENDPOINT]
//                      [--cycle-file F]...
//                      [--until-idle] [--chain-state FILE] [--clock wall|virtual --start ISO
//                      --tick-seconds S] [--poll-ms N] [--max-runtime S]
//                      [--curve-key NAME.key --producers FILE] [--insecure] [--signing-key NAME.sign.key]
//   marginet scheduler status --ledger FILE.sqlite
//   marginet scheduler roll|close CYCLE (--connect ENDPOINT [--curve-server-key PUB --curve-key KEY]
//                                        | --ledger FILE.sqlite --chains FILE.json)
//
// Trust (docs/settlement.md): with --curve-key every peer authenticates with a key listed in
// --producers ("KEY NAME [draw] [operate]" per line); only a producer with `draw` may send a cycle
// whose pay-outs its pay-ins do not fund (a withdrawal), only one with `operate` may end a
// cycle. Without CURVE no peer is authenticated: balanced cycles and queries are accepted,
// draws and operator requests only with --insecure (development on one host).
//
// Cycles come from --cycle-file (JSON, models/settlement_cycle.hpp) and/or msgpack frames
// (service/settlement/wire.hpp) on a ZeroMQ ROUTER socket bound at --bind (request/reply with
// DEALER or REQ peers: settlement.cycle -> settlement.ack, settlement.query -> settlement.report)
// and/or a PULL socket bound at --pull (acks PUSHed to --ack). A cycle is acknowledged only after
// it is durably recorded. Without --bind or --pull the scheduler settles what it was given and
// exits when idle; with a socket it runs until SIGINT/SIGTERM (or, with --until-idle, until every
// received cycle is closed). `--bind tcp://127.0.0.1:*` picks a free port; the endpoint bound is
// logged on stderr as `marginet scheduler: listening on ENDPOINT`. No message, however bad,
// stops the daemon: each is answered (rejected) or dropped on its own.
// On exit it prints the status (csv or json): cycles open, instructions per state, value
// pending per asset.

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <fstream>
#include <map>
#include <sstream>
#include <chrono>
#include <csignal>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/identifier.hpp"
#include "models/settlement_cycle.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/db/writer_lock.hpp"
#include "service/margin/curve.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/scheduler.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_chain.hpp"
#include "service/settlement/wire.hpp"
#include "service/settlement/chains/sim_chain.hpp"

namespace marginet::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

struct SchedulerOptions {
  std::string bind;
  std::string pull;
  std::string ack;
  std::string ledger;
  std::string chains;
  std::string chain_state;
  std::vector<std::string> cycle_files;
  bool until_idle = false;
  std::string clock = "wall";
  std::string start;
  double tick_seconds = 1.0;
  int poll_ms = 20;
  double max_runtime = 0;
  std::string status_ledger;
  std::string curve_key;      // the scheduler's NAME.key (CURVE on both sockets)
  std::string producers;      // allow-list with rights
  bool insecure = false;      // without CURVE: every peer may draw and operate
  std::string signing_key;    // the CCP's Ed25519 key (keygen --signing): a signed tree head per cycle
  // roll | close
  std::string end_cycle;
  std::string connect;
  std::string curve_server_key;
};

// A producer of the allow-list: its name and rights.
struct Producer {
  std::string name;
  bool draw = false;
  bool operate = false;
};

/// The producers file: "KEY NAME [draw] [operate]" per line (KEY: 40 Z85 characters; blank
/// lines and lines starting with # ignored). input_error naming file, line and field.
std::map<std::string, Producer> read_producers(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", "cannot open the producers file");
  std::map<std::string, Producer> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::istringstream words(line);
    std::string key;
    if (!(words >> key) || key[0] == '#') continue;  // only whole-line comments: '#' is a Z85 character
    if (!is_z85_key(key)) throw input_error(path, n, "key", "not a 40-character Z85 public key");
    Producer p;
    if (!(words >> p.name)) throw input_error(path, n, "name", "missing (KEY NAME [draw] [operate])");
    if (auto why = identifier_problem(p.name, 128)) throw input_error(path, n, "name", *why);
    for (std::string right; words >> right;) {
      if (right == "draw") p.draw = true;
      else if (right == "operate") p.operate = true;
      else throw input_error(path, n, "rights", "unknown right '" + right + "' (draw, operate)");
    }
    if (!out.emplace(key, p).second) throw input_error(path, n, "key", "listed twice");
  }
  return out;
}

// ROUTER (--bind) and PULL (--pull) limits: the largest frame accepted, the messages handled per loop round (so
// that ticks go on under a flood).
constexpr std::int64_t kRouterMaxMessageBytes = std::int64_t{16} << 20;
constexpr int kMessagesPerRound = 256;

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string default_chain_state(const std::string& ledger) {
  std::string base = ledger;
  const std::string ext = ".sqlite";
  if (base.size() > ext.size() && base.compare(base.size() - ext.size(), ext.size(), ext) == 0)
    base.resize(base.size() - ext.size());
  return base + ".chains.sqlite";
}

void write_status(const SchedulerStatus& st, const CommonOptions& common) {
  auto amount = [&st](const std::string& asset, std::int64_t minor) {
    auto it = st.scales.find(asset);
    return it == st.scales.end() ? std::to_string(minor) : format_minor_units(minor, it->second);
  };
  Table t;
  t.columns = {"section", "key", "value"};
  t.add_row({std::string("cycles"), std::string("open"), st.cycles_open});
  t.add_row({std::string("cycles"), std::string("queued"), st.cycles_queued});
  t.add_row({std::string("cycles"), std::string("closed"), st.cycles_closed});
  if (!st.open_cycle.empty()) {
    t.add_row({std::string("cycles"), std::string("open_cycle"), st.open_cycle});
    t.add_row({std::string("cycles"), std::string("open_deadline"), st.open_deadline});
  }
  // The members whose instructions keep the open cycle open, and what is not final.
  for (const auto& [member, what] : st.blocking) t.add_row({std::string("blocking"), member, what});
  for (const char* s : {"instructed", "submitted", "confirmed", "final", "failed", "rolled", "defaulted", "expired"}) {
    auto it = st.instructions_per_state.find(s);
    t.add_row({std::string("instructions"), std::string(s), it == st.instructions_per_state.end() ? 0 : it->second});
  }
  for (const auto& [asset, v] : st.value_pending) t.add_row({std::string("pending"), asset, amount(asset, v)});
  for (const auto& [asset, v] : st.carried) t.add_row({std::string("carried"), asset, amount(asset, v)});
  for (const auto& [asset, v] : st.shortfall) t.add_row({std::string("shortfall"), asset, amount(asset, v)});
  for (const auto& [asset, v] : st.liquidity) t.add_row({std::string("liquidity"), asset, amount(asset, v)});
  t.add_row({std::string("transfers"), std::string("watched"), st.transfers_watched});
  t.add_row({std::string("ledger"), std::string("entries"), st.ledger_entries});
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void run_status(const CommonOptions& common, const SchedulerOptions& o) {
  const std::string path = o.status_ledger.empty() ? o.ledger : o.status_ledger;
  if (path.empty()) throw usage_error("scheduler status: --ledger FILE is required");
  SqliteDb db(path, false);
  write_status(read_scheduler_status(db), common);
}

// The scheduler over its ledger and chains, the ledger's writer lock held.
struct SchedulerRuntime {
  std::unique_ptr<WriterLock> lock;
  std::unique_ptr<SqliteDb> db, chain_db;
  std::vector<std::unique_ptr<SimChain>> sims;
  std::vector<std::unique_ptr<EvmChain>> evms;
  std::unique_ptr<SettlementScheduler> sched;
};

SchedulerRuntime open_runtime(const SchedulerOptions& o, const std::string& what) {
  if (o.ledger.empty()) throw usage_error(what + ": --ledger FILE is required");
  if (o.chains.empty()) throw usage_error(what + ": --chains FILE is required");
  const SchedulerConfig cfg = load_scheduler_config(o.chains);
  SchedulerRuntime rt;
  // One writer per ledger: a second scheduler on the same file is refused (exit 2) before it
  // touches anything (service/db/writer_lock.hpp; released by the kernel on any exit).
  rt.lock = std::make_unique<WriterLock>(o.ledger, "settlement ledger");
  rt.db = std::make_unique<SqliteDb>(o.ledger);
  rt.chain_db = std::make_unique<SqliteDb>(o.chain_state.empty() ? default_chain_state(o.ledger) : o.chain_state);
  std::vector<ChainAdapter*> chains;
  for (const auto& sc : cfg.sim_chains) {
    rt.sims.push_back(std::make_unique<SimChain>(sc, rt.chain_db.get()));
    chains.push_back(rt.sims.back().get());
  }
  for (const auto& ec : cfg.evm_chains) {
    rt.evms.push_back(std::make_unique<EvmChain>(ec, rt.chain_db.get()));
    if (!ec.contracts_file.empty())
      rt.evms.back()->set_artifacts(std::make_shared<evm::ContractArtifacts>(evm::ContractArtifacts::load(ec.contracts_file)));
    chains.push_back(rt.evms.back().get());
  }
  rt.sched = std::make_unique<SettlementScheduler>(*rt.db, cfg, chains);
  if (!o.signing_key.empty()) {
    rt.sched->ledger().set_signing_key(read_signing_key(o.signing_key));
    rt.sched->ledger().publish_heads();  // heads committed before a crash, not yet published
  }
  return rt;
}

// `scheduler roll|close CYCLE`: through the running daemon (--connect), or on the ledger when
// no daemon holds it.
void run_end_cycle(const CommonOptions& common, const SchedulerOptions& o, const std::string& action) {
  if (o.end_cycle.empty()) throw usage_error("scheduler " + action + ": CYCLE is required");
  std::string message;
  if (!o.connect.empty()) {
    if (!o.ledger.empty()) throw usage_error("scheduler " + action + ": --connect or --ledger, not both");
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::maxmsgsize, std::int64_t{1} << 20);
    if (o.curve_server_key.empty() != o.curve_key.empty())
      throw usage_error("scheduler " + action + ": CURVE needs both --curve-server-key and --curve-key");
    if (!o.curve_server_key.empty())
      enable_curve_client(s, read_curve_key_file(o.curve_server_key).public_key, read_curve_key_file(o.curve_key));
    try {
      s.connect(o.connect);
    } catch (const zmq::error_t& e) {
      throw usage_error("scheduler " + action + ": cannot connect to " + o.connect + ": " + e.what());
    }
    const std::string frame = encode_settlement_operator({action, o.end_cycle});
    (void)s.send(zmq::buffer(frame), zmq::send_flags::none);
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::seconds(30)) == 0)
      throw std::runtime_error("scheduler " + action + ": no answer from " + o.connect + " within 30 s");
    zmq::message_t reply;
    (void)s.recv(reply, zmq::recv_flags::none);
    const SettlementAck ack = decode_settlement_ack(reply.to_string_view());
    if (ack.status != "done") throw usage_error("scheduler " + action + " " + o.end_cycle + ": " + ack.message);
    message = ack.message;
  } else {
    SchedulerRuntime rt = open_runtime(o, "scheduler " + action);
    message = rt.sched->end_cycle(o.end_cycle,
                                  action == "roll" ? MissedDeadlineAction::roll : MissedDeadlineAction::default_management,
                                  wall_now(), "operator at the console");
    if (!o.signing_key.empty()) rt.sched->ledger().publish_heads();
  }
  if (!common.quiet) std::cout << message << "\n";
}

void run_scheduler(const CommonOptions& common, const SchedulerOptions& o) {
  if (o.ledger.empty()) throw usage_error("scheduler: --ledger FILE is required");
  if (o.chains.empty()) throw usage_error("scheduler: --chains FILE is required");
  if (o.bind.empty() && o.pull.empty() && o.cycle_files.empty())
    throw usage_error("scheduler: give --bind ENDPOINT, --pull ENDPOINT and/or --cycle-file FILE");
  if (!o.ack.empty() && o.pull.empty())
    throw usage_error("scheduler: --ack sends the acks of --pull (a --bind peer gets its ack as the reply)");
  if (!o.bind.empty() && o.bind == o.pull) throw usage_error("scheduler: --bind and --pull need different endpoints");
  if (o.clock != "wall" && o.clock != "virtual") throw usage_error("scheduler: --clock is wall or virtual");
  if (!(o.tick_seconds > 0)) throw usage_error("scheduler: --tick-seconds must be > 0");

  const bool curve = !o.curve_key.empty();
  if (curve && o.producers.empty()) throw usage_error("scheduler: --curve-key needs --producers (who may send)");
  if (!curve && !o.producers.empty()) throw usage_error("scheduler: --producers needs --curve-key");
  if (curve && o.insecure) throw usage_error("scheduler: --insecure is for a scheduler without CURVE");
  std::map<std::string, Producer> producers;
  if (curve) producers = read_producers(o.producers);
  SchedulerRuntime rt = open_runtime(o, "scheduler");
  SqliteDb& db = *rt.db;
  SettlementScheduler& sched = *rt.sched;
  const bool signing = !o.signing_key.empty();
  if (!signing && !common.quiet)
    spdlog::warn("scheduler: no --signing-key: tree heads are not signed, so a truncated or rewritten ledger "
                 "cannot be detected with `ledger verify --pubkey`");

  // The clock: wall time, or virtual time advancing by --tick-seconds per tick.
  double virtual_now = wall_now();
  if (!o.start.empty()) {
    auto t = parse_iso8601_utc(o.start);
    if (!t) throw usage_error("scheduler: --start is not an ISO 8601 UTC time: " + o.start);
    virtual_now = *t;
  }
  const bool wall = o.clock == "wall";
  auto now = [&] { return wall ? wall_now() : virtual_now; };

  std::unique_ptr<zmq::context_t> ctx;
  std::unique_ptr<zmq::socket_t> router, pull, ack;
  std::unique_ptr<ZapHandler> zap;
  CurveKeyPair keys;
  if (!o.bind.empty() || !o.pull.empty()) ctx = std::make_unique<zmq::context_t>(1);
  if (ctx && curve) {
    keys = read_curve_key_file(o.curve_key);
    std::set<std::string> allowed;
    for (const auto& [key, p] : producers) allowed.insert(key);
    if (allowed.empty()) allowed.insert(kCurveNoClient);  // a list without keys admits nobody
    zap = std::make_unique<ZapHandler>(*ctx, std::move(allowed), "marginet-scheduler");
  } else if (ctx && !common.quiet) {
    spdlog::warn("scheduler: no CURVE: peers are not authenticated; liquidity draws and operator requests are {}",
                 o.insecure ? "accepted from anyone (--insecure)" : "refused");
  }
  if (!o.bind.empty()) {
    router = std::make_unique<zmq::socket_t>(*ctx, zmq::socket_type::router);
    router->set(zmq::sockopt::maxmsgsize, kRouterMaxMessageBytes);
    router->set(zmq::sockopt::linger, 0);
    router->set(zmq::sockopt::router_mandatory, true);  // a reply to a gone peer fails (EHOSTUNREACH): dropped
    router->set(zmq::sockopt::sndhwm, 10000);
    router->set(zmq::sockopt::rcvhwm, 10000);
    if (curve) enable_curve_server(*router, keys, "marginet-scheduler");
    try {
      router->bind(o.bind);
    } catch (const zmq::error_t& e) {
      throw usage_error("scheduler: cannot bind --bind " + o.bind + ": " + e.what());
    }
    std::cerr << "marginet scheduler: listening on " << router->get(zmq::sockopt::last_endpoint) << std::endl;
  }
  if (!o.pull.empty()) {
    pull = std::make_unique<zmq::socket_t>(*ctx, zmq::socket_type::pull);
    pull->set(zmq::sockopt::maxmsgsize, kRouterMaxMessageBytes);  // a larger frame drops its sender
    pull->set(zmq::sockopt::linger, 0);
    if (curve) enable_curve_server(*pull, keys, "marginet-scheduler");
    try {
      pull->bind(o.pull);
    } catch (const zmq::error_t& e) {
      throw usage_error("scheduler: cannot bind --pull " + o.pull + ": " + e.what());
    }
    if (!o.ack.empty()) {
      ack = std::make_unique<zmq::socket_t>(*ctx, zmq::socket_type::push);
      ack->set(zmq::sockopt::linger, 1000);
      ack->set(zmq::sockopt::sndhwm, 10000);
      ack->connect(o.ack);
    }
    if (!common.quiet) spdlog::info("scheduler: pulling settlement cycles on {}", o.pull);
  }
  // The ack of a cycle, logged (stderr) and returned for the caller to send.
  auto acknowledge = [&](const std::string& cycle_id, const char* status, const std::string& message) {
    if (!common.quiet || std::string(status) == "rejected")
      spdlog::info("ack cycle {}: {}{}", cycle_id, status, message.empty() ? "" : " (" + message + ")");
    return SettlementAck{cycle_id, status, message};
  };
  std::size_t received = 0;
  // Who sent a message: the producer its CURVE key names, or an unauthenticated peer.
  struct Peer {
    CycleSender sender;
    bool operate = false;
  };
  auto peer_of = [&](zmq::message_t& m) -> Peer {  // gets() is not const in cppzmq
    if (!curve) return {{"unauthenticated", o.insecure}, o.insecure};
    const char* uid = nullptr;
    try {
      uid = m.gets("User-Id");
    } catch (const zmq::error_t&) {
    }
    const auto it = uid ? producers.find(uid) : producers.end();
    if (it == producers.end()) return {{"unknown", false}, false};
    return {{it->second.name, it->second.draw}, it->second.operate};
  };
  auto take = [&](const SettlementCycle& cycle, const CycleSender& sender = CycleSender{}) {
    const CycleReceipt r = sched.receive(cycle, now(), sender);
    ++received;
    return acknowledge(cycle.cycle_id, r == CycleReceipt::recorded ? "recorded" : "duplicate",
                       r == CycleReceipt::recorded ? std::to_string(cycle.instructions.size()) + " instructions, durable"
                                                   : "already recorded");
  };
  for (const auto& f : o.cycle_files) take(read_cycle_json(f));

  // One settlement.cycle frame (from either socket): its ack. Bad input is a rejected ack (with
  // the cycle's id when the frame decoded); any other failure (the database) gets no ack, so
  // that the producer sends the cycle again.
  auto take_frame = [&](std::string_view frame, const CycleSender& sender) -> std::optional<SettlementAck> {
    SettlementCycle cycle;
    try {
      cycle = decode_settlement_cycle(frame);
    } catch (const input_error& e) {
      spdlog::warn("scheduler: rejected a message: {}", e.what());
      return acknowledge("", "rejected", e.what());
    }
    try {
      return take(cycle, sender);
    } catch (const input_error& e) {
      spdlog::warn("scheduler: rejected cycle {}: {}", cycle.cycle_id, e.what());
      return acknowledge(cycle.cycle_id, "rejected", e.what());
    } catch (const std::exception& e) {
      spdlog::error("scheduler: cycle {} not recorded (no ack; the producer will send it again): {}", cycle.cycle_id,
                    e.what());
      return std::nullopt;
    }
  };
  // One ROUTER request: the reply frame, or nothing.
  auto answer = [&](std::string_view frame, const Peer& peer) -> std::optional<std::string> {
    const std::string type = settlement_message_type(frame);
    if (type == "settlement.operator") {
      OperatorRequest req;
      try {
        req = decode_settlement_operator(frame);
        if (!peer.operate)
          throw input_error("settlement.operator", 0, "sender",
                            "'" + peer.sender.name + "' may not end cycles (the operate right; without CURVE: --insecure)");
        const std::string done = sched.end_cycle(
            req.cycle_id, req.action == "roll" ? MissedDeadlineAction::roll : MissedDeadlineAction::default_management,
            now(), peer.sender.name);
        if (signing) sched.ledger().publish_heads();
        return encode_settlement_ack(acknowledge(req.cycle_id, "done", done));
      } catch (const input_error& e) {
        spdlog::warn("scheduler: rejected an operator request: {}", e.what());
        return encode_settlement_ack(acknowledge(req.cycle_id, "rejected", e.what()));
      } catch (const std::exception& e) {
        spdlog::error("scheduler: operator request not carried out: {}", e.what());
        return encode_settlement_ack(acknowledge(req.cycle_id, "rejected", std::string("not carried out: ") + e.what()));
      }
    }
    if (type == "settlement.query") {
      try {
        return encode_settlement_report(read_settlement_report(db, decode_settlement_query(frame)));
      } catch (const input_error& e) {
        spdlog::warn("scheduler: rejected a query: {}", e.what());
        return encode_settlement_ack(acknowledge("", "rejected", e.what()));
      } catch (const std::exception& e) {
        spdlog::error("scheduler: query not answered: {}", e.what());
        return std::nullopt;
      }
    }
    if (type == "settlement.cycle") {
      const auto a = take_frame(frame, peer.sender);
      if (!a) return std::nullopt;
      return encode_settlement_ack(*a);
    }
    const std::string why = type.empty() ? "not a msgpack map with a string \"type\""
                                         : "unexpected message type \"" + type + "\"";
    spdlog::warn("scheduler: rejected a message: {} (expected settlement.cycle, settlement.query or settlement.operator)", why);
    return encode_settlement_ack(
        acknowledge("", "rejected", why + "; expected settlement.cycle, settlement.query or settlement.operator"));
  };
  // Reads one multipart message; false when none is waiting.
  auto receive_parts = [](zmq::socket_t& s, std::vector<zmq::message_t>& parts) {
    parts.clear();
    while (true) {
      zmq::message_t m;
      if (!s.recv(m, zmq::recv_flags::dontwait)) return !parts.empty();
      const bool more = m.more();
      parts.push_back(std::move(m));
      if (!more) return true;
    }
  };
  std::size_t unroutable = 0, dropped = 0;
  auto serve_router = [&] {
    std::vector<zmq::message_t> parts;
    for (int i = 0; i < kMessagesPerRound && receive_parts(*router, parts); ++i) {
      // [identity, frame] from a DEALER; [identity, "", frame] from a REQ (also behind
      // proxies: [identity..., "", frame]). Anything else is dropped.
      const std::size_t n = parts.size();
      const bool dealer = n == 2;
      const bool req = n >= 3 && n <= 8 && parts[n - 2].size() == 0;
      if (!dealer && !req) {
        ++dropped;
        if (!common.quiet) spdlog::warn("scheduler: dropped a message of {} frames", n);
        continue;
      }
      zmq::message_t& body = parts[n - 1];
      std::optional<std::string> reply;
      try {
        reply = answer(std::string_view(static_cast<const char*>(body.data()), body.size()), peer_of(body));
      } catch (const std::exception& e) {  // answer() handles its own; this is the last net
        spdlog::error("scheduler: a message was not answered: {}", e.what());
      }
      if (!reply) continue;
      try {
        bool sent = true;
        for (std::size_t k = 0; sent && k + 1 < n; ++k)
          sent = router->send(zmq::buffer(parts[k].data(), parts[k].size()),
                              zmq::send_flags::sndmore | zmq::send_flags::dontwait).has_value();
        if (sent) sent = router->send(zmq::buffer(*reply), zmq::send_flags::dontwait).has_value();
        if (!sent) ++unroutable;  // the peer's queue is full: dropped (it asks again)
      } catch (const zmq::error_t&) {
        ++unroutable;  // EHOSTUNREACH: the peer has gone
      }
    }
  };

  g_stop = 0;
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const bool listening = router || pull;
  const bool until_idle = o.until_idle || !listening;
  const auto started = std::chrono::steady_clock::now();
  bool busy = true;
  std::optional<std::chrono::steady_clock::time_point> idle_since;  // idle, a chain still busy
  while (!g_stop) {
    if (listening) {
      std::vector<zmq::pollitem_t> items;
      if (router) items.push_back({router->handle(), 0, ZMQ_POLLIN, 0});
      if (pull) items.push_back({pull->handle(), 0, ZMQ_POLLIN, 0});
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(busy ? 0 : o.poll_ms));
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        continue;  // a signal: the loop condition decides
      }
      // A signal interrupts ZeroMQ's calls (EINTR) anywhere in here: nothing was taken that is
      // not recorded (an unsent ack makes the producer send again: duplicate); the loop
      // condition decides.
      try {
        if (router) serve_router();
        if (pull) {
          zmq::message_t msg;
          for (int i = 0; i < kMessagesPerRound && pull->recv(msg, zmq::recv_flags::dontwait); ++i) {
            if (msg.more()) {  // PUSH peers send one frame per message: drop the rest of it
              while (msg.more() && pull->recv(msg, zmq::recv_flags::dontwait)) {
              }
              ++dropped;
              continue;
            }
            const auto a = take_frame(std::string_view(static_cast<const char*>(msg.data()), msg.size()), peer_of(msg).sender);
            if (a && ack) {
              const std::string frame = encode_settlement_ack(*a);
              (void)ack->send(zmq::buffer(frame), zmq::send_flags::dontwait);
            }
          }
        }
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        continue;
      }
    }
    const TickReport rep = sched.tick(now());
    if (!wall) virtual_now += o.tick_seconds;
    for (const auto& c : rep.cycles_closed)
      if (!common.quiet) spdlog::info("cycle {} closed; root {}", c, sched.ledger().cycle_root(c).value_or("?"));
    if (signing && !rep.cycles_closed.empty()) sched.ledger().publish_heads();  // after the commit
    busy = rep.state_changes > 0;
    if (until_idle && ((received > 0) || !listening) && sched.idle()) {
      // Chains finishing their own work (an anchor on an evm chain): polled on, for at most 60 s;
      // what is left is done at the next start.
      if (!sched.chains_busy()) break;
      const auto t = std::chrono::steady_clock::now();
      if (!idle_since) idle_since = t;
      if (t - *idle_since > std::chrono::seconds(60)) {
        spdlog::warn("scheduler: a chain's work (anchoring a closed cycle) is not final after 60 s; it goes on at the next start");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::max(o.poll_ms, 10)));
      continue;
    }
    if (o.max_runtime > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() > o.max_runtime)
      break;
    if (!listening && wall && !busy) std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
  }
  if (unroutable || dropped)
    spdlog::info("scheduler: {} repl{} to gone or full peers dropped, {} malformed message(s) dropped", unroutable,
                 unroutable == 1 ? "y" : "ies", dropped);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  write_status(sched.status(), common);
}

}  // namespace

void add_scheduler_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<SchedulerOptions>();
  CLI::App* cmd = app.add_subcommand("scheduler", "Settlement scheduler: settle cycles durably into the ledger");
  cmd->add_option("--bind", o->bind,
                  "ZeroMQ endpoint to bind a ROUTER socket on: settlement.cycle -> settlement.ack, settlement.query"
                  " -> settlement.report (tcp://127.0.0.1:* picks a free port)");
  cmd->add_option("--pull", o->pull, "ZeroMQ endpoint to bind a PULL socket on (e.g. tcp://127.0.0.1:7402)");
  cmd->add_option("--ack", o->ack, "ZeroMQ endpoint to PUSH settlement.ack messages to");
  cmd->add_option("--ledger", o->ledger, "Ledger and scheduler state (SQLite file)");
  cmd->add_option("--chains", o->chains, "Chains and liquidity (JSON, see examples/chains.json)");
  cmd->add_option("--chain-state", o->chain_state, "Sim chains' state (SQLite; default: LEDGER.chains.sqlite)");
  cmd->add_option("--cycle-file", o->cycle_files, "Settle a cycle from a JSON file (repeatable)");
  cmd->add_flag("--until-idle", o->until_idle, "With --bind/--pull: exit once every received cycle is closed");
  cmd->add_option("--clock", o->clock, "wall or virtual (virtual: --start + --tick-seconds per tick)")
      ->check(CLI::IsMember({"wall", "virtual"}))
      ->capture_default_str();
  cmd->add_option("--start", o->start, "Virtual clock start (ISO 8601 UTC)");
  cmd->add_option("--tick-seconds", o->tick_seconds, "Virtual seconds per tick")->capture_default_str();
  cmd->add_option("--poll-ms", o->poll_ms, "Idle wait between ticks (ms)")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--max-runtime", o->max_runtime, "Stop after this many seconds (0: no limit)");
  cmd->add_option("--curve-key", o->curve_key,
                  "CURVE on --bind and --pull: the scheduler's secret key file (marginet keygen NAME)");
  cmd->add_option("--producers", o->producers,
                  "CURVE: who may send, one \"KEY NAME [draw] [operate]\" per line (draw: cycles whose pay-outs "
                  "exceed their pay-ins; operate: roll|close)");
  cmd->add_option("--signing-key", o->signing_key,
                  "The CCP's Ed25519 key (marginet keygen --signing NAME): each closed cycle's tree head is signed "
                  "and published to LEDGER.heads");
  cmd->add_flag("--insecure", o->insecure,
                "Without CURVE: let any peer draw on liquidity and end cycles (development on one host only)");
  CLI::App* status = cmd->add_subcommand("status", "Cycles open, instructions per state, value pending per asset");
  status->add_option("--ledger", o->status_ledger, "Ledger and scheduler state (SQLite file)");
  status->callback([&common, o] { run_status(common, *o); });
  std::vector<CLI::App*> enders;
  for (const char* action : {"roll", "close"}) {
    CLI::App* end = cmd->add_subcommand(
        action, std::string(action) == "roll"
                    ? "End the open cycle now: what is not final is rolled to the next cycle"
                    : "End the open cycle now: members with a pay-in not final go to default management");
    end->add_option("CYCLE", o->end_cycle, "The open cycle's id")->required();
    end->add_option("--connect", o->connect, "The running scheduler's --bind endpoint");
    end->add_option("--curve-server-key", o->curve_server_key, "CURVE: the scheduler's public key file (NAME.pub)");
    end->add_option("--curve-key", o->curve_key, "CURVE: this operator's secret key file (NAME.key, listed with operate)");
    end->add_option("--ledger", o->ledger, "Without a running scheduler: its ledger (SQLite file)");
    end->add_option("--chains", o->chains, "Without a running scheduler: its chains file");
    end->add_option("--chain-state", o->chain_state, "Sim chains' state (default: LEDGER.chains.sqlite)");
    end->add_option("--signing-key", o->signing_key, "Without a running scheduler: the CCP's Ed25519 key");
    end->callback([&common, o, action] { run_end_cycle(common, *o, action); });
    enders.push_back(end);
  }
  cmd->require_subcommand(0, 1);
  cmd->callback([&common, o, status, enders] {
    if (status->parsed()) return;
    for (CLI::App* e : enders)
      if (e->parsed()) return;
    run_scheduler(common, *o);
  });
}

}  // namespace marginet::cli
