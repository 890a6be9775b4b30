// libFuzzer target for the settlement wire decoders (service/settlement/wire.hpp): any bytes go to
// every decoder (settlement_message_type, decode_settlement_cycle/ack/query/report). A decoder may
// only end in a decoded message or a marginet::input_error: any other exception escapes and
// libFuzzer reports it as a crash. What decodes must hold what the decoders promise, checked
// here independently of models' validate_cycle, else the target aborts:
//   - every message re-encodes and decodes again to the same message (every field compared;
//     the deadline bit for bit) and re-encoding that gives the same bytes;
//   - settlement_message_type names the decoded message's type;
//   - cycle: every text valid UTF-8 (no overlong forms, surrogates or code points past
//     U+10FFFF) without control characters (C0, DEL, C1), non-empty and within its byte bound;
//     a finite deadline; assets listed once with a scale of 0..18; instruction ids unique, each
//     instruction's asset listed, a known leg and kind, amount > 0;
//   - query: a non-empty cycle id; report: the states the decoder admits, 0 <= settled <= amount,
//     complete only when closed and nothing pending, an unknown cycle without instructions.
// Built with clang only: scripts/fuzz.sh (or fuzz/CMakeLists.txt when the compiler is clang).
// `fuzz_settlement_wire -write_seeds=DIR` writes the seed corpus (valid frames made with the
// encoders: a net cycle, a margin-call cycle, an ack, a query, a report) to DIR (made if need
// be) and exits.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>

#include "models/errors.hpp"
#include "service/settlement/wire.hpp"

namespace {

using namespace marginet;

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_settlement_wire: invariant broken: %s %s\n", what, detail.c_str());
  std::abort();
}

#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) fail(#cond, ##__VA_ARGS__); \
  } while (0)

/// Valid UTF-8 (RFC 3629) with no C0, DEL or C1 control character; written apart from
/// models/identifier.cpp so that a bug there does not hide here.
bool clean_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::uint32_t cp;
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 <= 0x7F) {
      cp = b0, n = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      cp = b0 & 0x1F, n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      cp = b0 & 0x0F, n = 3;
      if (b0 == 0xE0) lo = 0xA0;        // overlong
      if (b0 == 0xED) hi = 0x9F;        // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      cp = b0 & 0x07, n = 4;
      if (b0 == 0xF0) lo = 0x90;        // overlong
      if (b0 == 0xF4) hi = 0x8F;        // past U+10FFFF
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) return false;
    i += n;
  }
  return true;
}

void check_text(const std::string& s, std::size_t max_bytes, const char* field) {
  CHECK(!s.empty(), field);
  CHECK(s.size() <= max_bytes, field);
  CHECK(clean_utf8(s), std::string(field) + ": " + s);
}

bool same_double(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void check_same(const SettlementCycle& a, const SettlementCycle& b) {
  CHECK(a.cycle_id == b.cycle_id);
  CHECK(same_double(a.deadline, b.deadline));
  CHECK(a.liquidity_draw == b.liquidity_draw);
  CHECK(a.assets.size() == b.assets.size());
  for (std::size_t i = 0; i < a.assets.size(); ++i) {
    CHECK(a.assets[i].asset == b.assets[i].asset);
    CHECK(a.assets[i].scale == b.assets[i].scale);
  }
  CHECK(a.instructions.size() == b.instructions.size());
  for (std::size_t i = 0; i < a.instructions.size(); ++i) {
    const auto& x = a.instructions[i];
    const auto& y = b.instructions[i];
    CHECK(x.instruction_id == y.instruction_id);
    CHECK(x.member == y.member);
    CHECK(x.asset == y.asset);
    CHECK(x.leg == y.leg);
    CHECK(x.kind == y.kind);
    CHECK(x.amount == y.amount);
  }
}

void check_cycle(const SettlementCycle& c) {
  check_text(c.cycle_id, kMaxCycleIdBytes, "cycle_id");
  CHECK(c.deadline - c.deadline == 0.0);  // finite
  std::set<std::string> assets;
  for (const auto& a : c.assets) {
    check_text(a.asset, kMaxAssetBytes, "assets[].asset");
    CHECK(a.scale >= 0 && a.scale <= 18, a.asset);
    CHECK(assets.insert(a.asset).second, a.asset);
  }
  std::set<std::string> ids;
  for (const auto& i : c.instructions) {
    check_text(i.instruction_id, kMaxInstructionIdBytes, "instruction_id");
    CHECK(ids.insert(i.instruction_id).second, i.instruction_id);
    check_text(i.member, kMaxMemberBytes, "member");
    check_text(i.asset, kMaxAssetBytes, "asset");
    CHECK(assets.count(i.asset) == 1, i.asset);
    CHECK(i.leg == Leg::pay_in || i.leg == Leg::pay_out);
    CHECK(i.kind == ObligationKind::net || i.kind == ObligationKind::margin_call);
    CHECK(i.amount > 0, std::to_string(i.amount));
  }
  // Re-encode, decode again: the same cycle, and the same bytes once more.
  const std::string frame = encode_settlement_cycle(c);
  CHECK(settlement_message_type(frame) == "settlement.cycle");
  SettlementCycle again;
  try {
    again = decode_settlement_cycle(frame);
  } catch (const input_error& e) {
    fail("a decoded cycle re-encodes to a frame that does not decode:", e.what());
  }
  check_same(c, again);
  CHECK(encode_settlement_cycle(again) == frame);
}

void check_ack(const SettlementAck& a) {
  const std::string frame = encode_settlement_ack(a);
  CHECK(settlement_message_type(frame) == "settlement.ack");
  SettlementAck again;
  try {
    again = decode_settlement_ack(frame);
  } catch (const input_error& e) {
    fail("a decoded ack re-encodes to a frame that does not decode:", e.what());
  }
  CHECK(again.cycle_id == a.cycle_id);
  CHECK(again.status == a.status);
  CHECK(again.message == a.message);
  CHECK(encode_settlement_ack(again) == frame);
}

void check_query(const std::string& cycle_id) {
  CHECK(!cycle_id.empty());
  const std::string frame = encode_settlement_query(cycle_id);
  CHECK(settlement_message_type(frame) == "settlement.query");
  try {
    CHECK(decode_settlement_query(frame) == cycle_id);
  } catch (const input_error& e) {
    fail("a decoded query re-encodes to a frame that does not decode:", e.what());
  }
}

void check_report(const SettlementReport& r) {
  CHECK(!r.cycle_id.empty());
  CHECK(r.cycle_state == "unknown" || r.cycle_state == "queued" || r.cycle_state == "open" ||
        r.cycle_state == "closed", r.cycle_state);
  CHECK(!r.complete || r.cycle_state == "closed");
  CHECK(r.cycle_state != "unknown" || r.instructions.empty());
  for (const auto& o : r.instructions) {
    CHECK(!o.instruction_id.empty());
    CHECK(o.amount >= 0 && o.settled >= 0 && o.settled <= o.amount);
    CHECK(o.state == "final" || o.state == "defaulted" || o.state == "pending", o.state);
    CHECK(!r.complete || o.state != "pending");
  }
  const std::string frame = encode_settlement_report(r);
  CHECK(settlement_message_type(frame) == "settlement.report");
  SettlementReport again;
  try {
    again = decode_settlement_report(frame);
  } catch (const input_error& e) {
    fail("a decoded report re-encodes to a frame that does not decode:", e.what());
  }
  CHECK(again.cycle_id == r.cycle_id);
  CHECK(again.cycle_state == r.cycle_state);
  CHECK(again.complete == r.complete);
  CHECK(again.instructions.size() == r.instructions.size());
  for (std::size_t i = 0; i < r.instructions.size(); ++i) {
    CHECK(again.instructions[i].instruction_id == r.instructions[i].instruction_id);
    CHECK(again.instructions[i].amount == r.instructions[i].amount);
    CHECK(again.instructions[i].settled == r.instructions[i].settled);
    CHECK(again.instructions[i].state == r.instructions[i].state);
  }
  CHECK(encode_settlement_report(again) == frame);
}

// ---------------------------------------------------------------------------------------------
// Seeds: valid frames made with the encoders.

SettlementInstruction instruction(const char* id, const char* member, const char* asset, Leg leg,
                                  ObligationKind kind, std::int64_t amount) {
  SettlementInstruction i;
  i.instruction_id = id;
  i.member = member;
  i.asset = asset;
  i.leg = leg;
  i.kind = kind;
  i.amount = amount;
  return i;
}

void write_seed(const std::string& dir, const char* name, const std::string& frame) {
  const std::string path = dir + "/" + name + ".msgpack";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(frame.data(), static_cast<std::streamsize>(frame.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz_settlement_wire: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

void write_seeds(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);  // a failure shows when writing
  SettlementCycle net;
  net.cycle_id = "net-2024-06-28";
  net.deadline = 1719565200.0;
  net.assets = {{"BTC", 8}, {"USD", 2}};
  net.instructions = {
      instruction("net-2024-06-28/A/BTC/in", "A", "BTC", Leg::pay_in, ObligationKind::net, 150000000),
      instruction("net-2024-06-28/B/BTC/out", "B", "BTC", Leg::pay_out, ObligationKind::net, 150000000),
      instruction("net-2024-06-28/B/USD/in", "B", "USD", Leg::pay_in, ObligationKind::net, 9000037),
      instruction("net-2024-06-28/A/USD/out", "A", "USD", Leg::pay_out, ObligationKind::net, 9000037)};
  write_seed(dir, "cycle_net", encode_settlement_cycle(net));

  SettlementCycle margin;
  margin.cycle_id = "mc-2024-06-28T09:00:00Z";
  margin.deadline = 1719565200.5;
  margin.liquidity_draw = true;
  margin.assets = {{"USDC", 6}};
  margin.instructions = {
      instruction("mc-2024-06-28T09:00:00Z/M1/USDC/in/margin_call", "M1", "USDC", Leg::pay_in,
                  ObligationKind::margin_call, 2500000000),
      instruction("mc-2024-06-28T09:00:00Z/M2/USDC/in/margin_call", "Mémbre 2", "USDC", Leg::pay_in,
                  ObligationKind::margin_call, INT64_MAX)};
  write_seed(dir, "cycle_margin_call", encode_settlement_cycle(margin));

  write_seed(dir, "ack", encode_settlement_ack({"net-2024-06-28", "recorded", "cycle recorded"}));
  write_seed(dir, "query", encode_settlement_query("net-2024-06-28"));

  SettlementReport report;
  report.cycle_id = "net-2024-06-28";
  report.cycle_state = "open";
  report.complete = false;
  report.instructions = {{"net-2024-06-28/A/BTC/in", 150000000, 150000000, "final"},
                         {"net-2024-06-28/B/BTC/out", 150000000, 0, "pending"},
                         {"net-2024-06-28/B/USD/in", 9000037, 4000000, "defaulted"}};
  write_seed(dir, "report", encode_settlement_report(report));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  static constexpr std::string_view kFlag = "-write_seeds=";
  for (int i = 1; i < *argc; ++i) {
    const std::string_view a = (*argv)[i];
    if (a.substr(0, kFlag.size()) == kFlag) {
      write_seeds(std::string(a.substr(kFlag.size())));
      std::exit(0);
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  // Never throws: an undecodable frame has no type.
  const std::string type = settlement_message_type(frame);
  int decoded = 0;
  try {
    const SettlementCycle c = decode_settlement_cycle(frame);
    ++decoded;
    CHECK(type == "settlement.cycle", type);
    check_cycle(c);
  } catch (const input_error&) {
  }
  try {
    const SettlementAck a = decode_settlement_ack(frame);
    ++decoded;
    CHECK(type == "settlement.ack", type);
    check_ack(a);
  } catch (const input_error&) {
  }
  try {
    const std::string q = decode_settlement_query(frame);
    ++decoded;
    CHECK(type == "settlement.query", type);
    check_query(q);
  } catch (const input_error&) {
  }
  try {
    const SettlementReport r = decode_settlement_report(frame);
    ++decoded;
    CHECK(type == "settlement.report", type);
    check_report(r);
  } catch (const input_error&) {
  }
  // A frame is one message: at most one decoder takes it, the one its type names (above).
  CHECK(decoded <= 1, std::to_string(decoded));
  return 0;
}
