#pragma once
// The margin service protocol (SPEC §7; the reference is docs/protocol.md): one ZeroMQ frame =
// one msgpack map {"v": 1, "type": ..., "id": ..., payload...}.
//
// Decoding is hardened (STYLE.md, msgpack-cxx): the frame size is checked first (too_large),
// msgpack's unpack_limit is derived from the frame size (no array, map or string may declare
// more elements than the frame has bytes, and never more than the configured caps), the depth
// is bounded, the whole frame must be consumed, and every decoder or validation failure becomes
// a protocol_error carrying an ErrorCode — which the server turns into an `error` reply.
//
// Encoding of replies lives here too, so that every reply has the same envelope.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "host/margin_engine.hpp"

namespace marginet::protocol {

inline constexpr int kVersion = 1;

enum class ErrorCode {
  bad_request, unsupported_version, unknown_instrument, too_large, busy, internal,
  // trade capture (docs/clearing.md): a resend of (source, trade_id) with other contents, a
  // missing or invalid signature of a member with a key, a package refused by the pre-trade
  // check, a cancel of a trade never recorded, a request that needs the clearing store.
  conflict, bad_signature, insufficient_margin, not_found, no_store,
  // collateral (docs/clearing.md): a withdrawal that would leave IM uncovered, or more than the
  // balance; a request that needs the settlement link (--scheduler) to the scheduler.
  insufficient_collateral
};
const char* error_code_name(ErrorCode code);

/// A request that cannot be served; `id_raw` is the request's id (msgpack bytes) when it could
/// be read, so that the error reply still correlates.
class protocol_error : public std::runtime_error {
 public:
  protocol_error(ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ErrorCode code() const noexcept { return code_; }
  const std::string& id_raw() const noexcept { return id_raw_; }
  void set_id_raw(std::string id) { id_raw_ = std::move(id); }

 private:
  ErrorCode code_;
  std::string id_raw_;
};

struct Limits {
  std::size_t max_frame_bytes = std::size_t(4) << 20;  // larger frames: too_large
  std::size_t max_depth = 6;                           // nesting of arrays/maps
  std::size_t max_array = std::size_t(1) << 18;        // elements of one array (and ≤ frame bytes)
  std::size_t max_map = 64;                            // keys of one map
  std::size_t max_string = 4096;                       // bytes of one string
  // The bytes of all strings a decoded request holds (every std::string of the Request, the
  // id_raw included): at most string_bytes_factor × frame bytes + string_bytes_slack, else
  // too_large. Names repeated per element are shared (RequestPosition::account), so a valid
  // request stays far below; the cap is the guarantee that no frame decodes into more.
  std::size_t string_bytes_factor = 2;
  std::size_t string_bytes_slack = std::size_t(64) << 10;
};

/// Identifiers of the collateral and call requests (account, asset, reference, run_id): 1 to
/// 128 bytes of printable ASCII (0x21..0x7e) other than ',' (they name CSV fields and keys).
inline constexpr std::size_t kMaxIdentifierBytes = 128;

/// Values that make no sense are bad_request (docs/protocol.md "Limits and hardening").
inline constexpr double kMaxQuantity = 1e12;           // |quantity| of a position or trade
inline constexpr double kMaxPrice = 1e12;              // index and mark prices: (0, 1e12]
inline constexpr double kMaxAbsRate = 10;              // |rate| (10 = 1000 %)
inline constexpr double kMaxIv = 100;                  // mark_iv: (0, 100]
inline constexpr double kMaxCollateralAmount = 1e15;   // margin collateral amounts: [0, 1e15]
inline constexpr double kMaxUnixTime = 253402300799;   // valuation_time: [0, 9999-12-31T23:59:59Z]
/// The server copies an account's name into each position it margins (models::Position): a
/// margin or whatif request whose positions × account-name bytes exceed this is too_large.
inline constexpr std::size_t kMaxPositionNameBytes = std::size_t(64) << 20;

enum class RequestType {
  ping, status, greeks, margin, whatif, net, market_update,
  trade_submit, trade_cancel, trades_query, positions_query,
  collateral_deposit, collateral_withdraw, collateral_query, calls_run, calls_query, default_declare
};
/// "ping", "status", "greeks", "margin", "whatif", "net", "market.update", "trade.submit",
/// "trade.cancel", "trades.query", "positions.query", "collateral.deposit",
/// "collateral.withdraw", "collateral.query", "calls.run", "calls.query", "default.declare".
const char* request_type_name(RequestType type);

enum class Priority { normal, high };
const char* priority_name(Priority priority);

/// One inline position or trade as a client builds a request (service/margin/client.hpp):
/// account, instrument by id, signed quantity. Decoded requests use RequestPosition.
struct InlinePosition {
  std::string account;
  std::string instrument;
  double quantity = 0;
};

/// Collateral held by an account as a client builds a margin request: `amount` units of
/// `asset`. Decoded requests use RequestCollateral.
struct InlineCollateral {
  std::string account, asset;
  double amount = 0;
};

/// An account name shared by every position, trade and collateral row of one account in a
/// decoded request: the name is stored once per request, however many rows name it (a 4 MB
/// frame of a million positions of one 4,000-byte account holds the name once, not a million
/// times). Immutable; converts to `const std::string&`; copies share the name.
class SharedName {
 public:
  SharedName();                           // ""
  explicit SharedName(std::string name);
  const std::string& str() const noexcept { return *name_; }
  operator const std::string&() const noexcept { return *name_; }  // NOLINT: a name is a string
  std::size_t size() const noexcept { return name_->size(); }
  bool empty() const noexcept { return name_->empty(); }
  /// True when both share the same stored name (not merely equal text).
  bool same_storage(const SharedName& other) const noexcept { return name_ == other.name_; }
  friend bool operator==(const SharedName& a, const SharedName& b) { return a.str() == b.str(); }
  friend bool operator==(const SharedName& a, std::string_view b) { return a.str() == b; }
  friend bool operator==(const SharedName& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const SharedName& a, const char* b) { return a.str() == b; }
  friend std::ostream& operator<<(std::ostream& out, const SharedName& n) { return out << n.str(); }

 private:
  std::shared_ptr<const std::string> name_;
};

/// One position (margin, whatif) or trade (whatif) of a decoded request: the account's shared
/// name, the instrument by id, the signed quantity (finite, |q| ≤ kMaxQuantity).
struct RequestPosition {
  SharedName account;
  std::string instrument;
  double quantity = 0;
};

/// Collateral of a decoded margin request: `amount` units of `asset` (0 ≤ amount ≤ 1e15).
struct RequestCollateral {
  SharedName account;
  std::string asset;
  double amount = 0;
};

struct MarginRequest {
  std::vector<RequestPosition> positions;     // every portfolio, accounts in request order
  std::vector<RequestCollateral> collateral;  // optional, per portfolio
  std::vector<std::string> accounts;          // distinct accounts, in request order
  std::string cycle_id;                       // optional: the settlement cycle of the PUSH
};

struct WhatIfRequest {
  std::string account;
  std::vector<RequestPosition> trades;    // every one of `account`
  bool has_positions = false;             // the account's book inline (else the server's book)
  std::vector<RequestPosition> positions;
};

struct GreeksRequest {
  std::vector<std::string> instruments;   // empty: every instrument
};

struct NetTrade {
  std::string trade_id, buyer, seller, base_asset, quote_asset, quantity, price;  // decimal text
};
struct NetAsset {
  std::string asset;
  std::int64_t scale = 0;
};
struct NetRequest {
  std::vector<NetAsset> assets;
  std::vector<NetTrade> trades;
  std::string cycle_id;                   // optional
  double deadline = 0;                    // optional, Unix seconds; 0 = one hour from now
};

inline constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();
struct UnderlyingUpdate {
  std::string underlying;
  double index_price = kUnset, rate = kUnset, valuation_time = kUnset;  // NaN: keep
};
struct MarkUpdate {
  std::string instrument;
  double mark_price = kUnset, mark_iv = kUnset;                          // NaN: keep
};
struct MarketUpdate {
  std::vector<UnderlyingUpdate> underlyings;
  std::vector<MarkUpdate> marks;
};

/// One trade (or one leg of a package) as submitted: exact decimals stay text.
struct TradeLeg {
  std::string source, trade_id, account, instrument;
  std::string quantity;                   // signed decimal, or positive with `side`
  std::string side;                       // "", "buy" or "sell"
  std::string price, time;                // decimal text; ISO 8601 UTC
  std::string package_id;                 // the package's id for its legs, else ""
  std::string signature;                  // hex Ed25519 signature, "" = none
};
/// trade.submit: one trade, or one package (RFQ / block trade) recorded all or nothing.
struct TradeSubmitRequest {
  std::vector<TradeLeg> legs;             // one entry for a single trade
  bool is_package = false;
};
struct TradeCancelRequest {
  std::string source, trade_id, reason, time;
};
struct TradesQueryRequest {
  std::string account, instrument;        // "" = any
  std::int64_t after_seq = 0;
  std::int64_t limit = 1000;              // 1..10,000
};
struct PositionsQueryRequest {
  std::string account;                    // "" = every account
};

/// collateral.deposit / collateral.withdraw: `amount` units of `asset` (exact decimal text in the
/// asset's scale, > 0; a withdrawal may say "excess": all that IM leaves free).
struct CollateralChangeRequest {
  std::string account, asset, amount;
  std::string reference;                  // idempotency key; "" = none (every request is new)
};
struct CollateralQueryRequest {
  std::string account;                    // "" = every account
};
/// calls.run: margin every account of the store's book and make the calls (docs/clearing.md).
struct CallsRunRequest {
  std::string run_id;                     // "" = generated; an existing id answers that run
  std::string kind = "on_demand";         // "eod" | "intraday" | "on_demand"
};
struct CallsQueryRequest {
  std::string run_id;                     // "" = the latest run
};
/// default.declare: the operator declares a member in default (docs/default-management.md).
struct DefaultDeclareRequest {
  std::string member;
  std::string reason;                     // free text, kept with the default
  std::string default_id;                 // "" = generated
};

struct Request {
  int version = kVersion;
  RequestType type = RequestType::ping;
  std::string id_raw;                     // the id as msgpack bytes (nil when absent), echoed
  Priority priority = Priority::normal;
  MarginRequest margin;
  WhatIfRequest whatif;
  GreeksRequest greeks;
  NetRequest net;
  MarketUpdate market;
  TradeSubmitRequest trade_submit;
  TradeCancelRequest trade_cancel;
  TradesQueryRequest trades_query;
  PositionsQueryRequest positions_query;
  CollateralChangeRequest collateral_change;  // deposit and withdraw
  CollateralQueryRequest collateral_query;
  CallsRunRequest calls_run;
  CallsQueryRequest calls_query;
  DefaultDeclareRequest default_declare;
};

/// Decodes and validates one frame. Throws protocol_error (never anything else for bad bytes).
Request decode_request(std::string_view frame, const Limits& limits = {});

/// The priority of a request that names none: high for whatif, trade.submit, trade.cancel,
/// collateral.deposit and collateral.withdraw (intraday work); normal for the others.
Priority default_priority(RequestType type);

/// The envelope of a request, read without decoding its payload.
struct RequestHeader {
  int version = kVersion;
  RequestType type = RequestType::ping;
  std::string id_raw;                     // as Request::id_raw (nil when absent)
  Priority priority = Priority::normal;   // as decode_request gives it (defaults included)
};

/// Reads v, type, id and priority of a frame, so that the socket thread can answer ping and
/// status at once and hand a large frame to another thread to decode. Cheap by construction:
/// it walks the top-level map's keys in place and stops once it has all four; the values of
/// other keys met before that are skipped by a scan of the bytes that allocates nothing and
/// builds no object (strings by their length, arrays and maps element by element, with the
/// depth and size limits of decode_request). A client that puts v, type, id and priority
/// first is peeked in O(1); without a priority the whole top-level map is scanned (still
/// without allocating). It allocates only the id (and an error message).
///
/// Throws protocol_error as decode_request does when the header is bad: the frame size
/// (too_large), not a msgpack map, non-string or duplicate top-level keys among those read, a
/// bad id, v (bad_request / unsupported_version), type (missing, not a string, unknown) or
/// priority; a truncated or over-limit value met while scanning. It does not validate the
/// payload: a frame it accepts may still be refused by decode_request, which stays the
/// authority. When both succeed they agree on version, type, id_raw and priority.
RequestHeader peek_request(std::string_view frame, const Limits& limits = {});

/// The msgpack nil: the id of replies to requests whose id could not be read.
std::string nil_id();

// --- replies -------------------------------------------------------------------------------

std::string encode_error(std::string_view id_raw, ErrorCode code, std::string_view message);
std::string encode_pong(std::string_view id_raw, double server_time);

struct StatusInfo {
  double uptime_s = 0;
  std::string backend, device, model;
  std::size_t instruments = 0, book_accounts = 0;
  std::size_t queue_high = 0, queue_normal = 0, queue_capacity = 0;
  std::uint64_t batches_run = 0, requests_total = 0, margin_requests = 0, errors = 0, busy = 0;
  double requests_per_s = 0;              // over the uptime
  double batch_window_us = 0;
  std::size_t max_batch = 0;
  bool computing = false;                 // a batch is running now
  double latency_p50_us = 0, latency_p99_us = 0, latency_max_us = 0;  // over recent requests
  std::size_t latency_samples = 0;
  std::uint64_t market_updates = 0;
  bool curve = false;
  bool store = false;                     // a clearing store is open (--store)
  std::int64_t journal_entries = 0;       // its journal's length (trades and cancels)
  // The outbox to the scheduler (docs/clearing.md): cycles not yet acknowledged, acknowledged
  // but not yet settled, and the oldest unacknowledged one (id and age in seconds).
  bool scheduler = false;                 // a settlement link is configured (--scheduler)
  std::int64_t outbox_unacked = 0, outbox_unsettled = 0;
  std::string outbox_oldest_unacked;
  double outbox_oldest_unacked_age_s = 0;
  std::uint64_t acks_received = 0, reports_applied = 0;
  // Replies waiting in the server for slow clients (bytes), and those dropped beyond the bounds.
  std::size_t unsent_replies_bytes = 0;
  std::uint64_t replies_dropped_slow = 0;
};
/// status.result; the outbox fields go under a nested "outbox" map (always present).
std::string encode_status(std::string_view id_raw, const StatusInfo& info);

/// Batch facts carried by a margin.result.
struct BatchInfo {
  std::size_t requests = 1, positions = 0;
  double compute_us = 0, queued_us = 0;
};
/// One account's result as margin.result and whatif.result carry it, and as `marginet margin
/// --format json` prints it (one definition of the fields): msgpack bytes of a map.
std::string encode_account(const AccountMargin& account, const ScenarioSet& scenarios, const Methodology& methodology);
std::string encode_margin_result(std::string_view id_raw, const std::string& model,
                                 const std::vector<const AccountMargin*>& accounts,
                                 const ScenarioSet& scenarios, const BatchInfo& batch,
                                 const std::string& cycle_id, const Methodology& methodology);
/// Where a what-if's time went in the server (microseconds): decoding its frame, from receipt to
/// the engine (queue and hand-off to the compute thread; near 0 on the fast lane), the engine.
struct WhatIfTiming {
  double decode_us = 0, queue_us = 0, engine_us = 0;
  bool fast_lane = false;  // answered on the socket thread
};
std::string encode_whatif_result(std::string_view id_raw, const std::string& account, const WhatIfResult& w,
                                 const ScenarioSet& scenarios, const WhatIfTiming& timing, const Methodology& methodology);

/// One greeks row per instrument (columns of `marginet greeks`).
struct GreeksRow {
  std::string id;
  double values[11];  // price, price_coin, delta, delta_coin, gamma, vega, theta, rho, vanna, volga, iv
};
const std::vector<std::string>& greeks_columns();  // the 11 names above
std::string encode_greeks_result(std::string_view id_raw, const std::vector<GreeksRow>& rows);

struct NetRow {
  std::string member, asset, net;
  std::int64_t net_minor = 0;
};
struct NetAssetRow {
  std::string asset;
  std::int64_t scale = 0, gross_deliveries = 0, pay_ins = 0, pay_outs = 0;
  std::int64_t payers = 0, receivers = 0;
  double efficiency = 0;
};
std::string encode_net_result(std::string_view id_raw, const std::vector<NetRow>& nets,
                              const std::vector<NetAssetRow>& assets, const std::string& cycle_id,
                              std::size_t instructions);

// --- trade capture replies (docs/protocol.md "Trade capture") ---

/// The pre-trade check of a package: figures in the methodology's quote currency (USD).
struct PretradeCheck {
  double im_before = 0, im_after = 0, collateral_value = 0, headroom = 0;
  std::string units = "USD";
};
struct RecordedLeg {
  std::string trade_id;
  std::int64_t journal_seq = 0;
};
/// outcome: "recorded" or "duplicate".
std::string encode_trade_submit_result(std::string_view id_raw, std::string_view outcome,
                                       const std::string& package_id, const std::vector<RecordedLeg>& legs,
                                       const PretradeCheck* pretrade, double store_us);
/// An `error` reply of a refused submission: code and message, the leg at fault (−1: none) and,
/// for insufficient_margin, the figures.
std::string encode_trade_refused(std::string_view id_raw, ErrorCode code, std::string_view message, int leg,
                                 const PretradeCheck* pretrade);
/// outcome: "cancelled" or "duplicate".
std::string encode_trade_cancel_result(std::string_view id_raw, std::string_view outcome, std::int64_t journal_seq);

struct TradeRow {
  std::int64_t seq = 0;
  std::string kind, source, trade_id, account, instrument, quantity, price, time, package_id;
  bool signed_ = false;
};
std::string encode_trades_query_result(std::string_view id_raw, const std::vector<TradeRow>& rows, bool more);

struct PositionRowText {
  std::string account, instrument, quantity;  // quantity: exact decimal text
};
std::string encode_positions_query_result(std::string_view id_raw, const std::vector<PositionRowText>& rows);

// --- collateral and calls replies (docs/protocol.md "Collateral and calls") ---

/// IM and collateral values of a withdrawal's check, in the methodology's quote currency.
struct CollateralFigures {
  double im = 0, value_before = 0, value_after = 0;
  std::string units = "USD";
};
/// collateral.deposit.result / collateral.withdraw.result (`type` says which). outcome:
/// "recorded" or "duplicate"; amount and balance: exact decimal text of the asset; movement_seq:
/// the movement's number; figures: the withdrawal's check (nullptr for a deposit); cycle_id: the
/// withdrawal's pay-out cycle in the outbox ("" = none).
struct CollateralChangeResult {
  std::string outcome, account, asset, amount, balance;
  std::int64_t movement_seq = 0;
  const CollateralFigures* figures = nullptr;
  std::string cycle_id;
};
std::string encode_collateral_change_result(std::string_view id_raw, RequestType type, const CollateralChangeResult& r);
/// An `error` reply (insufficient_collateral) of a refused withdrawal, with its figures.
std::string encode_collateral_refused(std::string_view id_raw, std::string_view message, const CollateralFigures& figures);

struct BalanceRowText {
  std::string account, asset, amount;     // amount: exact decimal text
  std::int64_t amount_minor = 0;
  int scale = 0;
};
std::string encode_collateral_query_result(std::string_view id_raw, const std::vector<BalanceRowText>& rows);

/// One account of a call run. Risk figures in `units`; call and settled exact decimal text of
/// the run's settlement asset; state: "none" (no call), "pending" (in the outbox or at the
/// scheduler), "final", "defaulted", "rejected".
struct CallRowText {
  std::string account;
  double im = 0, mm = 0, collateral_value = 0;
  std::string call, settled, state, instruction_id;
};
struct CallRunText {
  std::string run_id, kind, at, model, asset, units = "USD";
  int scale = 0;
  std::string cycle_id;                   // "" when the run made no call
  std::string cycle_state;                // outbox: "none" | "pending" | "recorded" | "settled" | "rejected"
  std::string total_call;                 // exact decimal text
  std::string outcome;                    // calls.run: "recorded" | "duplicate"; calls.query: ""
  double compute_ms = 0;
  std::vector<CallRowText> calls;
};
/// `type` is calls_run or calls_query (reply type "calls.run.result" / "calls.query.result").
std::string encode_calls_result(std::string_view id_raw, RequestType type, const CallRunText& run);

std::string encode_market_update_result(std::string_view id_raw, std::size_t underlyings, std::size_t marks,
                                        double recompute_us, std::size_t book_accounts);

/// A default as the service reports it: amounts as exact decimals of the fund's currency.
struct DefaultStepText {
  std::string layer, member, available, absorbed, remaining;
};
struct DefaultResultText {
  std::string default_id, member, outcome, reason, declared_at, currency;
  std::string loss, covered, uncovered;
  double close_out_loss = 0;              // the risk figure behind `loss` (currency)
  std::string close_out_scenario;
  std::int64_t positions = 0;             // positions closed out and moved to the house account
  std::vector<DefaultStepText> steps;
};
/// "default.declare.result": the facts, then the waterfall as a table
/// (layer, member, available, absorbed, remaining).
std::string encode_default_result(std::string_view id_raw, const DefaultResultText& d);

}  // namespace marginet::protocol
