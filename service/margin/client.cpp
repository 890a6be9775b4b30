#include "service/margin/client.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>

#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

MarginClient::MarginClient(ClientOptions options)
    : options_(std::move(options)), socket_(context_, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  if (!options_.server_key_file.empty()) {
    if (options_.client_key_file.empty())
      throw usage_error("CURVE needs the client's key file (--client-key) as well as the server's public key");
    const CurveKeyPair server = read_curve_key_file(options_.server_key_file);
    const CurveKeyPair client = read_curve_key_file(options_.client_key_file);
    enable_curve_client(socket_, server.public_key, client);
  }
  // The connection's events (refused, connected, handshake failed or done) go to a PAIR socket,
  // so that a request that gets no reply can say why, and a CURVE refusal fails at once.
  const std::string monitor_endpoint = "inproc://marginet-client-monitor-" + std::to_string(reinterpret_cast<std::uintptr_t>(this));
  if (zmq_socket_monitor(socket_.handle(), monitor_endpoint.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
    monitor_ = zmq::socket_t(context_, zmq::socket_type::pair);
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(monitor_endpoint);
  }
  try {
    socket_.connect(options_.endpoint);
  } catch (const zmq::error_t& e) {
    throw usage_error("cannot connect to " + options_.endpoint + ": " + e.what());
  }
}

void MarginClient::drain_monitor() {
  if (!monitor_) return;
  while (true) {
    zmq::message_t event;
    if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return;
    std::uint16_t id = 0;
    if (event.size() >= sizeof id) std::memcpy(&id, event.data(), sizeof id);
    while (event.more()) {  // the second frame: the endpoint
      zmq::message_t rest;
      if (!monitor_.recv(rest, zmq::recv_flags::dontwait)) break;
      event = std::move(rest);
    }
    switch (id) {
      case ZMQ_EVENT_CONNECTED: link_.connected = true; link_.refused = false; break;
      case ZMQ_EVENT_CONNECT_RETRIED: if (!link_.connected) link_.refused = true; break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: link_.handshake_ok = true; break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: link_.auth_failed = true; break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: link_.handshake_failed = true; break;
      default: break;
    }
  }
}

std::string MarginClient::no_reply_reason() const {
  const std::string& ep = options_.endpoint;
  if (link_.auth_failed)
    return "the server at " + ep + " refused this client's CURVE key (not on its allow-list, or the wrong --server-key)";
  if (link_.handshake_failed)
    return "the handshake with " + ep + " failed: " +
           (options_.server_key_file.empty() ? std::string("the server may require CURVE (--server-key, --client-key)")
                                             : std::string("the server may not use CURVE, or --server-key is not its key"));
  if (!link_.connected)
    return "nothing answers at " + ep + (link_.refused ? " (connection refused)" : "") + " within " +
           std::to_string(options_.timeout_ms) + " ms: is `marginet serve` running there?";
  if (!link_.handshake_ok)
    return "connected to " + ep + " but the handshake did not complete within " + std::to_string(options_.timeout_ms) +
           " ms" + (options_.server_key_file.empty() ? " (does the server require CURVE?)" : "");
  return "no reply from " + ep + " within " + std::to_string(options_.timeout_ms) + " ms (the server is busy or stuck)";
}

MarginClient::~MarginClient() = default;

void MarginClient::send_raw(const std::string& frame) {
  if (!socket_.send(zmq::buffer(frame), zmq::send_flags::none)) throw client_error("send failed");
}

std::optional<std::string> MarginClient::receive_raw(int timeout_ms) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0) return std::nullopt;
  std::string last;
  while (true) {  // a REQ-style envelope would arrive as several frames: the payload is the last
    zmq::message_t m;
    if (!socket_.recv(m, zmq::recv_flags::dontwait)) break;
    last = m.to_string();
    if (!m.more()) break;
  }
  return last;
}

nlohmann::ordered_json MarginClient::call(nlohmann::ordered_json request) {
  if (!request.contains("v")) request["v"] = protocol::kVersion;
  if (!request.contains("id")) request["id"] = next_id_++;
  const nlohmann::ordered_json id = request["id"];
  // v, type, id and priority first: the server reads a large frame's header from its first
  // 4 KiB (service/margin/server.cpp), so that its priority is honoured.
  nlohmann::ordered_json ordered = nlohmann::ordered_json::object();
  for (const char* key : {"v", "type", "id", "priority"})
    if (request.contains(key)) ordered[key] = request[key];
  for (auto it = request.begin(); it != request.end(); ++it)
    if (!ordered.contains(it.key())) ordered[it.key()] = std::move(it.value());
  const std::vector<std::uint8_t> bytes = nlohmann::ordered_json::to_msgpack(ordered);
  send_raw(std::string(bytes.begin(), bytes.end()));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    // Wait for the reply in slices, reading the connection's events between them: a refused
    // CURVE key or a failed handshake ends the wait at once.
    const auto frame = receive_raw(static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
    drain_monitor();
    if (link_.auth_failed || link_.handshake_failed) throw client_error(no_reply_reason());
    if (!frame) continue;
    nlohmann::ordered_json reply;
    try {
      reply = nlohmann::ordered_json::from_msgpack(*frame);
    } catch (const std::exception& e) {
      throw client_error(std::string("undecodable reply: ") + e.what());
    }
    if (reply.is_object() && reply.contains("id") && reply["id"] == id) return reply;
    // A late reply to an earlier request that timed out: skip it.
  }
  drain_monitor();
  throw client_error(no_reply_reason());
}

const nlohmann::ordered_json& MarginClient::checked(const nlohmann::ordered_json& reply) {
  if (reply.value("type", "") == "error")
    throw service_error(reply.value("code", "internal"), reply.value("message", ""));
  return reply;
}

nlohmann::ordered_json MarginClient::ping() {
  nlohmann::ordered_json r = call({{"type", "ping"}});
  checked(r);
  return r;
}

nlohmann::ordered_json MarginClient::status() {
  nlohmann::ordered_json r = call({{"type", "status"}});
  checked(r);
  return r;
}

nlohmann::ordered_json portfolios_json(const std::vector<protocol::InlinePosition>& positions,
                                       const std::vector<protocol::InlineCollateral>& collateral) {
  std::map<std::string, std::size_t> index;
  nlohmann::ordered_json portfolios = nlohmann::ordered_json::array();
  for (const auto& p : positions) {
    auto [it, fresh] = index.emplace(p.account, portfolios.size());
    if (fresh) portfolios.push_back({{"account", p.account}, {"positions", nlohmann::ordered_json::array()}});
    portfolios[it->second]["positions"].push_back(nlohmann::ordered_json::array({p.instrument, p.quantity}));
  }
  for (const auto& c : collateral) {
    const auto it = index.find(c.account);
    if (it == index.end()) continue;
    auto& port = portfolios[it->second];
    if (!port.contains("collateral")) port["collateral"] = nlohmann::ordered_json::array();
    port["collateral"].push_back(nlohmann::ordered_json::array({c.asset, c.amount}));
  }
  return portfolios;
}

std::vector<protocol::InlineCollateral> read_inline_collateral(const std::string& path) {
  CsvReader csv(path, {"account", "asset", "amount"});
  std::vector<protocol::InlineCollateral> out;
  while (csv.next()) {
    protocol::InlineCollateral c{csv.required_text("account"), csv.required_text("asset"), csv.number("amount")};
    if (c.amount < 0) csv.fail("amount", "must be >= 0");
    out.push_back(std::move(c));
  }
  return out;
}

namespace {
nlohmann::ordered_json pairs_json(const std::vector<protocol::InlinePosition>& positions) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& p : positions) out.push_back(nlohmann::ordered_json::array({p.instrument, p.quantity}));
  return out;
}
}  // namespace

nlohmann::ordered_json MarginClient::margin(const std::vector<protocol::InlinePosition>& positions,
                                            const std::string& priority, const std::string& cycle_id,
                                            const std::vector<protocol::InlineCollateral>& collateral) {
  nlohmann::ordered_json req{{"type", "margin"}, {"priority", priority},
                             {"portfolios", portfolios_json(positions, collateral)}};
  if (!cycle_id.empty()) req["cycle_id"] = cycle_id;
  nlohmann::ordered_json r = call(std::move(req));
  checked(r);
  return r;
}

nlohmann::ordered_json MarginClient::whatif(const std::string& account,
                                            const std::vector<protocol::InlinePosition>& trades,
                                            const std::vector<protocol::InlinePosition>* positions) {
  nlohmann::ordered_json req{{"type", "whatif"}, {"account", account}, {"trades", pairs_json(trades)}};
  if (positions) req["positions"] = pairs_json(*positions);
  nlohmann::ordered_json r = call(std::move(req));
  checked(r);
  return r;
}

nlohmann::ordered_json MarginClient::greeks(const std::vector<std::string>& instruments) {
  nlohmann::ordered_json req{{"type", "greeks"}};
  if (!instruments.empty()) req["instruments"] = instruments;
  nlohmann::ordered_json r = call(std::move(req));
  checked(r);
  return r;
}

nlohmann::ordered_json MarginClient::net(const std::string& trades_path, const std::string& assets_path,
                                         const std::string& cycle_id) {
  nlohmann::ordered_json assets = nlohmann::ordered_json::array();
  {
    CsvReader csv(assets_path, {"asset", "scale"});
    while (csv.next()) assets.push_back(nlohmann::ordered_json::array({csv.required_text("asset"), csv.integer("scale")}));
  }
  nlohmann::ordered_json trades = nlohmann::ordered_json::array();
  std::vector<long> line_of;  // trades[i] -> its line in the file
  {
    CsvReader csv(trades_path, {"trade_id", "buyer", "seller", "base_asset", "quote_asset", "quantity", "price"});
    while (csv.next()) {
      nlohmann::ordered_json t = nlohmann::ordered_json::array();
      for (const char* f : {"trade_id", "buyer", "seller", "base_asset", "quote_asset", "quantity", "price"})
        t.push_back(csv.required_text(f));
      trades.push_back(std::move(t));
      line_of.push_back(csv.line());
    }
  }
  nlohmann::ordered_json req{{"type", "net"}, {"assets", std::move(assets)}, {"trades", std::move(trades)}};
  if (!cycle_id.empty()) req["cycle_id"] = cycle_id;
  nlohmann::ordered_json r = call(std::move(req));
  // The server names a bad trade `trades[i]: ...`: say the user's file and line instead.
  if (r.value("type", "") == "error") {
    const std::string message = r.value("message", "");
    const std::size_t close = message.find("]: ");
    if (message.rfind("trades[", 0) == 0 && close != std::string::npos) {
      const std::size_t i = std::strtoull(message.c_str() + 7, nullptr, 10);
      if (i < line_of.size())
        r["message"] = trades_path + ":" + std::to_string(line_of[i]) + ": " + message.substr(close + 3);
    }
  }
  checked(r);
  return r;
}

nlohmann::ordered_json MarginClient::market_update(const nlohmann::ordered_json& update) {
  nlohmann::ordered_json req = update;
  req["type"] = "market.update";
  nlohmann::ordered_json r = call(std::move(req));
  checked(r);
  return r;
}

namespace {
nlohmann::ordered_json trade_leg_json(const TradeInput& t) {
  nlohmann::ordered_json j{{"source", t.source},       {"trade_id", t.trade_id}, {"account", t.account},
                           {"instrument", t.instrument}, {"quantity", t.quantity_text}, {"price", t.price_text},
                           {"time", t.time}};
  if (t.side) j["side"] = *t.side == Side::buy ? "buy" : "sell";
  if (!t.signature_hex.empty()) j["signature"] = t.signature_hex;
  return j;
}
}  // namespace

nlohmann::ordered_json MarginClient::submit_trades(std::vector<TradeInput> legs, const std::string& package_id,
                                                   const std::string& signing_key_hex) {
  if (legs.empty()) throw usage_error("submit_trades: no trade");
  if (package_id.empty() && legs.size() != 1) throw usage_error("submit_trades: several trades need a package id");
  for (TradeInput& leg : legs) {
    leg.package_id = package_id;
    if (!signing_key_hex.empty()) leg.signature_hex = sign_trade_hex(parse_trade(leg), signing_key_hex);
  }
  nlohmann::ordered_json req{{"type", "trade.submit"}};
  if (package_id.empty()) {
    req["trade"] = trade_leg_json(legs[0]);
  } else {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const TradeInput& leg : legs) arr.push_back(trade_leg_json(leg));
    req["package"] = {{"package_id", package_id}, {"legs", std::move(arr)}};
  }
  return call(std::move(req));
}

nlohmann::ordered_json MarginClient::cancel_trade(const std::string& source, const std::string& trade_id,
                                                  const std::string& reason) {
  nlohmann::ordered_json req{{"type", "trade.cancel"}, {"source", source}, {"trade_id", trade_id}};
  if (!reason.empty()) req["reason"] = reason;
  return call(std::move(req));
}

nlohmann::ordered_json MarginClient::positions(const std::string& account) {
  nlohmann::ordered_json req{{"type", "positions.query"}};
  if (!account.empty()) req["account"] = account;
  nlohmann::ordered_json r = call(std::move(req));
  checked(r);
  return r;
}

nlohmann::ordered_json MarginClient::trades(const std::string& account, std::int64_t after_seq, std::int64_t limit) {
  nlohmann::ordered_json req{{"type", "trades.query"}, {"after_seq", after_seq}, {"limit", limit}};
  if (!account.empty()) req["account"] = account;
  nlohmann::ordered_json r = call(std::move(req));
  checked(r);
  return r;
}

std::vector<protocol::InlinePosition> read_inline_positions(const std::string& path) {
  CsvReader csv(path, {"account", "instrument", "quantity"});
  std::vector<protocol::InlinePosition> out;
  while (csv.next())
    out.push_back({csv.required_text("account"), csv.required_text("instrument"), csv.number("quantity")});
  return out;
}

std::vector<protocol::InlinePosition> read_inline_trades(const std::string& path, const std::string& account) {
  CsvReader csv(path, {"instrument", "quantity"});
  std::vector<protocol::InlinePosition> out;
  while (csv.next()) {
    if (csv.has("account") && !csv.text("account").empty() && csv.text("account") != account)
      csv.fail("account", "trade for '" + csv.text("account") + "' in a what-if for '" + account + "'");
    out.push_back({account, csv.required_text("instrument"), csv.number("quantity")});
  }
  return out;
}

}  // namespace marginet
