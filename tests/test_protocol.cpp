// The service's msgpack decoder (service/margin/protocol.hpp) against hostile frames: truncated frames,
// wrong types, huge declared lengths, deep nesting, trailing bytes, unknown types and versions,
// and 10,000 random byte strings. Every bad frame must end in a protocol_error with the right
// code (which the server turns into an `error` reply) — never a crash, never another exception.
// Also the good paths: every request type decodes, replies round-trip through a msgpack reader.

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "service/margin/protocol.hpp"

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

}  // namespace
}  // namespace marginet::protocol
