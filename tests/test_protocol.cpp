// The service's msgpack decoder (service/margin/protocol.hpp) against hostile frames: truncated frames,
// wrong types, huge declared lengths, deep nesting, trailing bytes, unknown types and versions,
// and 10,000 random byte strings. Every bad frame must end in a protocol_error with the right
// code (which the server turns into an `error` reply) — never a crash, never another exception.
// Also the good paths: every request type decodes, replies round-trip through a msgpack reader.

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <nlohmann/json.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "service/margin/protocol.hpp"

// Allocations of this thread, counted by the replaced global operator new (peek_request must
// not allocate per element of the payload it skips).
namespace {
thread_local std::size_t t_allocations = 0;
void* counted_alloc(std::size_t n) {
  ++t_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace marginet::protocol {
namespace {

std::string mp(const nlohmann::json& j) {
  const auto b = nlohmann::json::to_msgpack(j);
  return std::string(b.begin(), b.end());
}

/// The code of the protocol_error `frame` raises; fails the test on success or another exception.
ErrorCode code_of(std::string_view frame, const Limits& limits = {}) {
  try {
    decode_request(frame, limits);
  } catch (const protocol_error& e) {
    return e.code();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a protocol_error: " << e.what();
    return ErrorCode::internal;
  }
  ADD_FAILURE() << "decoded a bad frame";
  return ErrorCode::internal;
}

nlohmann::json margin_request() {
  return {{"v", 1},
          {"type", "margin"},
          {"id", "r-1"},
          {"portfolios",
           nlohmann::json::array(
               {{{"account", "A"},
                 {"positions", nlohmann::json::array({nlohmann::json::array({"BTC-PERPETUAL", 1.5}),
                                                      nlohmann::json::array({"BTC-28JUN24", -2})})}},
                {{"account", "B"},
                 {"positions", nlohmann::json::array({{{"instrument", "ETH-PERPETUAL"}, {"quantity", 3}}})}}})}};
}

TEST(ProtocolDecode, EveryRequestTypeDecodes) {
  EXPECT_EQ(decode_request(mp({{"v", 1}, {"type", "ping"}, {"id", 7}})).type, RequestType::ping);
  EXPECT_EQ(decode_request(mp({{"v", 1}, {"type", "status"}})).type, RequestType::status);

  const Request m = decode_request(mp(margin_request()));
  ASSERT_EQ(m.type, RequestType::margin);
  ASSERT_EQ(m.margin.positions.size(), 3u);
  EXPECT_EQ(m.margin.accounts, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(m.margin.positions[1].instrument, "BTC-28JUN24");
  EXPECT_EQ(m.margin.positions[1].quantity, -2.0);
  EXPECT_EQ(m.margin.positions[2].account, "B");
  EXPECT_EQ(m.priority, Priority::normal);
  EXPECT_EQ(m.id_raw, mp("r-1"));

  const Request w = decode_request(
      mp({{"v", 1}, {"type", "whatif"}, {"account", "A"}, {"trades", nlohmann::json::array({nlohmann::json::array({"BTC-PERPETUAL", -1})})}}));
  EXPECT_EQ(w.type, RequestType::whatif);
  EXPECT_EQ(w.priority, Priority::high);  // RFQ what-if is intraday work by default
  EXPECT_FALSE(w.whatif.has_positions);

  const Request g = decode_request(mp({{"v", 1}, {"type", "greeks"}, {"instruments", nlohmann::json::array({"X", "Y"})}}));
  EXPECT_EQ(g.greeks.instruments.size(), 2u);

  const Request n = decode_request(mp({{"v", 1},
                                       {"type", "net"},
                                       {"assets", nlohmann::json::array({nlohmann::json::array({"BTC", 8}), nlohmann::json::array({"USD", 2})})},
                                       {"trades", {{"t1", "M1", "M2", "BTC", "USD", "0.5", "60000.25"}}}}));
  ASSERT_EQ(n.net.trades.size(), 1u);
  EXPECT_EQ(n.net.trades[0].price, "60000.25");

  const Request u = decode_request(mp({{"v", 1},
                                       {"type", "market.update"},
                                       {"underlyings", nlohmann::json::array({nlohmann::json{{"underlying", "BTC"}, {"index_price", 61000.0}}})},
                                       {"marks", nlohmann::json::array({nlohmann::json{{"instrument", "BTC-PERPETUAL"}, {"mark_price", 61010.5}}})}}));
  ASSERT_EQ(u.market.underlyings.size(), 1u);
  EXPECT_EQ(u.market.underlyings[0].index_price, 61000.0);
  EXPECT_TRUE(std::isnan(u.market.underlyings[0].rate));  // kept
}

TEST(ProtocolDecode, UnknownTypesAndVersions) {
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "launch_missiles"}})), ErrorCode::bad_request);
  EXPECT_EQ(code_of(mp({{"v", 2}, {"type", "ping"}})), ErrorCode::unsupported_version);
  EXPECT_EQ(code_of(mp({{"v", -1}, {"type", "ping"}})), ErrorCode::unsupported_version);
  EXPECT_EQ(code_of(mp({{"v", 0}, {"type", "ping"}})), ErrorCode::unsupported_version);
  EXPECT_EQ(code_of(mp({{"type", "ping"}})), ErrorCode::bad_request);          // no version
  EXPECT_EQ(code_of(mp({{"v", "1"}, {"type", "ping"}})), ErrorCode::bad_request);
  EXPECT_EQ(code_of(mp({{"v", 1}})), ErrorCode::bad_request);                   // no type
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "ping"}, {"priority", "urgent"}})), ErrorCode::bad_request);
}

TEST(ProtocolDecode, WrongTypesAreBadRequests) {
  EXPECT_EQ(code_of(mp(nlohmann::json::array({1, 2}))), ErrorCode::bad_request);  // root not a map
  EXPECT_EQ(code_of(mp(42)), ErrorCode::bad_request);
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", 5}})), ErrorCode::bad_request);
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "ping"}, {"id", {1, 2}}})), ErrorCode::bad_request);
  auto m = margin_request();
  m["portfolios"][0]["positions"][0][1] = "lots";
  EXPECT_EQ(code_of(mp(m)), ErrorCode::bad_request);
  m = margin_request();
  m["portfolios"] = "A";
  EXPECT_EQ(code_of(mp(m)), ErrorCode::bad_request);
  m = margin_request();
  m["portfolios"][0]["positions"][0] = nlohmann::json::array({"BTC-PERPETUAL"});  // no quantity
  EXPECT_EQ(code_of(mp(m)), ErrorCode::bad_request);
  m = margin_request();
  m["portfolios"][1]["account"] = "A";  // the same account twice
  EXPECT_EQ(code_of(mp(m)), ErrorCode::bad_request);
  m = margin_request();
  m["portfolios"] = nlohmann::json::array();
  EXPECT_EQ(code_of(mp(m)), ErrorCode::bad_request);
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "whatif"}, {"account", "A"}, {"trades", nlohmann::json::array()}})),
            ErrorCode::bad_request);
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "net"}, {"assets", nlohmann::json::array({nlohmann::json::array({"BTC", 30})})}, {"trades", {{"t", "a", "b", "BTC", "USD", "1", "1"}}}})),
            ErrorCode::bad_request);  // scale out of range
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "net"}, {"assets", nlohmann::json::array({nlohmann::json::array({"BTC", 8})})}, {"trades", {{"t,1", "a", "b", "BTC", "USD", "1", "1"}}}})),
            ErrorCode::bad_request);  // a comma would split the CSV record
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "market.update"}})), ErrorCode::bad_request);
  // A NaN quantity (msgpack float64 NaN).
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(4);
  pk.pack(std::string("v")); pk.pack(1);
  pk.pack(std::string("type")); pk.pack(std::string("whatif"));
  pk.pack(std::string("account")); pk.pack(std::string("A"));
  pk.pack(std::string("trades")); pk.pack_array(1); pk.pack_array(2);
  pk.pack(std::string("X")); pk.pack_double(std::nan(""));
  EXPECT_EQ(code_of(std::string(buf.data(), buf.size())), ErrorCode::bad_request);
}

TEST(ProtocolDecode, DuplicateKeysAreRejected) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(3);
  pk.pack(std::string("v")); pk.pack(1);
  pk.pack(std::string("type")); pk.pack(std::string("ping"));
  pk.pack(std::string("type")); pk.pack(std::string("status"));
  EXPECT_EQ(code_of(std::string(buf.data(), buf.size())), ErrorCode::bad_request);
}

TEST(ProtocolDecode, TruncatedFramesAreBadRequests) {
  const std::string good = mp(margin_request());
  ASSERT_NO_THROW(decode_request(good));
  for (std::size_t n = 1; n < good.size(); ++n)
    EXPECT_EQ(code_of(std::string_view(good).substr(0, n)), ErrorCode::bad_request) << "prefix " << n;
  EXPECT_EQ(code_of(std::string_view()), ErrorCode::bad_request);
}

TEST(ProtocolDecode, TrailingBytesAreRejected) {
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "ping"}}) + "\xc0"), ErrorCode::bad_request);
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", "ping"}}) + mp({{"v", 1}, {"type", "ping"}})), ErrorCode::bad_request);
}

TEST(ProtocolDecode, HugeDeclaredLengthsAreTooLarge) {
  // array32 / map32 headers declaring ~4 billion elements in a 5-byte frame: refused before
  // anything is allocated.
  EXPECT_EQ(code_of(std::string("\xdd\xff\xff\xff\xff", 5)), ErrorCode::too_large);
  EXPECT_EQ(code_of(std::string("\xdf\xff\xff\xff\xff", 5)), ErrorCode::too_large);
  // str32 / bin32: their bytes are referenced in the frame, never allocated; a declared length
  // beyond the frame is a truncated frame.
  EXPECT_EQ(code_of(std::string("\xdb\xff\xff\xff\xff", 5)), ErrorCode::bad_request);
  EXPECT_EQ(code_of(std::string("\xc6\xff\xff\xff\xff", 5)), ErrorCode::bad_request);
  // A bin object is refused (no binary fields in the protocol: the bin limit is 0, so any bin is
  // over it). ("\x02" "ab" split: "\x02ab" would be a single hex escape.)
  EXPECT_EQ(code_of(std::string("\xc4\x02" "ab", 4)), ErrorCode::too_large);
  // Inside a valid-looking map: "portfolios": array32 of 2^31 elements.
  std::string f = "\x83";
  f += mp("v").substr(0) + std::string("\x01", 1);
  f += mp("type") + mp("margin");
  f += mp("portfolios") + std::string("\xdd\x80\x00\x00\x00", 5);
  EXPECT_EQ(code_of(f), ErrorCode::too_large);
  // More than the frame can hold, though under the cap: a 100-element array in 8 bytes is a
  // truncated frame (refused before allocating 100 objects).
  EXPECT_EQ(code_of(std::string("\xdc\x00\x64\x01\x02\x03\x04\x05", 8)), ErrorCode::bad_request);
}

TEST(ProtocolDecode, OversizedFramesAndDeepNestingAreTooLarge) {
  Limits small;
  small.max_frame_bytes = 64;
  EXPECT_EQ(code_of(mp(margin_request()), small), ErrorCode::too_large);
  std::string deep(40, '\x91');  // [[[[...]]]] 40 deep
  deep += '\xc0';
  EXPECT_EQ(code_of(deep), ErrorCode::too_large);
  // Strings longer than the cap.
  EXPECT_EQ(code_of(mp({{"v", 1}, {"type", std::string(5000, 'x')}})), ErrorCode::too_large);
}

TEST(ProtocolDecode, IdIsKeptForErrorReplies) {
  try {
    decode_request(mp({{"v", 9}, {"type", "ping"}, {"id", "abc"}}));
    FAIL();
  } catch (const protocol_error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported_version);
    EXPECT_EQ(e.id_raw(), mp("abc"));
    const auto reply = nlohmann::json::from_msgpack(encode_error(e.id_raw(), e.code(), e.what()));
    EXPECT_EQ(reply["type"], "error");
    EXPECT_EQ(reply["code"], "unsupported_version");
    EXPECT_EQ(reply["id"], "abc");
    EXPECT_EQ(reply["v"], 1);
  }
}

TEST(ProtocolDecode, TenThousandRandomByteStrings) {
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 64);
  const std::string seed = mp(margin_request());
  std::size_t errors = 0;
  for (int i = 0; i < 10'000; ++i) {
    std::string f;
    if (i % 2 == 0) {
      f.resize(static_cast<std::size_t>(len(rng)));
      for (char& c : f) c = static_cast<char>(byte(rng));
    } else {  // mutations of a valid request reach deeper into the decoder
      f = seed;
      for (int k = 0; k < 1 + i % 4; ++k) f[static_cast<std::size_t>(rng() % f.size())] = static_cast<char>(byte(rng));
    }
    try {
      decode_request(f);
    } catch (const protocol_error& e) {
      ++errors;
      // The error reply is always well-formed msgpack.
      const auto reply = nlohmann::json::from_msgpack(encode_error(e.id_raw().empty() ? nil_id() : e.id_raw(), e.code(), e.what()));
      ASSERT_EQ(reply["type"], "error");
    } catch (const std::exception& e) {
      FAIL() << "frame " << i << ": not a protocol_error: " << e.what();
    }
  }
  EXPECT_GT(errors, 9'000u);  // a few mutations still decode (e.g. a changed quantity)
}

TEST(ProtocolEncode, RepliesAreMapsWithTheEnvelope) {
  const std::string id = mp(17);
  const auto pong = nlohmann::json::from_msgpack(encode_pong(id, 1.5));
  EXPECT_EQ(pong["type"], "ping.result");
  EXPECT_EQ(pong["id"], 17);
  StatusInfo s;
  s.backend = "cpu";
  s.queue_high = 2;
  const auto st = nlohmann::json::from_msgpack(encode_status(nil_id(), s));
  EXPECT_EQ(st["type"], "status.result");
  EXPECT_TRUE(st["id"].is_null());
  EXPECT_EQ(st["queues"]["high"], 2);
  EXPECT_TRUE(st.contains("latency_us"));
  std::vector<GreeksRow> rows(1);
  rows[0].id = "X";
  for (int k = 0; k < 11; ++k) rows[0].values[k] = k + 0.25;
  const auto g = nlohmann::json::from_msgpack(encode_greeks_result(id, rows));
  EXPECT_EQ(g["columns"].size(), 12u);
  EXPECT_EQ(g["rows"][0][0], "X");
  EXPECT_EQ(g["rows"][0][11].get<double>(), 10.25);
}


// ---- collateral and calls ------------------------------------------------------------------

using nlohmann::json;

json req(const std::string& type, json fields = json::object()) {
  fields["v"] = 1;
  fields["type"] = type;
  return fields;
}

/// The message of the protocol_error `frame` raises (bad_request expected).
std::string bad_message(const json& j) {
  try {
    decode_request(mp(j));
  } catch (const protocol_error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "decoded " << j.dump();
  return {};
}

TEST(ProtocolCollateral, NamesOfTypesAndCodes) {
  EXPECT_STREQ(request_type_name(RequestType::collateral_deposit), "collateral.deposit");
  EXPECT_STREQ(request_type_name(RequestType::collateral_withdraw), "collateral.withdraw");
  EXPECT_STREQ(request_type_name(RequestType::collateral_query), "collateral.query");
  EXPECT_STREQ(request_type_name(RequestType::calls_run), "calls.run");
  EXPECT_STREQ(request_type_name(RequestType::calls_query), "calls.query");
  EXPECT_STREQ(error_code_name(ErrorCode::insufficient_collateral), "insufficient_collateral");
}

TEST(ProtocolCollateral, DepositWithdrawQueryDecode) {
  const Request d = decode_request(mp(req("collateral.deposit", {{"id", "d-1"}, {"account", "ACC-1"}, {"asset", "BTC"},
                                                                  {"amount", "1.25"}, {"reference", "wire:7731"}})));
  EXPECT_EQ(d.type, RequestType::collateral_deposit);
  EXPECT_EQ(d.priority, Priority::high);
  EXPECT_EQ(d.collateral_change.account, "ACC-1");
  EXPECT_EQ(d.collateral_change.asset, "BTC");
  EXPECT_EQ(d.collateral_change.amount, "1.25");
  EXPECT_EQ(d.collateral_change.reference, "wire:7731");
  // An integer amount is exact too; the reference is optional.
  const Request i = decode_request(mp(req("collateral.deposit", {{"account", "A"}, {"asset", "USD"}, {"amount", 500}})));
  EXPECT_EQ(i.collateral_change.amount, "500");
  EXPECT_EQ(i.collateral_change.reference, "");

  const Request w = decode_request(mp(req("collateral.withdraw", {{"account", "A"}, {"asset", "USDC"}, {"amount", "excess"}})));
  EXPECT_EQ(w.type, RequestType::collateral_withdraw);
  EXPECT_EQ(w.priority, Priority::high);
  EXPECT_EQ(w.collateral_change.amount, "excess");
  EXPECT_EQ(decode_request(mp(req("collateral.withdraw", {{"account", "A"}, {"asset", "USDC"}, {"amount", "0.000001"}, {"priority", "normal"}})))
                .priority,
            Priority::normal);

  const Request q = decode_request(mp(req("collateral.query")));
  EXPECT_EQ(q.type, RequestType::collateral_query);
  EXPECT_EQ(q.collateral_query.account, "");
  EXPECT_EQ(q.priority, Priority::normal);
  EXPECT_EQ(decode_request(mp(req("collateral.query", {{"account", "ACC-1"}}))).collateral_query.account, "ACC-1");
  EXPECT_EQ(decode_request(mp(req("collateral.query", {{"account", nullptr}}))).collateral_query.account, "");
}

TEST(ProtocolCollateral, AmountsAreExactPositiveText) {
  const json base = req("collateral.deposit", {{"account", "A"}, {"asset", "BTC"}});
  for (const json& amount : {json("excess"), json("0"), json("0.000"), json("-1"), json("+1"), json("1e3"), json("abc"),
                             json(""), json(" 1"), json(1.5), json(0), json(-3), json(nullptr), json::array({1})}) {
    json j = base;
    j["amount"] = amount;
    const std::string m = bad_message(j);
    EXPECT_NE(m.find("amount"), std::string::npos) << m;
  }
  json missing = base;
  EXPECT_NE(bad_message(missing).find("amount"), std::string::npos);
  // "excess" is a withdrawal's only.
  json w = base;
  w["type"] = "collateral.withdraw";
  w["amount"] = "excess";
  EXPECT_NO_THROW(decode_request(mp(w)));
  w["amount"] = "EXCESS";
  EXPECT_EQ(code_of(mp(w)), ErrorCode::bad_request);
}

TEST(ProtocolCollateral, IdentifiersArePrintableAsciiUpTo128Bytes) {
  const json deposit = req("collateral.deposit", {{"account", "A"}, {"asset", "BTC"}, {"amount", "1"}, {"reference", "r"}});
  const json run = req("calls.run", {{"run_id", "R"}});
  struct Case {
    json base;
    const char* field;
  };
  for (const Case& c : {Case{deposit, "account"}, Case{deposit, "asset"}, Case{deposit, "reference"}, Case{run, "run_id"},
                        Case{req("calls.query", {{"run_id", "R"}}), "run_id"},
                        Case{req("collateral.query", {{"account", "A"}}), "account"}}) {
    SCOPED_TRACE(c.field);
    for (const std::string& bad_id : {std::string(129, 'x'), std::string("has space"), std::string("a,b"),
                                      std::string("tab\\t"), std::string("caf\xc3\xa9"), std::string("nl\n"),
                                      std::string("del\x7f")}) {
      json j = c.base;
      j[c.field] = bad_id;
      if (bad_id == "tab\\t") j[c.field] = "tab\t";
      const std::string m = bad_message(j);
      EXPECT_EQ(m.rfind(c.field, 0), 0u) << m;  // the message starts with the field's name
    }
    json ok = c.base;
    ok[c.field] = std::string(128, 'x');
    EXPECT_NO_THROW(decode_request(mp(ok)));
    ok[c.field] = "!~:/._-#@";
    EXPECT_NO_THROW(decode_request(mp(ok)));
    json wrong_type = c.base;
    wrong_type[c.field] = 7;
    EXPECT_EQ(code_of(mp(wrong_type)), ErrorCode::bad_request);
  }
  // account and asset are required (reference, run_id and the query's account are not).
  for (const char* field : {"account", "asset"}) {
    json j = deposit;
    j.erase(field);
    EXPECT_EQ(code_of(mp(j)), ErrorCode::bad_request) << field;
    j[field] = "";
    EXPECT_EQ(code_of(mp(j)), ErrorCode::bad_request) << field;
  }
  json no_ref = deposit;
  no_ref["reference"] = "";
  EXPECT_EQ(decode_request(mp(no_ref)).collateral_change.reference, "");  // "" = none
}

TEST(ProtocolCalls, RunAndQueryDecode) {
  const Request r = decode_request(mp(req("calls.run")));
  EXPECT_EQ(r.type, RequestType::calls_run);
  EXPECT_EQ(r.calls_run.run_id, "");
  EXPECT_EQ(r.calls_run.kind, "on_demand");
  EXPECT_EQ(r.priority, Priority::normal);
  for (const char* kind : {"eod", "intraday", "on_demand"})
    EXPECT_EQ(decode_request(mp(req("calls.run", {{"kind", kind}, {"run_id", "EOD-2024-06-28"}}))).calls_run.kind, kind);
  EXPECT_EQ(decode_request(mp(req("calls.run", {{"kind", nullptr}}))).calls_run.kind, "on_demand");
  for (const json& kind : {json("EOD"), json("weekly"), json(""), json(1)})
    EXPECT_NE(bad_message(req("calls.run", {{"kind", kind}})).find("kind"), std::string::npos);
  const Request q = decode_request(mp(req("calls.query", {{"run_id", "EOD-1"}})));
  EXPECT_EQ(q.type, RequestType::calls_query);
  EXPECT_EQ(q.calls_query.run_id, "EOD-1");
  EXPECT_EQ(decode_request(mp(req("calls.query"))).calls_query.run_id, "");
}

TEST(ProtocolDefaults, DeclareDecodes) {
  EXPECT_STREQ(request_type_name(RequestType::default_declare), "default.declare");
  const Request d = decode_request(mp(req("default.declare", {{"member", "DESK-B"}, {"reason", "missed the 16:00 call"},
                                                               {"default_id", "D-7"}})));
  EXPECT_EQ(d.type, RequestType::default_declare);
  EXPECT_EQ(d.default_declare.member, "DESK-B");
  EXPECT_EQ(d.default_declare.reason, "missed the 16:00 call");
  EXPECT_EQ(d.default_declare.default_id, "D-7");
  EXPECT_EQ(d.priority, Priority::normal);
  EXPECT_EQ(decode_request(mp(req("default.declare", {{"member", "M"}}))).default_declare.default_id, "");
  EXPECT_NE(bad_message(req("default.declare")).find("member"), std::string::npos);
  EXPECT_NE(bad_message(req("default.declare", {{"member", "has space"}})).find("member"), std::string::npos);
  EXPECT_NE(bad_message(req("default.declare", {{"member", 5}})).find("member"), std::string::npos);
}

// ---- values that make no sense ------------------------------------------------------------------

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");

TEST(ProtocolValues, QuantitiesMustBeFiniteAndBelow1e12) {
  for (const double q : {kNaN, kInf, -kInf, 1.000001e12, -2e12, 1e300}) {
    SCOPED_TRACE(q);
    auto m = margin_request();
    m["portfolios"][0]["positions"][0][1] = q;
    EXPECT_EQ(code_of(mp(m)), ErrorCode::bad_request);
    m = margin_request();
    m["portfolios"][1]["positions"][0]["quantity"] = q;  // the map form
    EXPECT_EQ(code_of(mp(m)), ErrorCode::bad_request);
    const json w = req("whatif", {{"account", "A"}, {"trades", json::array({json::array({"X", q})})}});
    EXPECT_EQ(code_of(mp(w)), ErrorCode::bad_request);
    json wp = req("whatif", {{"account", "A"}, {"trades", json::array({json::array({"X", 1})})}});
    wp["positions"] = json::array({json::array({"X", q})});
    EXPECT_EQ(code_of(mp(wp)), ErrorCode::bad_request);
  }
  auto m = margin_request();
  m["portfolios"][0]["positions"][0][1] = -1e12;  // the bound itself is fine
  EXPECT_EQ(decode_request(mp(m)).margin.positions[0].quantity, -1e12);
  // The message names the element.
  m["portfolios"][0]["positions"][1][1] = 5e12;
  try {
    decode_request(mp(m));
    FAIL();
  } catch (const protocol_error& e) {
    EXPECT_NE(std::string(e.what()).find("portfolios[0].positions[1][1]"), std::string::npos) << e.what();
  }
}

TEST(ProtocolValues, MarketUpdateValuesInRange) {
  auto underlying = [](const char* key, const json& value) {
    return req("market.update", {{"underlyings", json::array({json{{"underlying", "BTC"}, {key, value}}})}});
  };
  auto mark = [](const char* key, const json& value) {
    return req("market.update", {{"marks", json::array({json{{"instrument", "BTC-PERPETUAL"}, {key, value}}})}});
  };
  for (const double bad_price : {0.0, -1.0, 1.1e12, kInf, kNaN}) {
    SCOPED_TRACE(bad_price);
    EXPECT_NE(bad_message(underlying("index_price", bad_price)).find("index_price"), std::string::npos);
    EXPECT_NE(bad_message(mark("mark_price", bad_price)).find("mark_price"), std::string::npos);
  }
  for (const double bad_rate : {10.5, -11.0, kInf, kNaN})
    EXPECT_NE(bad_message(underlying("rate", bad_rate)).find("rate"), std::string::npos) << bad_rate;
  for (const double bad_iv : {0.0, -0.1, 100.5, kInf, kNaN})
    EXPECT_NE(bad_message(mark("mark_iv", bad_iv)).find("mark_iv"), std::string::npos) << bad_iv;
  for (const json& bad_time : {json(kInf), json(kNaN), json(-1.0), json(1e12), json("not a time")})
    EXPECT_NE(bad_message(underlying("valuation_time", bad_time)).find("valuation_time"), std::string::npos)
        << bad_time.dump();
  // In range: accepted (nil keeps the value).
  EXPECT_NO_THROW(decode_request(mp(underlying("index_price", 1e12))));
  EXPECT_NO_THROW(decode_request(mp(underlying("rate", -10.0))));
  EXPECT_NO_THROW(decode_request(mp(underlying("rate", 0.0))));
  EXPECT_NO_THROW(decode_request(mp(underlying("valuation_time", "2024-06-28T08:00:00Z"))));
  EXPECT_NO_THROW(decode_request(mp(underlying("valuation_time", 1719561600))));
  EXPECT_NO_THROW(decode_request(mp(mark("mark_price", 0.0001))));
  EXPECT_NO_THROW(decode_request(mp(mark("mark_iv", 100.0))));
  EXPECT_TRUE(std::isnan(decode_request(mp(mark("mark_iv", nullptr))).market.marks[0].mark_iv));
}

TEST(ProtocolValues, MarginCollateralAmounts) {
  for (const double amount : {-0.01, 1.5e15, kInf, kNaN}) {
    auto m = margin_request();
    m["portfolios"][0]["collateral"] = json::array({json::array({"BTC", amount})});
    EXPECT_NE(bad_message(m).find("collateral[0]"), std::string::npos) << amount;
  }
  auto m = margin_request();
  m["portfolios"][0]["collateral"] = json::array({json::array({"BTC", 0.0}), json::array({"USD", 1e15})});
  const Request r = decode_request(mp(m));
  ASSERT_EQ(r.margin.collateral.size(), 2u);
  EXPECT_EQ(r.margin.collateral[1].account, "A");
  EXPECT_EQ(r.margin.collateral[1].asset, "USD");
  EXPECT_TRUE(r.margin.collateral[1].account.same_storage(r.margin.positions[0].account));
}

// ---- memory: names are shared, decoded strings are bounded --------------------------------------

/// The bytes of every string a decoded margin request holds, a shared name counted once per
/// distinct storage.
std::size_t margin_string_bytes(const Request& r) {
  std::size_t bytes = r.id_raw.size() + r.margin.cycle_id.size();
  for (const std::string& a : r.margin.accounts) bytes += a.size();
  const SharedName* last = nullptr;
  std::size_t distinct = 0;
  for (const RequestPosition& p : r.margin.positions) {
    bytes += p.instrument.size();
    if (!last || !p.account.same_storage(*last)) {
      bytes += p.account.size();
      ++distinct;
      last = &p.account;
    }
  }
  EXPECT_EQ(distinct, r.margin.accounts.size());  // one storage per account (portfolios are contiguous)
  return bytes;
}

/// A margin frame of `portfolios` accounts named with `name_bytes` bytes each, `per` positions
/// [instrument "I", 1] each: 4 bytes of frame per position.
std::string long_name_frame(int portfolios, std::uint32_t per, std::size_t name_bytes) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(4);
  pk.pack(std::string("v")); pk.pack(1);
  pk.pack(std::string("type")); pk.pack(std::string("margin"));
  pk.pack(std::string("id")); pk.pack(std::string("big"));
  pk.pack(std::string("portfolios"));
  pk.pack_array(static_cast<std::uint32_t>(portfolios));
  for (int a = 0; a < portfolios; ++a) {
    pk.pack_map(2);
    pk.pack(std::string("account"));
    std::string name(name_bytes, 'a');
    name[0] = static_cast<char>('A' + a);
    pk.pack(name);
    pk.pack(std::string("positions"));
    pk.pack_array(per);
    for (std::uint32_t i = 0; i < per; ++i) {
      pk.pack_array(2);
      pk.pack(std::string("I"));
      pk.pack(1);
    }
  }
  return std::string(buf.data(), buf.size());
}

TEST(ProtocolMemory, AMillionPositionsOfOneLongNameHoldTheNameOnce) {
  // The issue's frame: 1M positions of one 4,000-byte account in 4 MB. Every position once
  // held its own copy of the name (4 GB); now the request holds the name twice (accounts and
  // the one shared copy) and the strings of the decoded request stay under 2 x the frame.
  Limits limits;
  limits.max_array = std::size_t(1) << 20;  // one portfolio of 1M positions
  const std::string frame = long_name_frame(1, 1'000'000, 4000);
  ASSERT_LE(frame.size(), limits.max_frame_bytes);
  const Request r = decode_request(frame, limits);
  ASSERT_EQ(r.margin.accounts.size(), 1u);
  ASSERT_EQ(r.margin.positions.size(), 1'000'000u);
  EXPECT_EQ(r.margin.positions.back().account.size(), 4000u);
  const std::size_t bytes = margin_string_bytes(r);
  EXPECT_LT(bytes, 2 * frame.size()) << bytes << " string bytes for a frame of " << frame.size();
  EXPECT_LT(bytes, frame.size() / 3);  // 1M one-byte instruments + the name twice

  // The default limits (arrays of at most 262,144): four portfolios of 250,000.
  const std::string four = long_name_frame(4, 250'000, 4000);
  const Request r4 = decode_request(four);
  ASSERT_EQ(r4.margin.accounts.size(), 4u);
  ASSERT_EQ(r4.margin.positions.size(), 1'000'000u);
  EXPECT_LT(margin_string_bytes(r4), 2 * four.size());
}

TEST(ProtocolMemory, DecodedStringsAreCappedAtTwiceTheFrame) {
  // A package whose 4,000-byte package_id is copied into each of its legs: refused rather than
  // decoded into ~40 x the frame.
  json legs = json::array();
  for (int i = 0; i < 200; ++i)
    legs.push_back({{"source", "s"}, {"trade_id", "t" + std::to_string(i)}, {"account", "A"}, {"instrument", "X"},
                    {"quantity", "1"}, {"price", "1"}, {"time", "2024-06-28T08:00:00Z"}});
  const json pkg = req("trade.submit", {{"package", {{"package_id", std::string(4000, 'p')}, {"legs", legs}}}});
  EXPECT_EQ(code_of(mp(pkg)), ErrorCode::too_large);
  // With a short package id it decodes.
  json ok = pkg;
  ok["package"]["package_id"] = "RFQ-1";
  EXPECT_EQ(decode_request(mp(ok)).trade_submit.legs.size(), 200u);
  // The cap follows Limits: a tighter factor refuses what the default accepts.
  Limits tight;
  tight.string_bytes_factor = 0;
  tight.string_bytes_slack = 8;
  EXPECT_EQ(code_of(mp(req("collateral.deposit", {{"account", "ACCOUNT-1"}, {"asset", "BTC"}, {"amount", "1"}})), tight),
            ErrorCode::too_large);
}

// ---- peek_request -------------------------------------------------------------------------------

std::vector<json> one_of_each_type() {
  const json leg = {{"source", "s"}, {"trade_id", "t"}, {"account", "A"}, {"instrument", "X"},
                    {"quantity", "1"}, {"price", "1"}, {"time", "2024-06-28T08:00:00Z"}};
  return {
      req("ping"),
      req("status"),
      margin_request(),
      req("whatif", {{"account", "A"}, {"trades", json::array({json::array({"X", -1})})}}),
      req("greeks"),
      req("net", {{"assets", json::array({json::array({"BTC", 8}), json::array({"USD", 2})})},
                  {"trades", {{"t1", "M1", "M2", "BTC", "USD", "0.5", "60000.25"}}}}),
      req("market.update", {{"underlyings", json::array({json{{"underlying", "BTC"}, {"index_price", 61000.0}}})}}),
      req("trade.submit", {{"trade", leg}}),
      req("trade.cancel", {{"source", "s"}, {"trade_id", "t"}}),
      req("trades.query"),
      req("positions.query"),
      req("collateral.deposit", {{"account", "A"}, {"asset", "BTC"}, {"amount", "1"}}),
      req("collateral.withdraw", {{"account", "A"}, {"asset", "BTC"}, {"amount", "excess"}}),
      req("collateral.query"),
      req("calls.run", {{"kind", "eod"}}),
      req("calls.query"),
      req("default.declare", {{"member", "M1"}}),
  };
}

TEST(ProtocolPeek, AgreesWithDecodeForEveryTypeIdAndPriority) {
  const std::vector<json> all = one_of_each_type();
  ASSERT_EQ(all.size(), static_cast<std::size_t>(RequestType::default_declare) + 1);
  std::set<RequestType> types;
  for (const json& base : all)
    for (const json& id : {json(nullptr), json(7), json(-3), json("r-9"), json(1ull << 40)})
      for (const json& priority : {json("absent"), json(nullptr), json("high"), json("normal"), json("eod")}) {
        json j = base;
        if (!id.is_null()) j["id"] = id;
        if (priority != "absent") j["priority"] = priority;
        SCOPED_TRACE(j.dump().substr(0, 200));
        const std::string frame = mp(j);
        const Request r = decode_request(frame);
        const RequestHeader h = peek_request(frame);
        EXPECT_EQ(h.type, r.type);
        EXPECT_EQ(h.id_raw, r.id_raw);
        EXPECT_EQ(h.priority, r.priority);
        EXPECT_EQ(h.version, r.version);
        if (priority == "absent" || priority.is_null()) {
          EXPECT_EQ(h.priority, default_priority(h.type));
        }
        types.insert(h.type);
      }
  EXPECT_EQ(types.size(), all.size());
  // A non-canonical integer id (uint16 7) is echoed re-packed by both, as 0x07.
  std::string frame = "\x83";
  frame += mp("v") + mp(1) + mp("type") + mp("ping") + mp("id") + std::string("\xcd\x00\x07", 3);
  EXPECT_EQ(peek_request(frame).id_raw, decode_request(frame).id_raw);
  EXPECT_EQ(peek_request(frame).id_raw, mp(7));
}

TEST(ProtocolPeek, BadHeadersFailLikeDecode) {
  std::vector<std::string> frames = {
      mp({{"v", 1}, {"type", "launch_missiles"}, {"id", "x"}}),
      mp({{"v", 2}, {"type", "ping"}, {"id", 4}}),
      mp({{"v", -1}, {"type", "ping"}}),
      mp({{"type", "ping"}}),
      mp({{"v", "1"}, {"type", "ping"}}),
      mp({{"v", 1}}),
      mp({{"v", 1}, {"type", 5}}),
      mp({{"v", 1}, {"type", "ping"}, {"priority", "urgent"}, {"id", "p"}}),
      mp({{"v", 1}, {"type", "ping"}, {"priority", 1}}),
      mp({{"v", 1}, {"type", "ping"}, {"id", {1, 2}}}),
      mp({{"v", 1}, {"type", "ping"}, {"id", 1.5}}),
      mp(json::array({1, 2})),
      mp(42),
      std::string(),
      std::string("\xdd\xff\xff\xff\xff", 5),
      std::string("\xdf\xff\xff\xff\xff", 5),
      std::string("\xc4\x02" "ab", 4),
      std::string("\xc1", 1),
      mp({{"v", 1}, {"type", std::string(5000, 'x')}}),
  };
  std::string deep(40, '\x91');
  deep += '\xc0';
  frames.push_back(deep);
  // Duplicate header keys.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(3);
  pk.pack(std::string("v")); pk.pack(1);
  pk.pack(std::string("type")); pk.pack(std::string("ping"));
  pk.pack(std::string("type")); pk.pack(std::string("status"));
  frames.emplace_back(buf.data(), buf.size());
  // Every prefix of a header.
  const std::string good = mp({{"id", "abc"}, {"type", "status"}, {"v", 1}});
  for (std::size_t n = 1; n < good.size(); ++n) frames.push_back(good.substr(0, n));
  Limits small;
  small.max_frame_bytes = 64;
  for (const std::string& f : frames) {
    SCOPED_TRACE(nlohmann::json(std::vector<unsigned char>(f.begin(), f.end())).dump().substr(0, 120));
    const ErrorCode decoded = code_of(f);
    try {
      peek_request(f);
      ADD_FAILURE() << "peek accepted a bad header";
    } catch (const protocol_error& e) {
      EXPECT_EQ(e.code(), decoded) << e.what();
    }
  }
  // too_large by frame size; the id still correlates on a header error.
  EXPECT_THROW(peek_request(mp(margin_request()), small), protocol_error);
  try {
    peek_request(mp({{"v", 9}, {"type", "ping"}, {"id", "abc"}}));
    FAIL();
  } catch (const protocol_error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported_version);
    EXPECT_EQ(e.id_raw(), mp("abc"));
  }
}

TEST(ProtocolPeek, RandomAndMutatedFrames) {
  // Only protocol_errors; a frame decode_request accepts is peeked alike; a frame peek refuses,
  // decode_request refuses too.
  std::mt19937_64 rng(77);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 64);
  std::vector<std::string> seeds;
  for (const json& j : one_of_each_type()) seeds.push_back(mp(j));
  std::size_t agreed = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string f;
    if (i % 4 == 0) {
      f.resize(static_cast<std::size_t>(len(rng)));
      for (char& c : f) c = static_cast<char>(byte(rng));
    } else {
      f = seeds[static_cast<std::size_t>(i) % seeds.size()];
      for (int k = 0; k < 1 + i % 3; ++k) f[static_cast<std::size_t>(rng() % f.size())] = static_cast<char>(byte(rng));
    }
    bool peeked = false, decoded = false;
    RequestHeader h;
    Request r;
    try {
      h = peek_request(f);
      peeked = true;
    } catch (const protocol_error&) {
    } catch (const std::exception& e) {
      FAIL() << "frame " << i << ": peek threw a non-protocol_error: " << e.what();
    }
    try {
      r = decode_request(f);
      decoded = true;
    } catch (const protocol_error&) {
    }
    if (decoded) {
      ASSERT_TRUE(peeked) << "frame " << i;
      EXPECT_EQ(h.type, r.type);
      EXPECT_EQ(h.id_raw, r.id_raw);
      EXPECT_EQ(h.priority, r.priority);
      ++agreed;
    }
  }
  EXPECT_GT(agreed, 100u);
}

TEST(ProtocolPeek, ReadsOnlyTheHeaderWhenItComesFirst) {
  // v, type, id and priority first: the payload after them is never read, even a broken one
  // (decode_request, the authority, refuses it).
  std::string frame = "\x85";
  frame += mp("v") + mp(1) + mp("type") + mp("margin") + mp("id") + mp("h-1") + mp("priority") + mp("high");
  frame += mp("portfolios") + std::string("\xdd\x00\x03\x0d\x40", 5);  // 200,000 elements declared, none there
  const RequestHeader h = peek_request(frame);
  EXPECT_EQ(h.type, RequestType::margin);
  EXPECT_EQ(h.id_raw, mp("h-1"));
  EXPECT_EQ(h.priority, Priority::high);
  EXPECT_EQ(code_of(frame), ErrorCode::bad_request);
}

TEST(ProtocolPeek, AMillionPositionsArePeekedWithoutAllocatingPerPosition) {
  // The payload first and no priority: peek must scan the whole map, in place.
  Limits limits;
  limits.max_array = std::size_t(1) << 20;
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(4);
  pk.pack(std::string("portfolios"));
  pk.pack_array(1);
  pk.pack_map(2);
  pk.pack(std::string("account")); pk.pack(std::string(4000, 'a'));
  pk.pack(std::string("positions"));
  pk.pack_array(1'000'000);
  for (int i = 0; i < 1'000'000; ++i) {
    pk.pack_array(2);
    pk.pack(std::string("I"));
    pk.pack(i % 3 == 0 ? -1 : 2);
  }
  pk.pack(std::string("type")); pk.pack(std::string("margin"));
  pk.pack(std::string("id")); pk.pack(std::string("a-rather-long-request-id-of-40-bytes-xyz"));
  pk.pack(std::string("v")); pk.pack(1);
  const std::string frame(buf.data(), buf.size());
  ASSERT_LE(frame.size(), limits.max_frame_bytes);

  {  // the counter counts this thread's allocations
    const std::size_t at = t_allocations;
    std::vector<std::unique_ptr<int>> v;
    for (int i = 0; i < 100; ++i) v.push_back(std::make_unique<int>(i));
    ASSERT_GE(t_allocations - at, 100u);
  }
  const std::size_t before = t_allocations;
  const RequestHeader h = peek_request(frame, limits);
  const std::size_t allocations = t_allocations - before;
  EXPECT_EQ(h.type, RequestType::margin);
  EXPECT_EQ(h.priority, Priority::normal);
  EXPECT_LE(allocations, 8u) << "peek_request allocated per element";

  const Request r = decode_request(frame, limits);
  EXPECT_EQ(r.id_raw, h.id_raw);
  EXPECT_EQ(r.margin.positions.size(), 1'000'000u);
}

// ---- replies --------------------------------------------------------------------------------------

TEST(ProtocolEncode, CollateralReplies) {
  const std::string id = mp("c-1");
  CollateralChangeResult d{"recorded", "ACC-1", "BTC", "1.25", "3.50000000", 17, nullptr, ""};
  const auto dep = json::from_msgpack(encode_collateral_change_result(id, RequestType::collateral_deposit, d));
  EXPECT_EQ(dep["type"], "collateral.deposit.result");
  EXPECT_EQ(dep["id"], "c-1");
  EXPECT_EQ(dep["outcome"], "recorded");
  EXPECT_EQ(dep["account"], "ACC-1");
  EXPECT_EQ(dep["asset"], "BTC");
  EXPECT_EQ(dep["amount"], "1.25");
  EXPECT_EQ(dep["balance"], "3.50000000");
  EXPECT_EQ(dep["movement_seq"], 17);
  EXPECT_EQ(dep["cycle_id"], "");
  EXPECT_FALSE(dep.contains("check"));

  const CollateralFigures f{41000.5, 90000.0, 60000.0, "USD"};
  CollateralChangeResult w{"recorded", "ACC-1", "BTC", "0.5", "3.00000000", 18, &f, "wd-ACC-1-18"};
  const std::string wire = encode_collateral_change_result(id, RequestType::collateral_withdraw, w);
  const auto wd = json::from_msgpack(wire);
  EXPECT_EQ(wd["type"], "collateral.withdraw.result");
  EXPECT_EQ(wd["cycle_id"], "wd-ACC-1-18");
  EXPECT_EQ(wd["check"]["im"].get<double>(), 41000.5);
  EXPECT_EQ(wd["check"]["value_before"].get<double>(), 90000.0);
  EXPECT_EQ(wd["check"]["value_after"].get<double>(), 60000.0);
  EXPECT_EQ(wd["check"]["units"], "USD");
  // Figures are float64 on the wire, also when integral (msgpack 0xcb before 90000.0).
  EXPECT_NE(wire.find(std::string("\xcb\x40\xf5\xf9\x00", 5)), std::string::npos);
  EXPECT_THROW(encode_collateral_change_result(id, RequestType::margin, d), std::invalid_argument);

  const auto refused = json::from_msgpack(encode_collateral_refused(id, "IM would exceed the collateral value", f));
  EXPECT_EQ(refused["type"], "error");
  EXPECT_EQ(refused["code"], "insufficient_collateral");
  EXPECT_EQ(refused["message"], "IM would exceed the collateral value");
  EXPECT_EQ(refused["check"]["value_after"].get<double>(), 60000.0);

  const std::vector<BalanceRowText> rows{{"ACC-1", "BTC", "3.00000000", 300000000, 8}, {"ACC-1", "USD", "12.50", 1250, 2}};
  const auto q = json::from_msgpack(encode_collateral_query_result(id, rows));
  EXPECT_EQ(q["type"], "collateral.query.result");
  EXPECT_EQ(q["columns"], json::array({"account", "asset", "amount", "amount_minor", "scale"}));
  EXPECT_EQ(q["rows"][0], json::array({"ACC-1", "BTC", "3.00000000", 300000000, 8}));
  EXPECT_EQ(q["rows"][1][3], 1250);
}

TEST(ProtocolEncode, CallsReplies) {
  CallRunText run;
  run.run_id = "EOD-2024-06-28";
  run.kind = "eod";
  run.at = "2024-06-28T08:00:00Z";
  run.model = "deribit-pm";
  run.asset = "USD";
  run.scale = 2;
  run.cycle_id = "calls-EOD-2024-06-28";
  run.cycle_state = "pending";
  run.total_call = "1234.57";
  run.outcome = "recorded";
  run.compute_ms = 12.5;
  run.calls = {{"ACC-1", 5000.0, 4000.0, 3765.43, "1234.57", "0.00", "pending", "calls-EOD-2024-06-28/ACC-1/USD/in/margin_call"},
               {"ACC-2", 10.0, 8.0, 50.0, "0.00", "0.00", "none", ""}};
  const auto r = json::from_msgpack(encode_calls_result(mp(3), RequestType::calls_run, run));
  EXPECT_EQ(r["type"], "calls.run.result");
  EXPECT_EQ(r["id"], 3);
  for (const char* key : {"run_id", "kind", "at", "model", "asset", "units", "cycle_id", "cycle_state", "total_call", "outcome"})
    EXPECT_TRUE(r[key].is_string()) << key;
  EXPECT_EQ(r["scale"], 2);
  EXPECT_EQ(r["units"], "USD");
  EXPECT_EQ(r["outcome"], "recorded");
  EXPECT_EQ(r["compute_ms"].get<double>(), 12.5);
  EXPECT_EQ(r["columns"], json::array({"account", "im", "mm", "collateral_value", "call", "settled", "state", "instruction_id"}));
  ASSERT_EQ(r["rows"].size(), 2u);
  EXPECT_EQ(r["rows"][0][0], "ACC-1");
  EXPECT_TRUE(r["rows"][0][1].is_number_float());
  EXPECT_EQ(r["rows"][0][4], "1234.57");
  EXPECT_EQ(r["rows"][1][6], "none");
  const auto q = json::from_msgpack(encode_calls_result(mp(4), RequestType::calls_query, run));
  EXPECT_EQ(q["type"], "calls.query.result");
  EXPECT_FALSE(q.contains("outcome"));
  EXPECT_EQ(q.size(), r.size() - 1);
  EXPECT_THROW(encode_calls_result(mp(4), RequestType::status, run), std::invalid_argument);
}

TEST(ProtocolEncode, StatusCarriesTheOutbox) {
  StatusInfo s;
  s.scheduler = true;
  s.outbox_unacked = 2;
  s.outbox_unsettled = 5;
  s.outbox_oldest_unacked = "calls-EOD-1";
  s.outbox_oldest_unacked_age_s = 42.5;
  s.acks_received = 9;
  s.reports_applied = 4;
  const auto st = json::from_msgpack(encode_status(nil_id(), s));
  const json& o = st["outbox"];
  EXPECT_EQ(o["scheduler"], true);
  EXPECT_EQ(o["unacked"], 2);
  EXPECT_EQ(o["unsettled"], 5);
  EXPECT_EQ(o["oldest_unacked"], "calls-EOD-1");
  EXPECT_EQ(o["oldest_unacked_age_s"].get<double>(), 42.5);
  EXPECT_EQ(o["acks_received"], 9);
  EXPECT_EQ(o["reports_applied"], 4);
  s.store = true;
  const auto with_store = json::from_msgpack(encode_status(nil_id(), s));
  EXPECT_TRUE(with_store.contains("store"));
  EXPECT_TRUE(with_store.contains("outbox"));
  EXPECT_FALSE(json::from_msgpack(encode_status(nil_id(), StatusInfo{}))["outbox"]["scheduler"].get<bool>());
}

}  // namespace
}  // namespace marginet::protocol
