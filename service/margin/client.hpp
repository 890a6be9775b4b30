#pragma once
// A C++ client of the margin service (docs/protocol.md), used by `marginet client` and the
// tests: one DEALER socket, requests built as JSON values and sent as msgpack, replies matched
// to requests by id (stale replies of timed-out requests are skipped).
//
//   MarginClient client({"tcp://127.0.0.1:7400"});
//   nlohmann::ordered_json r = client.call({{"type", "margin"}, {"portfolios", ...}});
//   if (r["type"] == "error") ... r["code"], r["message"]
//
// The typed helpers throw service_error on an `error` reply and client_error on a timeout.

#include <zmq.hpp>

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "service/clearing/trade.hpp"
#include "service/margin/curve.hpp"
#include "service/margin/protocol.hpp"

namespace marginet {

/// No reply within the timeout, or the connection could not be set up; the message says which
/// (nothing listening, the server refused this client's CURVE key, a handshake that never
/// completed, or a server that did not answer in time). The CLI exits 3 on it.
class client_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The server answered with an `error` reply.
class service_error : public std::runtime_error {
 public:
  service_error(std::string code, const std::string& message)
      : std::runtime_error(code + ": " + message), code_(std::move(code)) {}
  const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

struct ClientOptions {
  std::string endpoint = "tcp://127.0.0.1:7400";
  int timeout_ms = 30'000;
  std::string server_key_file;  // the server's NAME.pub: CURVE on when set
  std::string client_key_file;  // this client's NAME.key
};

class MarginClient {
 public:
  explicit MarginClient(ClientOptions options);
  ~MarginClient();
  MarginClient(const MarginClient&) = delete;
  MarginClient& operator=(const MarginClient&) = delete;

  /// Fills in "v" and "id" (when absent), sends, and returns the reply with that id (any type,
  /// `error` included). client_error on a timeout, or at once when the server refuses this
  /// client's CURVE key.
  nlohmann::ordered_json call(nlohmann::ordered_json request);

  /// Raw frames (tests of the decoder): send any bytes; receive the next reply frame.
  void send_raw(const std::string& frame);
  std::optional<std::string> receive_raw(int timeout_ms);

  // Typed helpers: the reply on success, service_error on an `error` reply.
  nlohmann::ordered_json ping();
  nlohmann::ordered_json status();
  nlohmann::ordered_json margin(const std::vector<protocol::InlinePosition>& positions,
                                const std::string& priority = "normal", const std::string& cycle_id = "",
                                const std::vector<protocol::InlineCollateral>& collateral = {});
  nlohmann::ordered_json whatif(const std::string& account, const std::vector<protocol::InlinePosition>& trades,
                                const std::vector<protocol::InlinePosition>* positions = nullptr);
  nlohmann::ordered_json greeks(const std::vector<std::string>& instruments = {});
  nlohmann::ordered_json net(const std::string& trades_csv_path, const std::string& assets_csv_path,
                             const std::string& cycle_id = "");
  nlohmann::ordered_json market_update(const nlohmann::ordered_json& update);

  // Trade capture (a server with --store). Refusals (conflict, bad_signature,
  // insufficient_margin, ...) are answers, not failures: these return the reply as it came.
  /// One trade (`package_id` empty, one leg) or a package of legs recorded all or nothing. With
  /// a signing key (128 hex digits, or a 64-hex-digit seed: `marginet members keygen`) every leg
  /// is signed over its canonical encoding (service/clearing/trade.hpp); input_error when a leg
  /// is malformed and cannot be signed.
  nlohmann::ordered_json submit_trades(std::vector<TradeInput> legs, const std::string& package_id = "",
                                       const std::string& signing_key_hex = "");
  nlohmann::ordered_json cancel_trade(const std::string& source, const std::string& trade_id,
                                      const std::string& reason = "");
  nlohmann::ordered_json positions(const std::string& account = "");
  nlohmann::ordered_json trades(const std::string& account = "", std::int64_t after_seq = 0, std::int64_t limit = 1000);

  /// Throws service_error when `reply` is an `error`.
  static const nlohmann::ordered_json& checked(const nlohmann::ordered_json& reply);

 private:
  /// What the socket's monitor has said about the connection so far.
  struct Link {
    bool connected = false, handshake_ok = false, refused = false, auth_failed = false, handshake_failed = false;
  };
  void drain_monitor();
  /// Why no reply came, from what the monitor saw.
  std::string no_reply_reason() const;

  ClientOptions options_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  zmq::socket_t monitor_;   // PAIR receiving the socket's connection events
  Link link_;
  std::uint64_t next_id_ = 1;
};

/// positions.csv (account,instrument,quantity) read without an instrument table: the server
/// resolves the ids. input_error naming file, line and field.
std::vector<protocol::InlinePosition> read_inline_positions(const std::string& path);
/// A what-if trades file (instrument,quantity; an optional account column must name `account`).
std::vector<protocol::InlinePosition> read_inline_trades(const std::string& path, const std::string& account);
/// collateral.csv (account,asset,amount).
std::vector<protocol::InlineCollateral> read_inline_collateral(const std::string& path);
/// Portfolios of a margin request: one per account, in order of first appearance; collateral
/// joins the portfolio of its account (holdings of accounts without positions are dropped).
nlohmann::ordered_json portfolios_json(const std::vector<protocol::InlinePosition>& positions,
                                       const std::vector<protocol::InlineCollateral>& collateral = {});

}  // namespace marginet
