#include "service/margin/protocol.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <new>
#include <optional>
#include <set>

#include "models/csv.hpp"
#include "models/money.hpp"

namespace marginet::protocol {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::bad_request: return "bad_request";
    case ErrorCode::unsupported_version: return "unsupported_version";
    case ErrorCode::unknown_instrument: return "unknown_instrument";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::busy: return "busy";
    case ErrorCode::internal: return "internal";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::bad_signature: return "bad_signature";
    case ErrorCode::insufficient_margin: return "insufficient_margin";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::no_store: return "no_store";
    case ErrorCode::insufficient_collateral: return "insufficient_collateral";
  }
  return "internal";
}

const char* request_type_name(RequestType type) {
  switch (type) {
    case RequestType::ping: return "ping";
    case RequestType::status: return "status";
    case RequestType::greeks: return "greeks";
    case RequestType::margin: return "margin";
    case RequestType::whatif: return "whatif";
    case RequestType::net: return "net";
    case RequestType::market_update: return "market.update";
    case RequestType::trade_submit: return "trade.submit";
    case RequestType::trade_cancel: return "trade.cancel";
    case RequestType::trades_query: return "trades.query";
    case RequestType::positions_query: return "positions.query";
    case RequestType::collateral_deposit: return "collateral.deposit";
    case RequestType::collateral_withdraw: return "collateral.withdraw";
    case RequestType::collateral_query: return "collateral.query";
    case RequestType::calls_run: return "calls.run";
    case RequestType::calls_query: return "calls.query";
    case RequestType::default_declare: return "default.declare";
  }
  return "?";
}

const char* priority_name(Priority priority) { return priority == Priority::high ? "high" : "normal"; }

Priority default_priority(RequestType type) {
  switch (type) {
    case RequestType::whatif:               // RFQ what-if is intraday work
    case RequestType::trade_submit:         // capture latency is intraday work
    case RequestType::trade_cancel:
    case RequestType::collateral_deposit:   // a member waits on its collateral
    case RequestType::collateral_withdraw:
      return Priority::high;
    default:
      return Priority::normal;
  }
}

SharedName::SharedName() {
  static const std::shared_ptr<const std::string> empty = std::make_shared<const std::string>();
  name_ = empty;
}
SharedName::SharedName(std::string name) : name_(std::make_shared<const std::string>(std::move(name))) {}

namespace {

using msgpack::object;
namespace mt = msgpack::type;

[[noreturn]] void bad(const std::string& what) { throw protocol_error(ErrorCode::bad_request, what); }

const char* kind_name(const object& o) {
  switch (o.type) {
    case mt::NIL: return "nil";
    case mt::BOOLEAN: return "bool";
    case mt::POSITIVE_INTEGER:
    case mt::NEGATIVE_INTEGER: return "int";
    case mt::FLOAT32:
    case mt::FLOAT64: return "float";
    case mt::STR: return "str";
    case mt::BIN: return "bin";
    case mt::ARRAY: return "array";
    case mt::MAP: return "map";
    case mt::EXT: return "ext";
  }
  return "?";
}

/// A map viewed by key; duplicate keys and non-string keys are bad requests.
class MapView {
 public:
  MapView(const object& o, std::string where) : where_(std::move(where)) {
    if (o.type != mt::MAP) bad(where_ + ": expected a map, got " + kind_name(o));
    map_ = &o.via.map;
    for (std::uint32_t i = 0; i < map_->size; ++i) {
      const object& k = map_->ptr[i].key;
      if (k.type != mt::STR) bad(where_ + ": map keys must be strings");
      for (std::uint32_t j = 0; j < i; ++j)
        if (std::string_view(map_->ptr[j].key.via.str.ptr, map_->ptr[j].key.via.str.size) ==
            std::string_view(k.via.str.ptr, k.via.str.size))
          bad(where_ + ": duplicate key '" + std::string(k.via.str.ptr, k.via.str.size) + "'");
    }
  }
  const object* find(std::string_view key) const {
    for (std::uint32_t i = 0; i < map_->size; ++i) {
      const object& k = map_->ptr[i].key;
      if (std::string_view(k.via.str.ptr, k.via.str.size) == key) return &map_->ptr[i].val;
    }
    return nullptr;
  }
  const object& at(std::string_view key) const {
    const object* o = find(key);
    if (!o) bad(where_ + ": missing field '" + std::string(key) + "'");
    return *o;
  }
  std::string field(std::string_view key) const { return where_ + "." + std::string(key); }
  const std::string& where() const { return where_; }

 private:
  const msgpack::object_map* map_ = nullptr;
  std::string where_;
};

// ---- the string budget (Limits::string_bytes_factor) ------------------------------------------

/// The string bytes the request being decoded may still take: set by decode_request for its
/// duration (RAII, per thread), charged by every helper that stores a string in the Request.
thread_local std::size_t* t_string_budget = nullptr;

class StringBudget {
 public:
  explicit StringBudget(std::size_t bytes) : left_(bytes), outer_(t_string_budget) { t_string_budget = &left_; }
  ~StringBudget() { t_string_budget = outer_; }
  StringBudget(const StringBudget&) = delete;
  StringBudget& operator=(const StringBudget&) = delete;

 private:
  std::size_t left_;
  std::size_t* outer_;
};

void charge(std::size_t bytes) {
  if (t_string_budget == nullptr) return;
  if (bytes > *t_string_budget)
    throw protocol_error(ErrorCode::too_large,
                         "the decoded request would hold more string bytes than the limit (2 x the frame "
                         "size + 64 KiB): split the request or shorten repeated names");
  *t_string_budget -= bytes;
}

std::string as_string(const object& o, const std::string& where) {
  if (o.type != mt::STR) bad(where + ": expected a string, got " + kind_name(o));
  charge(o.via.str.size);
  return std::string(o.via.str.ptr, o.via.str.size);
}

std::string as_nonempty_string(const object& o, const std::string& where) {
  if (o.type == mt::STR && o.via.str.size == 0) bad(where + ": must not be empty");
  return as_string(o, where);
}

bool is_number(const object& o) {
  return o.type == mt::POSITIVE_INTEGER || o.type == mt::NEGATIVE_INTEGER || o.type == mt::FLOAT32 ||
         o.type == mt::FLOAT64;
}

/// The value of a number object (is_number(o)).
double number_of(const object& o) {
  switch (o.type) {
    case mt::POSITIVE_INTEGER: return static_cast<double>(o.via.u64);
    case mt::NEGATIVE_INTEGER: return static_cast<double>(o.via.i64);
    default: return o.via.f64;
  }
}

double as_number(const object& o, const std::string& where) {
  if (!is_number(o)) bad(where + ": expected a number, got " + kind_name(o));
  const double v = number_of(o);
  if (!std::isfinite(v)) bad(where + ": must be finite");
  return v;
}

std::int64_t as_integer(const object& o, const std::string& where) {
  if (o.type == mt::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      bad(where + ": integer out of range");
    return static_cast<std::int64_t>(o.via.u64);
  }
  if (o.type == mt::NEGATIVE_INTEGER) return o.via.i64;
  bad(where + ": expected an integer, got " + kind_name(o));
}

/// Decimal text kept exact: a string, or an integer written out.
std::string as_decimal_text(const object& o, const std::string& where) {
  if (o.type == mt::STR) return as_nonempty_string(o, where);
  if (o.type == mt::POSITIVE_INTEGER || o.type == mt::NEGATIVE_INTEGER) {
    std::string text = std::to_string(as_integer(o, where));
    charge(text.size());
    return text;
  }
  bad(where + ": expected decimal text (a string) or an integer, got " + kind_name(o));
}

/// An identifier of the collateral and call requests (kMaxIdentifierBytes).
std::string as_identifier(const object& o, const std::string& where) {
  if (o.type != mt::STR) bad(where + ": expected a string, got " + kind_name(o));
  const std::string_view v(o.via.str.ptr, o.via.str.size);
  if (v.empty()) bad(where + ": must not be empty");
  if (v.size() > kMaxIdentifierBytes) bad(where + ": longer than " + std::to_string(kMaxIdentifierBytes) + " bytes");
  for (const char c : v)
    if (c < 0x21 || c > 0x7e || c == ',') bad(where + ": must be printable ASCII without spaces or commas");
  return as_string(o, where);
}

const msgpack::object_array& as_array(const object& o, const std::string& where) {
  if (o.type != mt::ARRAY) bad(where + ": expected an array, got " + kind_name(o));
  return o.via.array;
}

double as_quantity(const object& o, const std::string& where) {
  const double q = as_number(o, where);
  if (std::fabs(q) > kMaxQuantity) bad(where + ": |quantity| must be at most 1e12");
  return q;
}

/// [instrument, quantity] or {"instrument": ..., "quantity": ...}
RequestPosition as_position(const object& o, const SharedName& account, const std::string& where) {
  RequestPosition p{account, {}, 0};
  if (o.type == mt::ARRAY) {
    if (o.via.array.size != 2) bad(where + ": expected [instrument, quantity]");
    p.instrument = as_nonempty_string(o.via.array.ptr[0], where + "[0]");
    p.quantity = as_quantity(o.via.array.ptr[1], where + "[1]");
  } else {
    MapView m(o, where);
    p.instrument = as_nonempty_string(m.at("instrument"), m.field("instrument"));
    p.quantity = as_quantity(m.at("quantity"), m.field("quantity"));
  }
  return p;
}

/// Appends the positions of one account; every one shares `account` (no copy of the name).
void append_positions(const object& o, const SharedName& account, const std::string& where,
                      std::vector<RequestPosition>& out) {
  const auto& a = as_array(o, where);
  for (std::uint32_t i = 0; i < a.size; ++i) {
    const object& e = a.ptr[i];
    // The common form, valid: [instrument, quantity] without building a location text.
    if (e.type == mt::ARRAY && e.via.array.size == 2) {
      const object& id = e.via.array.ptr[0];
      const object& q = e.via.array.ptr[1];
      if (id.type == mt::STR && id.via.str.size > 0 && is_number(q)) {
        const double v = number_of(q);
        if (std::isfinite(v) && std::fabs(v) <= kMaxQuantity) {
          charge(id.via.str.size);
          out.push_back(RequestPosition{account, std::string(id.via.str.ptr, id.via.str.size), v});
          continue;
        }
      }
    }
    out.push_back(as_position(e, account, where + "[" + std::to_string(i) + "]"));  // or the error
  }
}

double optional_number(const MapView& m, std::string_view key) {
  const object* o = m.find(key);
  if (!o || o->type == mt::NIL) return kUnset;
  return as_number(*o, m.field(key));
}

double as_time(const object& o, const std::string& where) {
  if (o.type == mt::STR) {
    const auto t = parse_iso8601_utc(std::string_view(o.via.str.ptr, o.via.str.size));
    if (!t) bad(where + ": expected Unix seconds or an ISO 8601 UTC time");
    return *t;
  }
  return as_number(o, where);
}

/// The number of elements of the arrays under `key` in the maps of `a` (a reservation; 0 for
/// anything else).
std::size_t count_nested(const msgpack::object_array& a, std::string_view key) {
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < a.size; ++i) {
    if (a.ptr[i].type != mt::MAP) continue;
    const auto& m = a.ptr[i].via.map;
    for (std::uint32_t k = 0; k < m.size; ++k)
      if (m.ptr[k].key.type == mt::STR && std::string_view(m.ptr[k].key.via.str.ptr, m.ptr[k].key.via.str.size) == key &&
          m.ptr[k].val.type == mt::ARRAY)
        n += m.ptr[k].val.via.array.size;
  }
  return n;
}

void decode_margin(const MapView& m, MarginRequest& r) {
  const auto& portfolios = as_array(m.at("portfolios"), m.field("portfolios"));
  if (portfolios.size == 0) bad("margin.portfolios: must not be empty");
  r.positions.reserve(count_nested(portfolios, "positions"));
  r.accounts.reserve(portfolios.size);
  std::set<std::string_view> seen;  // views of the frame's strings: no copies
  for (std::uint32_t i = 0; i < portfolios.size; ++i) {
    const std::string where = "portfolios[" + std::to_string(i) + "]";
    MapView p(portfolios.ptr[i], where);
    const object& a = p.at("account");
    std::string account = as_nonempty_string(a, p.field("account"));
    if (!seen.insert(std::string_view(a.via.str.ptr, a.via.str.size)).second)
      bad(where + ": account '" + account.substr(0, 128) + "' appears twice");
    charge(account.size());  // the shared copy
    const SharedName name(account);
    r.accounts.push_back(std::move(account));
    append_positions(p.at("positions"), name, p.field("positions"), r.positions);
    if (const object* c = p.find("collateral"); c && c->type != mt::NIL) {
      const auto& held = as_array(*c, p.field("collateral"));
      for (std::uint32_t k = 0; k < held.size; ++k) {
        const std::string w = p.field("collateral") + "[" + std::to_string(k) + "]";
        const object& h = held.ptr[k];
        if (h.type != mt::ARRAY || h.via.array.size != 2) bad(w + ": expected [asset, amount]");
        RequestCollateral x{name, as_nonempty_string(h.via.array.ptr[0], w + "[0]"),
                            as_number(h.via.array.ptr[1], w + "[1]")};
        if (x.amount < 0) bad(w + ": amount must be >= 0");
        if (x.amount > kMaxCollateralAmount) bad(w + ": amount must be at most 1e15");
        r.collateral.push_back(std::move(x));
      }
    }
  }
  if (const object* c = m.find("cycle_id")) r.cycle_id = as_nonempty_string(*c, "cycle_id");
}

void decode_whatif(const MapView& m, WhatIfRequest& r) {
  r.account = as_nonempty_string(m.at("account"), "account");
  charge(r.account.size());  // the shared copy
  const SharedName name(r.account);
  const object& trades = m.at("trades");
  if (trades.type == mt::ARRAY) r.trades.reserve(trades.via.array.size);
  append_positions(trades, name, "trades", r.trades);
  if (r.trades.empty()) bad("trades: must not be empty");
  if (const object* p = m.find("positions"); p && p->type != mt::NIL) {
    r.has_positions = true;
    if (p->type == mt::ARRAY) r.positions.reserve(p->via.array.size);
    append_positions(*p, name, "positions", r.positions);
  }
}

void decode_greeks(const MapView& m, GreeksRequest& r) {
  const object* ids = m.find("instruments");
  if (!ids || ids->type == mt::NIL) return;
  const auto& a = as_array(*ids, "instruments");
  r.instruments.reserve(a.size);
  for (std::uint32_t i = 0; i < a.size; ++i)
    r.instruments.push_back(as_nonempty_string(a.ptr[i], "instruments[" + std::to_string(i) + "]"));
}

void decode_net(const MapView& m, NetRequest& r) {
  const auto& assets = as_array(m.at("assets"), "assets");
  for (std::uint32_t i = 0; i < assets.size; ++i) {
    const std::string where = "assets[" + std::to_string(i) + "]";
    const object& o = assets.ptr[i];
    NetAsset a;
    if (o.type == mt::ARRAY) {
      if (o.via.array.size != 2) bad(where + ": expected [asset, scale]");
      a.asset = as_nonempty_string(o.via.array.ptr[0], where + "[0]");
      a.scale = as_integer(o.via.array.ptr[1], where + "[1]");
    } else {
      MapView x(o, where);
      a.asset = as_nonempty_string(x.at("asset"), x.field("asset"));
      a.scale = as_integer(x.at("scale"), x.field("scale"));
    }
    if (a.scale < 0 || a.scale > 18) bad(where + ": scale must be 0..18");
    r.assets.push_back(std::move(a));
  }
  const auto& trades = as_array(m.at("trades"), "trades");
  if (trades.size == 0) bad("trades: must not be empty");
  r.trades.reserve(trades.size);
  static const char* const kFields[] = {"trade_id", "buyer", "seller", "base_asset", "quote_asset", "quantity", "price"};
  for (std::uint32_t i = 0; i < trades.size; ++i) {
    const std::string where = "trades[" + std::to_string(i) + "]";
    const object& o = trades.ptr[i];
    std::string f[7];
    if (o.type == mt::ARRAY) {
      if (o.via.array.size != 7)
        bad(where + ": expected [trade_id, buyer, seller, base_asset, quote_asset, quantity, price]");
      for (int k = 0; k < 7; ++k)
        f[k] = k < 5 ? as_nonempty_string(o.via.array.ptr[k], where + "." + kFields[k])
                     : as_decimal_text(o.via.array.ptr[k], where + "." + kFields[k]);
    } else {
      MapView x(o, where);
      for (int k = 0; k < 7; ++k)
        f[k] = k < 5 ? as_nonempty_string(x.at(kFields[k]), x.field(kFields[k]))
                     : as_decimal_text(x.at(kFields[k]), x.field(kFields[k]));
    }
    for (const std::string& s : f)
      if (s.find_first_of("\",\r\n") != std::string::npos)
        bad(where + ": fields must not contain quotes, commas or line breaks");
    r.trades.push_back(NetTrade{std::move(f[0]), std::move(f[1]), std::move(f[2]), std::move(f[3]), std::move(f[4]),
                                std::move(f[5]), std::move(f[6])});
  }
  if (const object* c = m.find("cycle_id")) r.cycle_id = as_nonempty_string(*c, "cycle_id");
  if (const object* d = m.find("deadline")) r.deadline = as_time(*d, "deadline");
}

/// A price of market.update: (0, kMaxPrice]; NaN (absent) kept.
void check_price(double v, const std::string& where) {
  if (!std::isnan(v) && !(v > 0 && v <= kMaxPrice)) bad(where + ": must be positive and at most 1e12");
}

void decode_market_update(const MapView& m, MarketUpdate& r) {
  if (const object* u = m.find("underlyings")) {
    const auto& a = as_array(*u, "underlyings");
    for (std::uint32_t i = 0; i < a.size; ++i) {
      MapView x(a.ptr[i], "underlyings[" + std::to_string(i) + "]");
      UnderlyingUpdate up;
      up.underlying = as_nonempty_string(x.at("underlying"), x.field("underlying"));
      up.index_price = optional_number(x, "index_price");
      check_price(up.index_price, x.field("index_price"));
      up.rate = optional_number(x, "rate");
      if (!std::isnan(up.rate) && std::fabs(up.rate) > kMaxAbsRate)
        bad(x.field("rate") + ": must be a decimal rate in [-10, 10] (0.05 = 5 %)");
      if (const object* t = x.find("valuation_time"); t && t->type != mt::NIL) {
        up.valuation_time = as_time(*t, x.field("valuation_time"));
        if (!(up.valuation_time >= 0 && up.valuation_time <= kMaxUnixTime))
          bad(x.field("valuation_time") + ": must be between 1970 and 9999 (Unix seconds >= 0)");
      }
      r.underlyings.push_back(std::move(up));
    }
  }
  if (const object* k = m.find("marks")) {
    const auto& a = as_array(*k, "marks");
    for (std::uint32_t i = 0; i < a.size; ++i) {
      MapView x(a.ptr[i], "marks[" + std::to_string(i) + "]");
      MarkUpdate up;
      up.instrument = as_nonempty_string(x.at("instrument"), x.field("instrument"));
      up.mark_price = optional_number(x, "mark_price");
      check_price(up.mark_price, x.field("mark_price"));
      up.mark_iv = optional_number(x, "mark_iv");
      if (!std::isnan(up.mark_iv) && !(up.mark_iv > 0 && up.mark_iv <= kMaxIv))
        bad(x.field("mark_iv") + ": must be a decimal volatility in (0, 100] (0.55 = 55 %)");
      r.marks.push_back(std::move(up));
    }
  }
  if (r.underlyings.empty() && r.marks.empty()) bad("market.update: needs 'underlyings' or 'marks'");
}

std::string optional_string(const MapView& m, std::string_view key) {
  const object* o = m.find(key);
  if (!o || o->type == mt::NIL) return {};
  return as_string(*o, m.field(key));
}

/// An optional identifier of the request map (errors name the bare key, as for the required
/// ones): absent, nil or "" = none ("").
std::string optional_identifier(const MapView& m, std::string_view key) {
  const object* o = m.find(key);
  if (!o || o->type == mt::NIL || (o->type == mt::STR && o->via.str.size == 0)) return {};
  return as_identifier(*o, std::string(key));
}

TradeLeg as_trade_leg(const object& o, const std::string& where) {
  MapView x(o, where);
  TradeLeg t;
  t.source = as_nonempty_string(x.at("source"), x.field("source"));
  t.trade_id = as_nonempty_string(x.at("trade_id"), x.field("trade_id"));
  t.account = as_nonempty_string(x.at("account"), x.field("account"));
  t.instrument = as_nonempty_string(x.at("instrument"), x.field("instrument"));
  // Exact decimals: text or an integer, never a float (it would not be exact).
  t.quantity = as_decimal_text(x.at("quantity"), x.field("quantity"));
  t.side = optional_string(x, "side");
  if (!t.side.empty() && t.side != "buy" && t.side != "sell") bad(x.field("side") + ": expected \"buy\" or \"sell\"");
  t.price = as_decimal_text(x.at("price"), x.field("price"));
  t.time = as_nonempty_string(x.at("time"), x.field("time"));
  t.package_id = optional_string(x, "package_id");
  t.signature = optional_string(x, "signature");
  return t;
}

void decode_trade_submit(const MapView& m, TradeSubmitRequest& r) {
  const object* trade = m.find("trade");
  const object* package = m.find("package");
  if ((trade != nullptr) == (package != nullptr)) bad("trade.submit: give exactly one of 'trade' and 'package'");
  if (trade) {
    r.legs.push_back(as_trade_leg(*trade, "trade"));
    if (!r.legs[0].package_id.empty()) bad("trade.package_id: a single trade has no package (send a 'package')");
    return;
  }
  r.is_package = true;
  MapView p(*package, "package");
  const std::string package_id = as_nonempty_string(p.at("package_id"), p.field("package_id"));
  const auto& legs = as_array(p.at("legs"), p.field("legs"));
  if (legs.size == 0) bad("package.legs: must not be empty");
  r.legs.reserve(legs.size);
  for (std::uint32_t i = 0; i < legs.size; ++i) {
    TradeLeg leg = as_trade_leg(legs.ptr[i], "package.legs[" + std::to_string(i) + "]");
    if (!leg.package_id.empty() && leg.package_id != package_id)
      bad("package.legs[" + std::to_string(i) + "].package_id: differs from the package's");
    if (leg.package_id.empty()) charge(package_id.size());  // a copy per leg
    leg.package_id = package_id;
    r.legs.push_back(std::move(leg));
  }
}

void decode_trade_cancel(const MapView& m, TradeCancelRequest& r) {
  r.source = as_nonempty_string(m.at("source"), "source");
  r.trade_id = as_nonempty_string(m.at("trade_id"), "trade_id");
  r.reason = optional_string(m, "reason");
  r.time = optional_string(m, "time");
}

void decode_trades_query(const MapView& m, TradesQueryRequest& r) {
  r.account = optional_string(m, "account");
  r.instrument = optional_string(m, "instrument");
  if (const object* a = m.find("after_seq"); a && a->type != mt::NIL) {
    r.after_seq = as_integer(*a, "after_seq");
    if (r.after_seq < 0) bad("after_seq: must be >= 0");
  }
  if (const object* l = m.find("limit"); l && l->type != mt::NIL) {
    r.limit = as_integer(*l, "limit");
    if (r.limit < 1 || r.limit > 10'000) bad("limit: must be 1..10000");
  }
}

/// A collateral amount: positive exact decimal text (or an integer); "excess" for withdrawals.
std::string as_collateral_amount(const object& o, const std::string& where, bool excess_allowed) {
  const char* expected = excess_allowed ? ": expected a positive decimal amount as text (\"1.5\") or \"excess\""
                                        : ": expected a positive decimal amount as text (\"1.5\")";
  if (o.type != mt::STR && o.type != mt::POSITIVE_INTEGER && o.type != mt::NEGATIVE_INTEGER)
    bad(where + expected + ", got " + kind_name(o));
  std::string text = as_decimal_text(o, where);
  if (excess_allowed && text == "excess") return text;
  Decimal d;
  if (text.front() == '+' || text.front() == '-' || parse_decimal(text, d) != MoneyStatus::ok || d.mantissa <= 0)
    bad(where + expected + ", got \"" + text.substr(0, 64) + "\"");
  return text;
}

void decode_collateral_change(const MapView& m, CollateralChangeRequest& r, bool withdraw) {
  r.account = as_identifier(m.at("account"), "account");
  r.asset = as_identifier(m.at("asset"), "asset");
  r.amount = as_collateral_amount(m.at("amount"), "amount", withdraw);
  r.reference = optional_identifier(m, "reference");
}

void decode_calls_run(const MapView& m, CallsRunRequest& r) {
  r.run_id = optional_identifier(m, "run_id");
  if (const object* k = m.find("kind"); k && k->type != mt::NIL) {
    if (k->type != mt::STR) bad("kind: expected a string, got " + std::string(kind_name(*k)));
    const std::string_view kind(k->via.str.ptr, k->via.str.size);
    if (kind != "eod" && kind != "intraday" && kind != "on_demand")
      bad("kind: expected \"eod\", \"intraday\" or \"on_demand\"");
    r.kind = as_string(*k, "kind");
  }
}

std::string pack_object(const object& o) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, o);
  return std::string(buf.data(), buf.size());
}

// ---- the envelope (shared by decode_request and peek_request) ---------------------------------

/// The header values of a request map (nullptr = key absent).
struct HeaderFields {
  const object* v = nullptr;
  const object* type = nullptr;
  const object* id = nullptr;
  const object* priority = nullptr;
};

/// The id echoed in replies: the id re-packed when a string or an integer, else nil.
std::string id_raw_of(const object* id) {
  if (id && (id->type == mt::STR || id->type == mt::POSITIVE_INTEGER || id->type == mt::NEGATIVE_INTEGER))
    return pack_object(*id);
  return nil_id();
}

constexpr RequestType kLastRequestType = RequestType::default_declare;

/// Validates the header in decode_request's order (id, v, type, priority, the type's name);
/// protocol_error without id_raw (the caller adds it).
RequestHeader read_header(const HeaderFields& f) {
  RequestHeader h;
  if (f.id && f.id->type != mt::NIL && f.id->type != mt::STR && f.id->type != mt::POSITIVE_INTEGER &&
      f.id->type != mt::NEGATIVE_INTEGER)
    bad("id: expected a string or an integer");
  const object* v = f.v;
  if (!v) bad("missing field 'v' (protocol version)");
  if (v->type != mt::POSITIVE_INTEGER && v->type != mt::NEGATIVE_INTEGER) bad("v: expected an integer");
  if (v->type == mt::NEGATIVE_INTEGER || v->via.u64 != static_cast<std::uint64_t>(kVersion))
    throw protocol_error(ErrorCode::unsupported_version,
                         "protocol version " +
                             (v->type == mt::NEGATIVE_INTEGER ? std::to_string(v->via.i64) : std::to_string(v->via.u64)) +
                             " is not supported (this server speaks " + std::to_string(kVersion) + ")");
  h.version = kVersion;
  if (!f.type) bad("request: missing field 'type'");
  if (f.type->type != mt::STR) bad(std::string("type: expected a string, got ") + kind_name(*f.type));
  const std::string_view type(f.type->via.str.ptr, f.type->via.str.size);
  std::optional<Priority> priority;
  if (f.priority && f.priority->type != mt::NIL) {
    if (f.priority->type != mt::STR) bad(std::string("priority: expected a string, got ") + kind_name(*f.priority));
    const std::string_view p(f.priority->via.str.ptr, f.priority->via.str.size);
    if (p == "high") priority = Priority::high;
    else if (p == "normal" || p == "eod") priority = Priority::normal;
    else bad("priority: expected \"high\" or \"normal\"");
  }
  bool known = false;
  for (int t = 0; t <= static_cast<int>(kLastRequestType) && !known; ++t)
    if (type == request_type_name(static_cast<RequestType>(t))) {
      h.type = static_cast<RequestType>(t);
      known = true;
    }
  if (!known) bad("unknown request type '" + std::string(type.substr(0, 64)) + "'");
  h.priority = priority.value_or(default_priority(h.type));
  h.id_raw = id_raw_of(f.id);
  return h;
}

[[noreturn]] void frame_too_large(std::size_t size, const Limits& limits) {
  throw protocol_error(ErrorCode::too_large, "frame of " + std::to_string(size) + " bytes exceeds the limit of " +
                                                 std::to_string(limits.max_frame_bytes));
}

// ---- peek_request: msgpack read in place --------------------------------------------------------

/// Reads msgpack objects in place: scalars into a msgpack::object whose strings point into the
/// frame, containers by their counts. Allocates nothing; enforces decode_request's limits.
class InPlaceReader {
 public:
  InPlaceReader(std::string_view frame, const Limits& limits)
      : p_(reinterpret_cast<const unsigned char*>(frame.data())), n_(frame.size()), limits_(limits) {}

  /// Reads the head of the next object, at nesting `level` if it is a container (the root is
  /// 1). A scalar is read whole; a container's elements follow (`count` of them; a map's are
  /// key, value, key, value...), o.via.array/map.size = count and ptr = nullptr.
  void head(object& o, std::uint64_t& count, std::size_t level) {
    count = 0;
    const unsigned b = byte();
    if (b <= 0x7f) return set_uint(o, b);
    if (b >= 0xe0) return set_int(o, static_cast<std::int8_t>(b));
    if ((b & 0xf0) == 0x80) return container(o, mt::MAP, b & 0x0f, count, level);
    if ((b & 0xf0) == 0x90) return container(o, mt::ARRAY, b & 0x0f, count, level);
    if ((b & 0xe0) == 0xa0) return str(o, b & 0x1f);
    switch (b) {
      case 0xc0: o.type = mt::NIL; return;
      case 0xc2: case 0xc3: o.type = mt::BOOLEAN; o.via.boolean = b == 0xc3; return;
      case 0xc4: return bin(o, be(1));
      case 0xc5: return bin(o, be(2));
      case 0xc6: return bin(o, be(4));
      case 0xc7: return ext(be(1));
      case 0xc8: return ext(be(2));
      case 0xc9: return ext(be(4));
      case 0xca: {
        const auto bits = static_cast<std::uint32_t>(be(4));
        float f;
        std::memcpy(&f, &bits, sizeof f);
        o.type = mt::FLOAT32;
        o.via.f64 = f;
        return;
      }
      case 0xcb: {
        const std::uint64_t bits = be(8);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        o.type = mt::FLOAT64;
        o.via.f64 = d;
        return;
      }
      case 0xcc: return set_uint(o, be(1));
      case 0xcd: return set_uint(o, be(2));
      case 0xce: return set_uint(o, be(4));
      case 0xcf: return set_uint(o, be(8));
      case 0xd0: return set_int(o, static_cast<std::int8_t>(be(1)));
      case 0xd1: return set_int(o, static_cast<std::int16_t>(be(2)));
      case 0xd2: return set_int(o, static_cast<std::int32_t>(be(4)));
      case 0xd3: return set_int(o, static_cast<std::int64_t>(be(8)));
      case 0xd4: return ext(2);
      case 0xd5: return ext(3);
      case 0xd6: return ext(5);
      case 0xd7: return ext(9);
      case 0xd8: return ext(17);
      case 0xd9: return str(o, be(1));
      case 0xda: return str(o, be(2));
      case 0xdb: return str(o, be(4));
      case 0xdc: return container(o, mt::ARRAY, be(2), count, level);
      case 0xdd: return container(o, mt::ARRAY, be(4), count, level);
      case 0xde: return container(o, mt::MAP, be(2), count, level);
      case 0xdf: return container(o, mt::MAP, be(4), count, level);
      default: bad("malformed msgpack: reserved byte 0xc1");
    }
  }

  /// Skips the elements of a container whose head was read at `level`.
  void skip_elements(std::uint64_t count, std::size_t level) {
    for (std::uint64_t i = 0; i < count; ++i) skip(level + 1);
  }

  /// Skips one whole object at `level`.
  void skip(std::size_t level) {
    object o;
    std::uint64_t count = 0;
    head(o, count, level);
    if (count > 0) skip_elements(count, level);
  }

 private:
  unsigned byte() {
    need(1);
    return p_[pos_++];
  }
  void need(std::uint64_t bytes) const {
    if (bytes > n_ - pos_) bad("truncated msgpack frame");
  }
  std::uint64_t be(int bytes) {
    need(static_cast<std::uint64_t>(bytes));
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | p_[pos_++];
    return v;
  }
  static void set_uint(object& o, std::uint64_t v) {
    o.type = mt::POSITIVE_INTEGER;
    o.via.u64 = v;
  }
  static void set_int(object& o, std::int64_t v) {
    if (v >= 0) return set_uint(o, static_cast<std::uint64_t>(v));
    o.type = mt::NEGATIVE_INTEGER;
    o.via.i64 = v;
  }
  void str(object& o, std::uint64_t len) {
    need(len);  // a length beyond the frame: truncated (as decode_request says it)
    if (len > limits_.max_string) throw protocol_error(ErrorCode::too_large, "msgpack limit exceeded: str size overflow");
    o.type = mt::STR;
    o.via.str.ptr = reinterpret_cast<const char*>(p_ + pos_);
    o.via.str.size = static_cast<std::uint32_t>(len);
    pos_ += len;
  }
  void bin(object& o, std::uint64_t len) {
    need(len);
    if (len > 0) throw protocol_error(ErrorCode::too_large, "msgpack limit exceeded: bin size overflow");
    o.type = mt::BIN;
    o.via.bin.ptr = nullptr;
    o.via.bin.size = 0;
  }
  void ext(std::uint64_t len_with_type) {
    need(len_with_type);
    throw protocol_error(ErrorCode::too_large, "msgpack limit exceeded: ext size overflow");
  }
  void container(object& o, mt::object_type type, std::uint64_t n, std::uint64_t& count, std::size_t level) {
    const bool map = type == mt::MAP;
    if (n > (map ? limits_.max_map : limits_.max_array) || level > limits_.max_depth)
      throw protocol_error(ErrorCode::too_large, std::string("msgpack limit exceeded: ") +
                                                     (level > limits_.max_depth ? "depth" : map ? "map" : "array") +
                                                     " size overflow");
    if (n > (map ? n_ / 2 : n_))
      bad("truncated msgpack frame: a container declares more elements than the frame holds");
    o.type = type;
    if (map) {
      o.via.map.size = static_cast<std::uint32_t>(n);
      o.via.map.ptr = nullptr;
    } else {
      o.via.array.size = static_cast<std::uint32_t>(n);
      o.via.array.ptr = nullptr;
    }
    count = map ? 2 * n : n;
  }

  const unsigned char* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
  const Limits& limits_;
};

}  // namespace

std::string nil_id() { return std::string(1, '\xc0'); }

RequestHeader peek_request(std::string_view frame, const Limits& limits) {
  if (frame.size() > limits.max_frame_bytes) frame_too_large(frame.size(), limits);
  if (frame.empty()) bad("empty frame");
  InPlaceReader in(frame, limits);
  object root;
  std::uint64_t entries = 0;
  in.head(root, entries, 1);
  if (root.type != mt::MAP) {
    in.skip_elements(entries, 1);  // its limits first, as decode_request (which reads it all) sees them
    bad(std::string("a request is a msgpack map, got ") + kind_name(root));
  }
  static constexpr std::string_view kKeys[4] = {"v", "type", "id", "priority"};
  object values[4];
  HeaderFields f;
  const object** slots[4] = {&f.v, &f.type, &f.id, &f.priority};
  int found = 0;
  std::string pending;  // a bad key, reported once the id is known
  for (std::uint64_t i = 0; i < entries / 2; ++i) {
    if (pending.empty() ? found == 4 : f.id != nullptr) break;  // all that is needed is in
    object key;
    std::uint64_t count = 0;
    in.head(key, count, 2);
    in.skip_elements(count, 2);
    if (key.type != mt::STR) {
      if (pending.empty()) pending = "request: map keys must be strings";
      in.skip(2);
      continue;
    }
    const std::string_view k(key.via.str.ptr, key.via.str.size);
    int slot = 0;
    while (slot < 4 && kKeys[slot] != k) ++slot;
    if (slot == 4) {
      in.skip(2);  // a payload value: scanned in place, nothing built
      continue;
    }
    if (*slots[slot]) {
      if (pending.empty()) pending = "request: duplicate key '" + std::string(k) + "'";
      in.skip(2);
      continue;
    }
    in.head(values[slot], count, 2);
    in.skip_elements(count, 2);
    *slots[slot] = &values[slot];
    ++found;
  }
  try {
    if (!pending.empty()) bad(pending);
    return read_header(f);
  } catch (protocol_error& e) {
    e.set_id_raw(id_raw_of(f.id));
    throw;
  }
}

Request decode_request(std::string_view frame, const Limits& limits) {
  if (frame.size() > limits.max_frame_bytes) frame_too_large(frame.size(), limits);
  if (frame.empty()) bad("empty frame");
  // No container may declare more elements than the frame has bytes left (each element takes
  // at least one byte), nor more than the caps: a 5-byte header cannot ask for gigabytes.
  const std::size_t n = frame.size();
  const msgpack::unpack_limit limit(std::min(n, limits.max_array), std::min(n / 2, limits.max_map),
                                    std::min(n, limits.max_string), 0, 0, limits.max_depth);
  msgpack::object_handle handle;
  std::size_t offset = 0;
  try {
    handle = msgpack::unpack(frame.data(), frame.size(), offset, nullptr, nullptr, limit);
  } catch (const msgpack::size_overflow& e) {
    // Over the caps: too_large. Over what the frame can hold but within the caps: the frame is
    // truncated or lies about its lengths (a second pass under the caps alone tells which; it
    // allocates at most max_array objects per level).
    const msgpack::unpack_limit caps(limits.max_array, limits.max_map, limits.max_string, 0, 0, limits.max_depth);
    std::size_t again = 0;
    try {
      msgpack::unpack(frame.data(), frame.size(), again, nullptr, nullptr, caps);
    } catch (const msgpack::size_overflow&) {
      throw protocol_error(ErrorCode::too_large, std::string("msgpack limit exceeded: ") + e.what());
    } catch (...) {
    }
    bad("truncated msgpack frame: a container declares more elements than the frame holds");
  } catch (const msgpack::insufficient_bytes&) {
    bad("truncated msgpack frame");
  } catch (const msgpack::unpack_error& e) {
    bad(std::string("malformed msgpack: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw protocol_error(ErrorCode::too_large, "frame needs too much memory to decode");
  }
  if (offset != frame.size())
    bad("trailing bytes after the msgpack map (" + std::to_string(frame.size() - offset) + " bytes)");

  const object& root = handle.get();
  if (root.type != mt::MAP) bad(std::string("a request is a msgpack map, got ") + kind_name(root));
  // Every string the Request keeps is charged: at most factor × frame + slack bytes in all.
  const std::size_t factor = limits.string_bytes_factor;
  const std::size_t cap = factor != 0 && n > (std::numeric_limits<std::size_t>::max() - limits.string_bytes_slack) / factor
                              ? std::numeric_limits<std::size_t>::max()
                              : factor * n + limits.string_bytes_slack;
  const StringBudget budget(cap);
  Request r;
  // The id first, so that every later error still correlates.
  std::string id_raw = nil_id();
  for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
    const object& k = root.via.map.ptr[i].key;
    if (k.type == mt::STR && std::string_view(k.via.str.ptr, k.via.str.size) == "id")
      id_raw = id_raw_of(&root.via.map.ptr[i].val);
  }
  try {
    MapView m(root, "request");
    const RequestHeader h = read_header(HeaderFields{m.find("v"), m.find("type"), m.find("id"), m.find("priority")});
    charge(h.id_raw.size());
    r.version = h.version;
    r.type = h.type;
    r.id_raw = h.id_raw;
    r.priority = h.priority;
    switch (r.type) {
      case RequestType::ping:
      case RequestType::status: break;
      case RequestType::margin: decode_margin(m, r.margin); break;
      case RequestType::whatif: decode_whatif(m, r.whatif); break;
      case RequestType::greeks: decode_greeks(m, r.greeks); break;
      case RequestType::net: decode_net(m, r.net); break;
      case RequestType::market_update: decode_market_update(m, r.market); break;
      case RequestType::trade_submit: decode_trade_submit(m, r.trade_submit); break;
      case RequestType::trade_cancel: decode_trade_cancel(m, r.trade_cancel); break;
      case RequestType::trades_query: decode_trades_query(m, r.trades_query); break;
      case RequestType::positions_query: r.positions_query.account = optional_string(m, "account"); break;
      case RequestType::collateral_deposit: decode_collateral_change(m, r.collateral_change, false); break;
      case RequestType::collateral_withdraw: decode_collateral_change(m, r.collateral_change, true); break;
      case RequestType::collateral_query: r.collateral_query.account = optional_identifier(m, "account"); break;
      case RequestType::calls_run: decode_calls_run(m, r.calls_run); break;
      case RequestType::calls_query: r.calls_query.run_id = optional_identifier(m, "run_id"); break;
      case RequestType::default_declare:
        r.default_declare.member = as_identifier(m.at("member"), "member");
        r.default_declare.reason = optional_string(m, "reason");
        r.default_declare.default_id = optional_identifier(m, "default_id");
        break;
    }
  } catch (protocol_error& e) {
    e.set_id_raw(id_raw);
    throw;
  }
  return r;
}

// --- replies ---------------------------------------------------------------------------------

namespace {

/// msgpack-cxx's pack_double writes integral values as integers; replies keep every risk figure
/// a float64 (0xcb), so that readers see the type they expect and JSON renderings match.
class Packer : public msgpack::packer<msgpack::sbuffer> {
 public:
  explicit Packer(msgpack::sbuffer& buf) : msgpack::packer<msgpack::sbuffer>(buf), buf_(buf) {}
  void f64(double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    char out[9];
    out[0] = static_cast<char>(0xcb);
    for (int i = 0; i < 8; ++i) out[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xff);
    buf_.write(out, sizeof out);
  }
  msgpack::sbuffer& buffer() { return buf_; }

 private:
  msgpack::sbuffer& buf_;
};

/// Starts a reply map of `fields` payload entries after v, type and id.
void begin_reply(Packer& pk, std::string_view id_raw, std::string_view type, std::size_t fields) {
  pk.pack_map(static_cast<std::uint32_t>(3 + fields));
  pk.pack(std::string_view("v"));
  pk.pack(kVersion);
  pk.pack(std::string_view("type"));
  pk.pack(type);
  pk.pack(std::string_view("id"));
  if (id_raw.empty())
    pk.pack_nil();
  else
    pk.buffer().write(id_raw.data(), id_raw.size());  // already msgpack
}

void kv(Packer& pk, std::string_view key, std::string_view value) {
  pk.pack(key);
  pk.pack(value);
}
void kv(Packer& pk, std::string_view key, const std::string& value) { kv(pk, key, std::string_view(value)); }
void kv(Packer& pk, std::string_view key, const char* value) { kv(pk, key, std::string_view(value)); }
void kv(Packer& pk, std::string_view key, double value) {
  pk.pack(key);
  pk.f64(value);
}
void kv(Packer& pk, std::string_view key, std::int64_t value) {
  pk.pack(key);
  pk.pack(value);
}
void kv(Packer& pk, std::string_view key, std::uint64_t value) {
  pk.pack(key);
  pk.pack(value);
}
void kv(Packer& pk, std::string_view key, bool value) {
  pk.pack(key);
  pk.pack(value);
}

std::int64_t scenario_id(std::int32_t index) { return index + 1; }  // 1-based, 0 = none

/// The fields and order of `marginet margin --format json` (service/cli/cmd_margin.cpp).
void pack_account(Packer& pk, const AccountMargin& a, const ScenarioSet& set, const std::string& settlement_asset,
                  int settlement_scale, bool joint) {
  const bool tail = a.es != 0 || a.var != 0;
  const bool stressed = tail && set.stress_offset > 0;
  const bool coin = !a.currencies.empty();
  auto label = [&](std::int32_t scenario) {
    const auto i = static_cast<std::size_t>(scenario);
    return scenario >= 0 && i < set.labels.size() ? set.labels[i] : std::string();
  };
  pk.pack_map(14 + (tail ? 2 : 0) + (stressed ? 1 : 0) + (coin ? 1 : 0));
  kv(pk, "account", a.account);
  kv(pk, "model", a.model);
  pk.pack(std::string_view("units"));
  pk.pack_map(tail ? 9 : 7);
  for (const char* k : {"im", "mm", "collateral_value"}) kv(pk, k, std::string_view("USD"));
  kv(pk, "call", settlement_asset);
  kv(pk, "delta_usd", std::string_view(kDeltaUsdUnit));
  kv(pk, "gamma_usd", std::string_view(kGammaUsdUnit));
  kv(pk, "vega_usd", std::string_view(kVegaUsdUnit));
  if (tail) {
    kv(pk, "var", std::string_view("USD"));
    kv(pk, "es", std::string_view("USD"));
  }
  kv(pk, "im", a.im);
  kv(pk, "mm", a.mm);
  kv(pk, "worst_scenario", scenario_id(a.worst_scenario));
  kv(pk, "worst_scenario_label", label(a.worst_scenario));
  kv(pk, "delta_usd", a.delta_usd);
  kv(pk, "gamma_usd", a.gamma_usd);
  kv(pk, "vega_usd", a.vega_usd);
  kv(pk, "collateral_value", a.collateral_value);
  kv(pk, "call", format_money(a.call_minor, settlement_scale));
  if (tail) {
    kv(pk, "var", a.var);
    kv(pk, "es", a.es);
    if (stressed) kv(pk, "stressed_es", a.stressed_es);  // only with a stressed period
  }
  if (coin) {
    pk.pack(std::string_view("currencies"));
    pk.pack_array(static_cast<std::uint32_t>(a.currencies.size()));
    for (const CurrencyMargin& c : a.currencies) {
      pk.pack_map(7);
      kv(pk, "currency", c.currency);
      kv(pk, "im", c.im);
      kv(pk, "mm", c.mm);
      kv(pk, "worst_scenario", scenario_id(c.worst_scenario));
      kv(pk, "worst_scenario_label", label(c.worst_scenario));
      kv(pk, "collateral_value", c.collateral_value);
      kv(pk, "call", format_money(c.call_minor, c.scale));
    }
  }
  pk.pack(std::string_view("underlyings"));
  pk.pack_array(static_cast<std::uint32_t>(a.underlyings.size()));
  for (const UnderlyingMargin& u : a.underlyings) {
    const bool deribit = u.units != "USD";
    // Joint methodologies margin the account as a whole: an underlying has sensitivities, not an
    // IM of its own (no `im: 0` that reads as "no margin").
    pk.pack_map((joint ? 5 : 13) + (deribit ? 1 : 0));
    kv(pk, "underlying", u.underlying);
    pk.pack(std::string_view("units"));
    pk.pack_map((joint ? 3 : 9) + (deribit ? 1 : 0));
    if (!joint)
      for (const char* k : {"im", "mm", "scan_risk", "short_option_minimum", "roll_shock", "delta_shock"})
        kv(pk, k, u.units);
    kv(pk, "delta", u.underlying);
    kv(pk, "gamma", u.underlying + " per USD");
    kv(pk, "vega", std::string_view(kVegaUnit));
    if (deribit) kv(pk, "coin_delta", u.underlying);
    if (!joint) {
      kv(pk, "im", u.im);
      kv(pk, "mm", u.mm);
      kv(pk, "scan_risk", u.scan_risk);
      kv(pk, "short_option_minimum", u.short_option_minimum);
      kv(pk, "roll_shock", u.roll_shock);
      kv(pk, "delta_shock", u.delta_shock);
      kv(pk, "worst_scenario", scenario_id(u.worst_scenario));
      kv(pk, "worst_scenario_label", label(u.worst_scenario));
    }
    kv(pk, "delta", u.delta);
    kv(pk, "gamma", u.gamma);
    kv(pk, "vega", u.vega);
    if (deribit) kv(pk, "coin_delta", u.coin_delta);
  }
  pk.pack(std::string_view("worst_scenarios"));
  pk.pack_array(static_cast<std::uint32_t>(a.worst_scenarios.size()));
  for (const ScenarioPnl& w : a.worst_scenarios) {
    pk.pack_map(3);
    kv(pk, "scenario", scenario_id(w.scenario));
    const auto s = static_cast<std::size_t>(w.scenario);
    kv(pk, "label", s < set.labels.size() ? set.labels[s] : std::string());
    kv(pk, "pnl", w.pnl);
  }
}

std::string take(const msgpack::sbuffer& buf) { return std::string(buf.data(), buf.size()); }

}  // namespace

std::string encode_account(const AccountMargin& a, const ScenarioSet& scenarios, const Methodology& m) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pack_account(pk, a, scenarios, m.settlement_asset, m.settlement_scale, is_joint(m.kind));
  return take(buf);
}

std::string encode_error(std::string_view id_raw, ErrorCode code, std::string_view message) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "error", 2);
  kv(pk, "code", error_code_name(code));
  kv(pk, "message", message.substr(0, 1024));
  return take(buf);
}

std::string encode_pong(std::string_view id_raw, double server_time) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "ping.result", 1);
  kv(pk, "server_time", server_time);
  return take(buf);
}

std::string encode_status(std::string_view id_raw, const StatusInfo& s) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "status.result", s.store ? 19 : 18);
  kv(pk, "uptime_s", s.uptime_s);
  kv(pk, "backend", s.backend);
  kv(pk, "device", s.device);
  kv(pk, "model", s.model);
  kv(pk, "instruments", static_cast<std::uint64_t>(s.instruments));
  kv(pk, "book_accounts", static_cast<std::uint64_t>(s.book_accounts));
  pk.pack(std::string_view("queues"));
  pk.pack_map(3);
  kv(pk, "high", static_cast<std::uint64_t>(s.queue_high));
  kv(pk, "normal", static_cast<std::uint64_t>(s.queue_normal));
  kv(pk, "capacity", static_cast<std::uint64_t>(s.queue_capacity));
  kv(pk, "computing", s.computing);
  kv(pk, "batches_run", s.batches_run);
  kv(pk, "requests_total", s.requests_total);
  kv(pk, "margin_requests", s.margin_requests);
  pk.pack(std::string_view("replies"));
  pk.pack_map(4);
  kv(pk, "errors", s.errors);
  kv(pk, "busy", s.busy);
  kv(pk, "unsent_bytes", static_cast<std::uint64_t>(s.unsent_replies_bytes));
  kv(pk, "dropped_slow", s.replies_dropped_slow);
  kv(pk, "requests_per_s", s.requests_per_s);
  pk.pack(std::string_view("latency_us"));
  pk.pack_map(4);
  kv(pk, "p50", s.latency_p50_us);
  kv(pk, "p99", s.latency_p99_us);
  kv(pk, "max", s.latency_max_us);
  kv(pk, "samples", static_cast<std::uint64_t>(s.latency_samples));
  pk.pack(std::string_view("batching"));
  pk.pack_map(2);
  kv(pk, "window_us", s.batch_window_us);
  kv(pk, "max_batch", static_cast<std::uint64_t>(s.max_batch));
  kv(pk, "market_updates", s.market_updates);
  kv(pk, "curve", s.curve);
  if (s.store) {
    pk.pack(std::string_view("store"));
    pk.pack_map(1);
    kv(pk, "journal_entries", s.journal_entries);
  }
  pk.pack(std::string_view("outbox"));
  pk.pack_map(7);
  kv(pk, "scheduler", s.scheduler);
  kv(pk, "unacked", s.outbox_unacked);
  kv(pk, "unsettled", s.outbox_unsettled);
  kv(pk, "oldest_unacked", s.outbox_oldest_unacked);
  kv(pk, "oldest_unacked_age_s", s.outbox_oldest_unacked_age_s);
  kv(pk, "acks_received", s.acks_received);
  kv(pk, "reports_applied", s.reports_applied);
  return take(buf);
}

std::string encode_margin_result(std::string_view id_raw, const std::string& model,
                                 const std::vector<const AccountMargin*>& accounts, const ScenarioSet& scenarios,
                                 const BatchInfo& batch, const std::string& cycle_id, const Methodology& m) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "margin.result", cycle_id.empty() ? 3 : 4);
  kv(pk, "model", model);
  pk.pack(std::string_view("accounts"));
  pk.pack_array(static_cast<std::uint32_t>(accounts.size()));
  for (const AccountMargin* a : accounts)
    pack_account(pk, *a, scenarios, m.settlement_asset, m.settlement_scale, is_joint(m.kind));
  pk.pack(std::string_view("batch"));
  pk.pack_map(4);
  kv(pk, "requests", static_cast<std::uint64_t>(batch.requests));
  kv(pk, "positions", static_cast<std::uint64_t>(batch.positions));
  kv(pk, "compute_us", batch.compute_us);
  kv(pk, "queued_us", batch.queued_us);
  if (!cycle_id.empty()) kv(pk, "cycle_id", cycle_id);
  return take(buf);
}

std::string encode_whatif_result(std::string_view id_raw, const std::string& account, const WhatIfResult& w,
                                 const ScenarioSet& scenarios, const WhatIfTiming& timing, const Methodology& m) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "whatif.result", 10);
  kv(pk, "account", account);
  kv(pk, "model", w.after.model);
  pk.pack(std::string_view("units"));
  pk.pack_map(2);
  kv(pk, "im_change", std::string_view("USD"));
  kv(pk, "mm_change", std::string_view("USD"));
  kv(pk, "im_change", w.im_change);
  kv(pk, "mm_change", w.mm_change);
  pk.pack(std::string_view("before"));
  pack_account(pk, w.before, scenarios, m.settlement_asset, m.settlement_scale, is_joint(m.kind));
  pk.pack(std::string_view("after"));
  pack_account(pk, w.after, scenarios, m.settlement_asset, m.settlement_scale, is_joint(m.kind));
  kv(pk, "instruments_revalued", static_cast<std::uint64_t>(w.instruments_revalued));
  kv(pk, "compute_us", timing.engine_us);
  pk.pack(std::string_view("timing"));
  pk.pack_map(4);
  kv(pk, "decode_us", timing.decode_us);
  kv(pk, "queue_us", timing.queue_us);
  kv(pk, "engine_us", timing.engine_us);
  kv(pk, "lane", std::string_view(timing.fast_lane ? "fast" : "queued"));
  return take(buf);
}

const std::vector<std::string>& greeks_columns() {
  static const std::vector<std::string> cols{"price", "price_coin", "delta", "delta_coin", "gamma", "vega",
                                             "theta", "rho",        "vanna", "volga",      "iv"};
  return cols;
}

std::string encode_greeks_result(std::string_view id_raw, const std::vector<GreeksRow>& rows) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "greeks.result", 2);
  pk.pack(std::string_view("columns"));
  pk.pack_array(12);
  pk.pack(std::string_view("id"));
  for (const std::string& c : greeks_columns()) pk.pack(c);
  pk.pack(std::string_view("rows"));
  pk.pack_array(static_cast<std::uint32_t>(rows.size()));
  for (const GreeksRow& r : rows) {
    pk.pack_array(12);
    pk.pack(r.id);
    for (double v : r.values) pk.f64(v);
  }
  return take(buf);
}

std::string encode_net_result(std::string_view id_raw, const std::vector<NetRow>& nets,
                              const std::vector<NetAssetRow>& assets, const std::string& cycle_id,
                              std::size_t instructions) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "net.result", 4);
  pk.pack(std::string_view("nets"));
  pk.pack_array(static_cast<std::uint32_t>(nets.size()));
  for (const NetRow& n : nets) {
    pk.pack_map(4);
    kv(pk, "member", n.member);
    kv(pk, "asset", n.asset);
    kv(pk, "net", n.net);
    kv(pk, "net_minor", n.net_minor);
  }
  pk.pack(std::string_view("assets"));
  pk.pack_array(static_cast<std::uint32_t>(assets.size()));
  for (const NetAssetRow& a : assets) {
    pk.pack_map(8);
    kv(pk, "asset", a.asset);
    kv(pk, "scale", a.scale);
    kv(pk, "gross_deliveries_minor", a.gross_deliveries);
    kv(pk, "pay_ins_minor", a.pay_ins);
    kv(pk, "pay_outs_minor", a.pay_outs);
    kv(pk, "payers", a.payers);
    kv(pk, "receivers", a.receivers);
    kv(pk, "efficiency", a.efficiency);
  }
  kv(pk, "cycle_id", cycle_id);
  kv(pk, "instructions", static_cast<std::uint64_t>(instructions));
  return take(buf);
}

namespace {
void pack_pretrade(Packer& pk, const PretradeCheck& p) {
  pk.pack(std::string_view("pretrade"));
  pk.pack_map(5);
  kv(pk, "im_before", p.im_before);
  kv(pk, "im_after", p.im_after);
  kv(pk, "collateral_value", p.collateral_value);
  kv(pk, "headroom", p.headroom);
  kv(pk, "units", p.units);
}
}  // namespace

std::string encode_trade_submit_result(std::string_view id_raw, std::string_view outcome, const std::string& package_id,
                                       const std::vector<RecordedLeg>& legs, const PretradeCheck* pretrade,
                                       double store_us) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "trade.submit.result", 3 + (package_id.empty() ? 0 : 1) + (pretrade ? 1 : 0));
  kv(pk, "outcome", outcome);
  if (!package_id.empty()) kv(pk, "package_id", package_id);
  pk.pack(std::string_view("legs"));
  pk.pack_array(static_cast<std::uint32_t>(legs.size()));
  for (const RecordedLeg& l : legs) {
    pk.pack_map(2);
    kv(pk, "trade_id", l.trade_id);
    kv(pk, "journal_seq", l.journal_seq);
  }
  if (pretrade) pack_pretrade(pk, *pretrade);
  kv(pk, "store_us", store_us);
  return take(buf);
}

std::string encode_trade_refused(std::string_view id_raw, ErrorCode code, std::string_view message, int leg,
                                 const PretradeCheck* pretrade) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "error", 2 + (leg >= 0 ? 1 : 0) + (pretrade ? 1 : 0));
  kv(pk, "code", error_code_name(code));
  kv(pk, "message", message.substr(0, 1024));
  if (leg >= 0) kv(pk, "leg", static_cast<std::int64_t>(leg));
  if (pretrade) pack_pretrade(pk, *pretrade);
  return take(buf);
}

std::string encode_trade_cancel_result(std::string_view id_raw, std::string_view outcome, std::int64_t journal_seq) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "trade.cancel.result", 2);
  kv(pk, "outcome", outcome);
  kv(pk, "journal_seq", journal_seq);
  return take(buf);
}

std::string encode_trades_query_result(std::string_view id_raw, const std::vector<TradeRow>& rows, bool more) {
  static const char* const kColumns[] = {"seq",        "kind",     "source", "trade_id", "account", "instrument",
                                         "quantity",   "price",    "time",   "package_id", "signed"};
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "trades.query.result", 3);
  pk.pack(std::string_view("columns"));
  pk.pack_array(11);
  for (const char* col : kColumns) pk.pack(std::string_view(col));
  pk.pack(std::string_view("rows"));
  pk.pack_array(static_cast<std::uint32_t>(rows.size()));
  for (const TradeRow& r : rows) {
    pk.pack_array(11);
    pk.pack(r.seq);
    pk.pack(r.kind);
    pk.pack(r.source);
    pk.pack(r.trade_id);
    pk.pack(r.account);
    pk.pack(r.instrument);
    pk.pack(r.quantity);
    pk.pack(r.price);
    pk.pack(r.time);
    pk.pack(r.package_id);
    pk.pack(r.signed_);
  }
  kv(pk, "more", more);
  return take(buf);
}

namespace {
/// "columns": [names...], then "rows": an array of `rows` entries that the caller packs.
void pack_table_header(Packer& pk, std::initializer_list<std::string_view> columns, std::size_t rows) {
  pk.pack(std::string_view("columns"));
  pk.pack_array(static_cast<std::uint32_t>(columns.size()));
  for (std::string_view col : columns) pk.pack(col);
  pk.pack(std::string_view("rows"));
  pk.pack_array(static_cast<std::uint32_t>(rows));
}
}  // namespace

std::string encode_positions_query_result(std::string_view id_raw, const std::vector<PositionRowText>& rows) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "positions.query.result", 2);
  pack_table_header(pk, {"account", "instrument", "quantity"}, rows.size());
  for (const PositionRowText& r : rows) {
    pk.pack_array(3);
    pk.pack(r.account);
    pk.pack(r.instrument);
    pk.pack(r.quantity);
  }
  return take(buf);
}

namespace {
void pack_collateral_check(Packer& pk, const CollateralFigures& f) {
  pk.pack(std::string_view("check"));
  pk.pack_map(4);
  kv(pk, "im", f.im);
  kv(pk, "value_before", f.value_before);
  kv(pk, "value_after", f.value_after);
  kv(pk, "units", f.units);
}

/// "<request>.result" of a request type.
std::string result_type(RequestType type) { return std::string(request_type_name(type)) + ".result"; }
}  // namespace

std::string encode_collateral_change_result(std::string_view id_raw, RequestType type, const CollateralChangeResult& r) {
  if (type != RequestType::collateral_deposit && type != RequestType::collateral_withdraw)
    throw std::invalid_argument("encode_collateral_change_result: not a deposit or a withdrawal");
  const bool check = type == RequestType::collateral_withdraw && r.figures != nullptr;
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, result_type(type), 7 + (check ? 1 : 0));
  kv(pk, "outcome", r.outcome);
  kv(pk, "account", r.account);
  kv(pk, "asset", r.asset);
  kv(pk, "amount", r.amount);
  kv(pk, "balance", r.balance);
  kv(pk, "movement_seq", r.movement_seq);
  kv(pk, "cycle_id", r.cycle_id);
  if (check) pack_collateral_check(pk, *r.figures);
  return take(buf);
}

std::string encode_collateral_refused(std::string_view id_raw, std::string_view message, const CollateralFigures& figures) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "error", 3);
  kv(pk, "code", error_code_name(ErrorCode::insufficient_collateral));
  kv(pk, "message", message.substr(0, 1024));
  pack_collateral_check(pk, figures);
  return take(buf);
}

std::string encode_collateral_query_result(std::string_view id_raw, const std::vector<BalanceRowText>& rows) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "collateral.query.result", 2);
  pack_table_header(pk, {"account", "asset", "amount", "amount_minor", "scale"}, rows.size());
  for (const BalanceRowText& r : rows) {
    pk.pack_array(5);
    pk.pack(r.account);
    pk.pack(r.asset);
    pk.pack(r.amount);
    pk.pack(r.amount_minor);
    pk.pack(static_cast<std::int64_t>(r.scale));
  }
  return take(buf);
}

std::string encode_calls_result(std::string_view id_raw, RequestType type, const CallRunText& run) {
  if (type != RequestType::calls_run && type != RequestType::calls_query)
    throw std::invalid_argument("encode_calls_result: not calls.run or calls.query");
  const bool with_outcome = type == RequestType::calls_run;
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, result_type(type), 13 + (with_outcome ? 1 : 0));
  kv(pk, "run_id", run.run_id);
  kv(pk, "kind", run.kind);
  kv(pk, "at", run.at);
  kv(pk, "model", run.model);
  kv(pk, "asset", run.asset);
  kv(pk, "scale", static_cast<std::int64_t>(run.scale));
  kv(pk, "units", run.units);
  kv(pk, "cycle_id", run.cycle_id);
  kv(pk, "cycle_state", run.cycle_state);
  kv(pk, "total_call", run.total_call);
  if (with_outcome) kv(pk, "outcome", run.outcome);
  kv(pk, "compute_ms", run.compute_ms);
  pack_table_header(pk, {"account", "im", "mm", "collateral_value", "call", "settled", "state", "instruction_id"},
                    run.calls.size());
  for (const CallRowText& c : run.calls) {
    pk.pack_array(8);
    pk.pack(c.account);
    pk.f64(c.im);
    pk.f64(c.mm);
    pk.f64(c.collateral_value);
    pk.pack(c.call);
    pk.pack(c.settled);
    pk.pack(c.state);
    pk.pack(c.instruction_id);
  }
  return take(buf);
}

std::string encode_market_update_result(std::string_view id_raw, std::size_t underlyings, std::size_t marks,
                                        double recompute_us, std::size_t book_accounts) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "market.update.result", 4);
  kv(pk, "underlyings", static_cast<std::uint64_t>(underlyings));
  kv(pk, "marks", static_cast<std::uint64_t>(marks));
  kv(pk, "recompute_us", recompute_us);
  kv(pk, "book_accounts", static_cast<std::uint64_t>(book_accounts));
  return take(buf);
}

std::string encode_default_result(std::string_view id_raw, const DefaultResultText& d) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  begin_reply(pk, id_raw, "default.declare.result", 14);
  kv(pk, "default_id", d.default_id);
  kv(pk, "member", d.member);
  kv(pk, "outcome", d.outcome);
  kv(pk, "reason", d.reason);
  kv(pk, "declared_at", d.declared_at);
  kv(pk, "currency", d.currency);
  kv(pk, "loss", d.loss);
  kv(pk, "covered", d.covered);
  kv(pk, "uncovered", d.uncovered);
  kv(pk, "close_out_loss", d.close_out_loss);
  kv(pk, "close_out_scenario", d.close_out_scenario);
  kv(pk, "positions", d.positions);
  pack_table_header(pk, {"layer", "member", "available", "absorbed", "remaining"}, d.steps.size());
  for (const DefaultStepText& s : d.steps) {
    pk.pack_array(5);
    pk.pack(s.layer);
    pk.pack(s.member);
    pk.pack(s.available);
    pk.pack(s.absorbed);
    pk.pack(s.remaining);
  }
  return take(buf);
}

}  // namespace marginet::protocol
