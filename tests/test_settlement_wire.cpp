// The msgpack settlement messages (service/settlement/wire.hpp) and the scheduler's ZeroMQ
// sockets end to end. PULL: a cycle pushed twice is recorded once and acknowledged twice
// (recorded, duplicate), a bad frame is rejected without harm, and the cycle settles. ROUTER
// (--bind): the same over request/reply, plus settlement.query answered by settlement.report
// until the cycle is complete; bad frames, wrong envelopes and gone peers do not stop it.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <zmq.hpp>

#include "models/errors.hpp"
#include "service/margin/curve.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/wire.hpp"
#include "service/margin/client.hpp"
#include "tests/run_command.hpp"
#include "tests/server_process.hpp"

extern char** environ;

namespace {

using namespace marginet;
namespace fs = std::filesystem;

SettlementCycle sample() {
  SettlementCycle c;
  c.cycle_id = "w1";
  c.deadline = 4070908800.5;
  c.assets = {{"BTC", 8}, {"USDC", 6}};
  auto add = [&c](const char* id, const char* m, const char* a, Leg l, ObligationKind k, std::int64_t v) {
    SettlementInstruction i;
    i.instruction_id = id;
    i.member = m;
    i.asset = a;
    i.leg = l;
    i.kind = k;
    i.amount = v;
    c.instructions.push_back(i);
  };
  add("w1/M1/BTC/in", "M1", "BTC", Leg::pay_in, ObligationKind::net, 123456789);
  add("w1/M2/BTC/out", "M2", "BTC", Leg::pay_out, ObligationKind::net, 123456789);
  add("w1/M2/USDC/in/margin_call", "M2", "USDC", Leg::pay_in, ObligationKind::margin_call, INT64_MAX);
  return c;
}

template <class F>
std::string packed(F&& body) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  body(pk);
  return std::string(buf.data(), buf.size());
}

TEST(SettlementWire, CycleRoundTripsExactly) {
  const SettlementCycle c = sample();
  const SettlementCycle d = decode_settlement_cycle(encode_settlement_cycle(c));
  EXPECT_EQ(d.cycle_id, c.cycle_id);
  EXPECT_EQ(d.deadline, c.deadline);
  ASSERT_EQ(d.assets.size(), 2u);
  EXPECT_EQ(d.assets[1].asset, "USDC");
  EXPECT_EQ(d.assets[1].scale, 6);
  ASSERT_EQ(d.instructions.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d.instructions[i].instruction_id, c.instructions[i].instruction_id);
    EXPECT_EQ(d.instructions[i].member, c.instructions[i].member);
    EXPECT_EQ(d.instructions[i].asset, c.instructions[i].asset);
    EXPECT_EQ(d.instructions[i].leg, c.instructions[i].leg);
    EXPECT_EQ(d.instructions[i].kind, c.instructions[i].kind);
    EXPECT_EQ(d.instructions[i].amount, c.instructions[i].amount);
  }
  EXPECT_EQ(settlement_message_type(encode_settlement_cycle(c)), "settlement.cycle");
}

TEST(SettlementWire, AnEmptyCycleRoundTrips) {
  SettlementCycle c;
  c.cycle_id = "empty";
  const auto d = decode_settlement_cycle(encode_settlement_cycle(c));
  EXPECT_EQ(d.cycle_id, "empty");
  EXPECT_TRUE(d.instructions.empty());
}

TEST(SettlementWire, AckRoundTrips) {
  const SettlementAck a{"w1", "duplicate", "already recorded"};
  const SettlementAck b = decode_settlement_ack(encode_settlement_ack(a));
  EXPECT_EQ(b.cycle_id, "w1");
  EXPECT_EQ(b.status, "duplicate");
  EXPECT_EQ(b.message, "already recorded");
  EXPECT_THROW(decode_settlement_cycle(encode_settlement_ack(a)), input_error);  // wrong type
}

TEST(SettlementWire, MalformedFramesAreInputErrors) {
  const std::string good = encode_settlement_cycle(sample());
  // Truncated at every length, and with trailing bytes.
  for (std::size_t n = 0; n < good.size(); n += 7) EXPECT_THROW(decode_settlement_cycle(good.substr(0, n)), input_error) << n;
  EXPECT_THROW(decode_settlement_cycle(good + "x"), input_error);
  // Not a map; a map claiming 2^32-1 entries in a 5-byte frame (no huge allocation).
  EXPECT_THROW(decode_settlement_cycle(packed([](auto& pk) { pk.pack_array(0); })), input_error);
  EXPECT_THROW(decode_settlement_cycle(std::string("\xdf\xff\xff\xff\xff", 5)), input_error);
  EXPECT_THROW(decode_settlement_cycle(std::string("\xdd\xff\xff\xff\xff", 5)), input_error);
  // Deep nesting.
  EXPECT_THROW(decode_settlement_cycle(packed([](auto& pk) {
                 for (int i = 0; i < 64; ++i) pk.pack_array(1);
                 pk.pack(1);
               })),
               input_error);
  // Wrong version, wrong field types, unknown leg, negative amount.
  auto cycle_with = [](int v, const char* leg, bool amount_as_string, std::int64_t amount) {
    return packed([&](auto& pk) {
      pk.pack_map(6);
      pk.pack(std::string("v"));
      pk.pack(v);
      pk.pack(std::string("type"));
      pk.pack(std::string("settlement.cycle"));
      pk.pack(std::string("cycle_id"));
      pk.pack(std::string("c"));
      pk.pack(std::string("deadline"));
      pk.pack(1.0);
      pk.pack(std::string("assets"));
      pk.pack_array(1);
      pk.pack_map(2);
      pk.pack(std::string("asset"));
      pk.pack(std::string("BTC"));
      pk.pack(std::string("scale"));
      pk.pack(8);
      pk.pack(std::string("instructions"));
      pk.pack_array(1);
      pk.pack_map(6);
      pk.pack(std::string("instruction_id"));
      pk.pack(std::string("i1"));
      pk.pack(std::string("member"));
      pk.pack(std::string("M1"));
      pk.pack(std::string("asset"));
      pk.pack(std::string("BTC"));
      pk.pack(std::string("leg"));
      pk.pack(std::string(leg));
      pk.pack(std::string("kind"));
      pk.pack(std::string("net"));
      pk.pack(std::string("amount"));
      if (amount_as_string) pk.pack(std::string("1.0"));
      else pk.pack(amount);
    });
  };
  EXPECT_NO_THROW(decode_settlement_cycle(cycle_with(1, "pay_in", false, 5)));
  auto expect_field = [](const std::string& frame, const std::string& field) {
    try {
      decode_settlement_cycle(frame);
      ADD_FAILURE() << "accepted a frame with a bad " << field;
    } catch (const input_error& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  };
  expect_field(cycle_with(2, "pay_in", false, 5), "v");
  expect_field(cycle_with(1, "sideways", false, 5), "leg");
  expect_field(cycle_with(1, "pay_in", true, 5), "amount");
  expect_field(cycle_with(1, "pay_in", false, -5), "amount");
  EXPECT_EQ(settlement_message_type("junk"), "");
}

// ---------------------------------------------------------------------------------------------
// settlement.query / settlement.report

using nlohmann::json;

std::string to_frame(const json& j) {
  const std::vector<std::uint8_t> bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

SettlementReport sample_report() {
  SettlementReport r;
  r.cycle_id = "w1";
  r.cycle_state = "closed";
  r.complete = true;
  r.instructions = {{"w1/M1/BTC/in", 123456789, 123456789, "final"},
                    {"w1/M2/BTC/out", INT64_MAX, 0, "defaulted"},
                    {"w1/M2/USDC/in/margin_call", 5, 3, "defaulted"}};
  return r;
}

json report_json() {
  return {{"v", 1},
          {"type", "settlement.report"},
          {"cycle_id", "w1"},
          {"cycle_state", "open"},
          {"complete", false},
          {"instructions", json::array({{{"instruction_id", "i1"}, {"amount", 10}, {"settled", 4}, {"state", "pending"}},
                                        {{"instruction_id", "i2"}, {"amount", 7}, {"settled", 7}, {"state", "final"}}})}};
}

// The frame fails to decode with an input_error naming the msgpack frame and `field`.
template <class Decode>
void expect_rejected(Decode decode, const std::string& frame, const std::string& field, const std::string& what) {
  try {
    decode(frame);
    ADD_FAILURE() << "accepted a frame with " << what;
  } catch (const input_error& e) {
    EXPECT_EQ(e.file(), "msgpack frame") << what << ": " << e.what();
    EXPECT_EQ(e.field(), field) << what << ": " << e.what();
  }
}

// Every string of a cycle must be valid UTF-8 without control characters (validate_cycle, run by
// the decoder): a frame with anything else in any string field is an input_error naming the
// field (an instruction's asset: not one of the cycle's assets, which are all valid).
TEST(SettlementWire, CycleStringsThatAreNotCleanUtf8AreInputErrorsNamingTheField) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {std::string("\xff"), "a byte that is never UTF-8"},
      {std::string("M\xc3"), "a truncated sequence"},
      {std::string("\xc0\xaf"), "an overlong '/'"},
      {std::string("\xed\xa0\x80"), "a surrogate"},
      {std::string("\xf4\x90\x80\x80"), "a code point past U+10FFFF"},
      {std::string("a\nb"), "a newline"},
      {std::string("a\x7f"), "DEL"},
      {std::string("a\xc2\x85"), "a C1 control (NEL)"},
  };
  for (const auto& [text, what] : bad) {
    SettlementCycle c = sample();
    c.cycle_id = text;
    expect_rejected(decode_settlement_cycle, encode_settlement_cycle(c), "cycle_id", "cycle_id: " + what);
    c = sample();
    c.instructions[1].instruction_id = text;
    expect_rejected(decode_settlement_cycle, encode_settlement_cycle(c), "instruction_id", "instruction_id: " + what);
    c = sample();
    c.instructions[0].member = text;
    expect_rejected(decode_settlement_cycle, encode_settlement_cycle(c), "member", "member: " + what);
    c = sample();
    c.assets[0].asset = text;  // and the instructions that name it
    for (auto& i : c.instructions)
      if (i.asset == "BTC") i.asset = text;
    expect_rejected(decode_settlement_cycle, encode_settlement_cycle(c), "assets", "asset name: " + what);
    c = sample();
    c.instructions[2].asset = text;
    expect_rejected(decode_settlement_cycle, encode_settlement_cycle(c), "asset", "instruction asset: " + what);
  }
  // Clean non-ASCII text passes in every field.
  SettlementCycle c = sample();
  c.cycle_id = "cycle-\xc3\xa9t\xc3\xa9";
  c.instructions[0].member = "\xe4\xbc\x9a\xe5\x93\xa1";
  c.instructions[0].instruction_id = "w1/\xf0\x9f\x92\xb0/in";
  c.assets[0].asset = "\xe2\x82\xbf";
  c.instructions[0].asset = c.instructions[1].asset = "\xe2\x82\xbf";
  const SettlementCycle d = decode_settlement_cycle(encode_settlement_cycle(c));
  EXPECT_EQ(d.cycle_id, c.cycle_id);
  EXPECT_EQ(d.instructions[0].member, c.instructions[0].member);
  EXPECT_EQ(d.assets[0].asset, c.assets[0].asset);
}

TEST(SettlementWire, QueryRoundTrips) {
  const std::string f = encode_settlement_query("cycle/2024-06-28 %_@x");
  EXPECT_EQ(decode_settlement_query(f), "cycle/2024-06-28 %_@x");
  EXPECT_EQ(settlement_message_type(f), "settlement.query");
  EXPECT_THROW(decode_settlement_report(f), input_error);  // wrong type
  EXPECT_THROW(decode_settlement_cycle(f), input_error);
}

TEST(SettlementWire, ReportRoundTripsExactly) {
  const SettlementReport r = sample_report();
  const std::string f = encode_settlement_report(r);
  EXPECT_EQ(settlement_message_type(f), "settlement.report");
  const SettlementReport d = decode_settlement_report(f);
  EXPECT_EQ(d.cycle_id, "w1");
  EXPECT_EQ(d.cycle_state, "closed");
  EXPECT_TRUE(d.complete);
  ASSERT_EQ(d.instructions.size(), r.instructions.size());
  for (std::size_t i = 0; i < r.instructions.size(); ++i) {
    EXPECT_EQ(d.instructions[i].instruction_id, r.instructions[i].instruction_id);
    EXPECT_EQ(d.instructions[i].amount, r.instructions[i].amount);
    EXPECT_EQ(d.instructions[i].settled, r.instructions[i].settled);
    EXPECT_EQ(d.instructions[i].state, r.instructions[i].state);
  }
  // Not complete, open, with a pending instruction; and an unknown cycle.
  SettlementReport open = r;
  open.cycle_state = "open";
  open.complete = false;
  open.instructions[0].state = "pending";
  const SettlementReport o = decode_settlement_report(encode_settlement_report(open));
  EXPECT_FALSE(o.complete);
  EXPECT_EQ(o.cycle_state, "open");
  EXPECT_EQ(o.instructions[0].state, "pending");
  SettlementReport unknown;
  unknown.cycle_id = "nope";
  unknown.cycle_state = "unknown";
  const SettlementReport u = decode_settlement_report(encode_settlement_report(unknown));
  EXPECT_EQ(u.cycle_id, "nope");
  EXPECT_EQ(u.cycle_state, "unknown");
  EXPECT_FALSE(u.complete);
  EXPECT_TRUE(u.instructions.empty());
  EXPECT_THROW(decode_settlement_ack(f), input_error);
  EXPECT_THROW(decode_settlement_query(f), input_error);
}

TEST(SettlementWire, MalformedQueryFramesAreInputErrors) {
  const std::string good = encode_settlement_query("w1");
  for (std::size_t n = 0; n < good.size(); ++n) EXPECT_THROW(decode_settlement_query(good.substr(0, n)), input_error) << n;
  expect_rejected(decode_settlement_query, good + "x", "", "trailing bytes");
  expect_rejected(decode_settlement_query, std::string("\xdf\xff\xff\xff\xff", 5), "", "a map claiming 2^32-1 entries");
  expect_rejected(decode_settlement_query, to_frame(json::array({1})), "", "an array");
  const json q = {{"v", 1}, {"type", "settlement.query"}, {"cycle_id", "w1"}};
  EXPECT_EQ(decode_settlement_query(to_frame(q)), "w1");
  auto with = [&q](const char* key, const json& v) {
    json j = q;
    j[key] = v;
    return to_frame(j);
  };
  auto without = [&q](const char* key) {
    json j = q;
    j.erase(key);
    return to_frame(j);
  };
  expect_rejected(decode_settlement_query, with("v", 2), "v", "version 2");
  expect_rejected(decode_settlement_query, with("type", "settlement.cycle"), "type", "another type");
  expect_rejected(decode_settlement_query, with("cycle_id", 7), "cycle_id", "a numeric cycle id");
  expect_rejected(decode_settlement_query, with("cycle_id", ""), "cycle_id", "an empty cycle id");
  expect_rejected(decode_settlement_query, without("cycle_id"), "cycle_id", "no cycle id");
  expect_rejected(decode_settlement_query, without("v"), "v", "no version");
}

TEST(SettlementWire, MalformedReportFramesAreInputErrors) {
  const std::string good = encode_settlement_report(sample_report());
  for (std::size_t n = 0; n < good.size(); n += 3)
    EXPECT_THROW(decode_settlement_report(good.substr(0, n)), input_error) << n;
  expect_rejected(decode_settlement_report, good + std::string(1, '\0'), "", "trailing bytes");
  expect_rejected(decode_settlement_report, std::string("\xdd\xff\xff\xff\xff", 5), "", "an array claiming 2^32-1 items");
  {
    // Deep nesting inside "instructions".
    json deep = 1;
    for (int i = 0; i < 64; ++i) deep = json::array({deep});
    json j = report_json();
    j["instructions"] = deep;
    expect_rejected(decode_settlement_report, to_frame(j), "", "deep nesting");
  }
  const SettlementReport ok = decode_settlement_report(to_frame(report_json()));
  ASSERT_EQ(ok.instructions.size(), 2u);
  EXPECT_EQ(ok.instructions[0].settled, 4);
  auto with = [](const char* key, const json& v) {
    json j = report_json();
    j[key] = v;
    return to_frame(j);
  };
  auto with_ins = [](const char* key, const json& v) {
    json j = report_json();
    j["instructions"][0][key] = v;
    return to_frame(j);
  };
  expect_rejected(decode_settlement_report, with("v", 0), "v", "version 0");
  expect_rejected(decode_settlement_report, with("type", "settlement.ack"), "type", "another type");
  expect_rejected(decode_settlement_report, with("cycle_id", ""), "cycle_id", "an empty cycle id");
  expect_rejected(decode_settlement_report, with("cycle_state", "settled"), "cycle_state", "an unknown cycle state");
  expect_rejected(decode_settlement_report, with("cycle_state", 1), "cycle_state", "a numeric cycle state");
  expect_rejected(decode_settlement_report, with("complete", 1), "complete", "complete as an integer");
  expect_rejected(decode_settlement_report, with("complete", "false"), "complete", "complete as a string");
  expect_rejected(decode_settlement_report, with("instructions", json::object()), "instructions", "a map of instructions");
  {
    json j = report_json();
    j["instructions"][1] = "i2";
    expect_rejected(decode_settlement_report, to_frame(j), "instructions", "an instruction that is not a map");
  }
  expect_rejected(decode_settlement_report, with_ins("state", "rolled"), "state", "the scheduler's own state name");
  expect_rejected(decode_settlement_report, with_ins("state", ""), "state", "an empty state");
  expect_rejected(decode_settlement_report, with_ins("amount", -1), "amount", "a negative amount");
  expect_rejected(decode_settlement_report, with_ins("amount", 1.5), "amount", "a fractional amount");
  expect_rejected(decode_settlement_report, with_ins("amount", "10"), "amount", "an amount as text");
  expect_rejected(decode_settlement_report, with_ins("amount", std::uint64_t{1} << 63), "amount", "an amount beyond int64");
  expect_rejected(decode_settlement_report, with_ins("settled", -4), "settled", "a negative settled amount");
  expect_rejected(decode_settlement_report, with_ins("settled", 11), "settled", "more settled than owed");
  expect_rejected(decode_settlement_report, with_ins("instruction_id", ""), "instruction_id", "an empty instruction id");
  expect_rejected(decode_settlement_report, with_ins("instruction_id", json::array()), "instruction_id",
                  "an instruction id as an array");
  {
    json j = report_json();
    j["instructions"][0].erase("settled");
    expect_rejected(decode_settlement_report, to_frame(j), "settled", "no settled amount");
  }
  {
    // Complete, yet open or with a pending instruction; an unknown cycle with instructions.
    json j = report_json();
    j["complete"] = true;
    expect_rejected(decode_settlement_report, to_frame(j), "complete", "complete with a pending instruction");
    j["instructions"][0]["state"] = "final";
    j["instructions"][0]["settled"] = 10;
    expect_rejected(decode_settlement_report, to_frame(j), "complete", "complete while open");
    j["cycle_state"] = "closed";
    EXPECT_TRUE(decode_settlement_report(to_frame(j)).complete);
    j["cycle_state"] = "unknown";
    j["complete"] = false;
    expect_rejected(decode_settlement_report, to_frame(j), "instructions", "an unknown cycle with instructions");
  }
}

TEST(SettlementWire, SchedulerPullsCyclesAcknowledgesThemAndSettles) {
  const fs::path dir = fs::temp_directory_path() / ("marginet_wire_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream out(dir / "chains.json");
    out << R"({"assets": {"BTC": {"scale": 8}, "USDC": {"scale": 6}},
      "chains": [{"name": "b", "assets": ["BTC", "USDC"], "finality_depth": 2,
                  "member_funding": {"BTC": "10", "USDC": "1000000000"}}]})";
  }
  const std::string pull = "ipc://" + (dir / "pull.sock").string();
  const std::string ackp = "ipc://" + (dir / "ack.sock").string();
  zmq::context_t ctx(1);
  zmq::socket_t acks(ctx, zmq::socket_type::pull);
  acks.set(zmq::sockopt::rcvtimeo, 10000);
  acks.bind(ackp);
  const std::string ledger = (dir / "l.sqlite").string();
  const pid_t pid = marginet::testing::spawn_marginet({"scheduler", "--pull", pull, "--ack", ackp, "--ledger", ledger, "--chains",
                           (dir / "chains.json").string(), "--until-idle", "--poll-ms", "5"},
                          (dir / "log.txt").string(), true);
  ASSERT_GT(pid, 0);
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 1000);
  push.connect(pull);
  SettlementCycle c = sample();
  c.instructions[2].amount = 5;  // fundable
  const std::string frame = encode_settlement_cycle(c);
  (void)push.send(zmq::buffer(std::string("not msgpack at all")), zmq::send_flags::none);
  (void)push.send(zmq::buffer(frame), zmq::send_flags::none);
  (void)push.send(zmq::buffer(frame), zmq::send_flags::none);
  std::vector<SettlementAck> got;
  for (int i = 0; i < 3; ++i) {
    zmq::message_t m;
    if (!acks.recv(m)) break;
    got.push_back(decode_settlement_ack(std::string_view(static_cast<const char*>(m.data()), m.size())));
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].status, "rejected");
  EXPECT_EQ(got[1].status, "recorded");
  EXPECT_EQ(got[1].cycle_id, "w1");
  EXPECT_EQ(got[2].status, "duplicate");
  int status = 0;
  for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) != pid; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!WIFEXITED(status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the scheduler did not exit when idle";
  }
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const auto st = marginet::testing::run_marginet("scheduler status --ledger " + ledger);
  EXPECT_EQ(st.status, 0) << st.output;
  EXPECT_NE(st.output.find("instructions,final,3"), std::string::npos) << st.output;
  EXPECT_NE(st.output.find("cycles,closed,1"), std::string::npos) << st.output;
  EXPECT_EQ(marginet::testing::run_marginet("ledger verify --ledger " + ledger).status, 0);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// The ROUTER socket (--bind)

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A spawned `marginet scheduler --bind tcp://127.0.0.1:*`: waits for the endpoint it logs.
struct BoundScheduler {
  pid_t pid = -1;
  std::string endpoint;
  fs::path log;

  BoundScheduler(const fs::path& dir, const std::vector<std::string>& extra) : log(dir / "bind.log") {
    std::vector<std::string> args = {"scheduler", "--bind", "tcp://127.0.0.1:*", "--ledger", (dir / "l.sqlite").string(),
                                     "--chains", (dir / "chains.json").string(), "--poll-ms", "5"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = marginet::testing::spawn_marginet(args, log.string(), true);
    const std::string marker = "listening on ";
    for (int i = 0; i < 6000 && pid > 0; ++i) {  // up to a minute for the start
      const std::string text = read_file(log);
      const auto at = text.find(marker);
      const auto end = at == std::string::npos ? at : text.find('\n', at);
      if (end != std::string::npos) {
        endpoint = text.substr(at + marker.size(), end - at - marker.size());
        return;
      }
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  /// SIGTERM and a bounded wait; the exit code, -1 for a signal death, -2 when it had to be killed.
  int stop(int sig = SIGTERM) {
    if (pid <= 0) return -3;
    kill(pid, sig);
    int status = 0;
    for (int i = 0; i < 1500; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    pid = -1;
    return -2;
  }
  ~BoundScheduler() {
    if (pid > 0) stop(SIGKILL);
  }
};

fs::path wire_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("marginet_wire_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream out(dir / "chains.json");
  out << R"({"assets": {"BTC": {"scale": 8}, "USDC": {"scale": 6}},
    "chains": [{"name": "b", "assets": ["BTC", "USDC"], "finality_depth": 2,
                "member_funding": {"BTC": "10", "USDC": "1000000000"}}]})";
  return dir;
}

std::string text_of(const zmq::message_t& m) { return std::string(static_cast<const char*>(m.data()), m.size()); }

// One request on a DEALER: the reply's frames (empty when none came within the receive timeout).
std::vector<std::string> request(zmq::socket_t& s, const std::vector<std::string>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i)
    (void)s.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  std::vector<std::string> reply;
  zmq::message_t m;
  while (s.recv(m)) {
    reply.push_back(text_of(m));
    if (!m.more()) break;
  }
  return reply;
}

SettlementAck ack_of(const std::vector<std::string>& reply) {
  if (reply.size() != 1) throw std::runtime_error("expected one frame, got " + std::to_string(reply.size()));
  return decode_settlement_ack(reply[0]);
}

SettlementReport report_of(const std::vector<std::string>& reply) {
  if (reply.size() != 1) throw std::runtime_error("expected one frame, got " + std::to_string(reply.size()));
  return decode_settlement_report(reply[0]);
}

TEST(SettlementWire, SchedulerRouterAcksCyclesAndReportsTheirSettlement) {
  const fs::path dir = wire_dir("bind");
  BoundScheduler sched(dir, {});
  ASSERT_GT(sched.pid, 0) << read_file(sched.log);
  ASSERT_EQ(sched.endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << sched.endpoint;
  EXPECT_EQ(sched.endpoint.find('*'), std::string::npos) << sched.endpoint;  // the port it got

  zmq::context_t ctx(1);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::rcvtimeo, 30000);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(sched.endpoint);

  SettlementCycle c = sample();
  c.instructions[2].amount = 5;  // fundable
  const std::string frame = encode_settlement_cycle(c);

  // Before the cycle: unknown.
  SettlementReport rep = report_of(request(dealer, {encode_settlement_query("w1")}));
  EXPECT_EQ(rep.cycle_id, "w1");
  EXPECT_EQ(rep.cycle_state, "unknown");
  EXPECT_FALSE(rep.complete);

  SettlementAck a = ack_of(request(dealer, {frame}));
  EXPECT_EQ(a.cycle_id, "w1");
  EXPECT_EQ(a.status, "recorded") << a.message;
  a = ack_of(request(dealer, {frame}));
  EXPECT_EQ(a.cycle_id, "w1");
  EXPECT_EQ(a.status, "duplicate") << a.message;

  // Garbage, another message type, the same id with other contents: rejected acks.
  a = ack_of(request(dealer, {"not msgpack at all"}));
  EXPECT_EQ(a.status, "rejected");
  EXPECT_EQ(a.cycle_id, "");
  a = ack_of(request(dealer, {encode_settlement_ack({"w1", "recorded", ""})}));
  EXPECT_EQ(a.status, "rejected");
  EXPECT_NE(a.message.find("settlement.ack"), std::string::npos) << a.message;
  a = ack_of(request(dealer, {std::string()}));
  EXPECT_EQ(a.status, "rejected");
  SettlementCycle changed = c;
  changed.deadline += 60;  // other contents, still a valid cycle
  a = ack_of(request(dealer, {encode_settlement_cycle(changed)}));
  EXPECT_EQ(a.status, "rejected");
  EXPECT_EQ(a.cycle_id, "w1");
  EXPECT_NE(a.message.find("different contents"), std::string::npos) << a.message;
  a = ack_of(request(dealer, {to_frame({{"v", 1}, {"type", "settlement.query"}, {"cycle_id", 5}})}));
  EXPECT_EQ(a.status, "rejected");
  EXPECT_NE(a.message.find("cycle_id"), std::string::npos) << a.message;

  // A message of two frames is not a request: dropped without a reply. The next reply is the
  // next request's.
  (void)dealer.send(zmq::buffer(std::string("x")), zmq::send_flags::sndmore);
  (void)dealer.send(zmq::buffer(encode_settlement_query("w1")), zmq::send_flags::none);
  rep = report_of(request(dealer, {encode_settlement_query("other")}));
  EXPECT_EQ(rep.cycle_id, "other");
  EXPECT_EQ(rep.cycle_state, "unknown");

  // Peers that leave before their reply: the replies are dropped, the scheduler goes on.
  for (int i = 0; i < 5; ++i) {
    zmq::socket_t gone(ctx, zmq::socket_type::dealer);
    gone.set(zmq::sockopt::linger, 2000);
    gone.connect(sched.endpoint);
    for (int k = 0; k < 20; ++k) (void)gone.send(zmq::buffer(encode_settlement_query("w1")), zmq::send_flags::none);
    gone.close();
  }

  // A REQ peer (empty delimiter frame) gets its reply through the same envelope.
  {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::rcvtimeo, 30000);
    req.set(zmq::sockopt::linger, 0);
    req.connect(sched.endpoint);
    const std::string q = encode_settlement_query("w1");
    ASSERT_TRUE(req.send(zmq::buffer(q), zmq::send_flags::none));
    zmq::message_t m;
    ASSERT_TRUE(req.recv(m));
    EXPECT_FALSE(m.more());
    rep = decode_settlement_report(text_of(m));
    EXPECT_EQ(rep.cycle_id, "w1");
    EXPECT_NE(rep.cycle_state, "unknown");
    ASSERT_EQ(rep.instructions.size(), 3u);
  }

  // Query until complete (bounded: the sim chain settles within a few ticks).
  int queries = 0;
  do {
    rep = report_of(request(dealer, {encode_settlement_query("w1")}));
    ++queries;
    if (!rep.complete) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (!rep.complete && queries < 3000);
  ASSERT_TRUE(rep.complete) << "after " << queries << " queries, state " << rep.cycle_state;
  EXPECT_EQ(rep.cycle_state, "closed");
  ASSERT_EQ(rep.instructions.size(), c.instructions.size());
  for (std::size_t i = 0; i < c.instructions.size(); ++i) {
    EXPECT_EQ(rep.instructions[i].instruction_id, c.instructions[i].instruction_id);
    EXPECT_EQ(rep.instructions[i].amount, c.instructions[i].amount);
    EXPECT_EQ(rep.instructions[i].settled, c.instructions[i].amount);
    EXPECT_EQ(rep.instructions[i].state, "final");
  }
  // Still a duplicate once closed.
  EXPECT_EQ(ack_of(request(dealer, {frame})).status, "duplicate");

  EXPECT_EQ(sched.stop(SIGTERM), 0) << read_file(sched.log);
  EXPECT_NE(read_file(sched.log).find("dropped a message of 3 frames"), std::string::npos) << read_file(sched.log);
  const std::string ledger = (dir / "l.sqlite").string();
  const auto st = marginet::testing::run_marginet("scheduler status --ledger " + ledger);
  EXPECT_NE(st.output.find("instructions,final,3"), std::string::npos) << st.output;
  EXPECT_NE(st.output.find("cycles,closed,1"), std::string::npos) << st.output;
  const auto v = marginet::testing::run_marginet("ledger verify --ledger " + ledger);
  EXPECT_EQ(v.status, 0) << v.output;
  if (!HasFailure()) fs::remove_all(dir);
}

TEST(SettlementWire, SchedulerBoundWithUntilIdleExitsOnceTheCyclesItReceivedAreClosed) {
  const fs::path dir = wire_dir("bind_idle");
  BoundScheduler sched(dir, {"--until-idle"});
  ASSERT_GT(sched.pid, 0) << read_file(sched.log);
  zmq::context_t ctx(1);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::rcvtimeo, 30000);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(sched.endpoint);
  // Idle with nothing received: it waits (a query is answered, a bad frame too).
  EXPECT_EQ(report_of(request(dealer, {encode_settlement_query("w1")})).cycle_state, "unknown");
  EXPECT_EQ(ack_of(request(dealer, {"junk"})).status, "rejected");
  SettlementCycle c = sample();
  c.instructions[2].amount = 5;
  EXPECT_EQ(ack_of(request(dealer, {encode_settlement_cycle(c)})).status, "recorded");
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 6000 && !exited; ++i) {
    exited = waitpid(sched.pid, &status, WNOHANG) == sched.pid;
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(exited) << "the scheduler did not exit when idle: " << read_file(sched.log);
  sched.pid = -1;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_file(sched.log);
  const auto st = marginet::testing::run_marginet("scheduler status --ledger " + (dir / "l.sqlite").string());
  EXPECT_NE(st.output.find("cycles,closed,1"), std::string::npos) << st.output;
  if (!HasFailure()) fs::remove_all(dir);
}

TEST(SettlementWire, SchedulerUsageNamesTheSocketOptions) {
  const fs::path dir = wire_dir("usage");
  const std::string base = "scheduler --ledger " + (dir / "l.sqlite").string() + " --chains " + (dir / "chains.json").string();
  auto r = marginet::testing::run_marginet(base);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--bind"), std::string::npos) << r.output;
  r = marginet::testing::run_marginet(base + " --bind 'tcp://127.0.0.1:*' --ack tcp://127.0.0.1:1");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--ack"), std::string::npos) << r.output;
  r = marginet::testing::run_marginet(base + " --bind not-an-endpoint");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("cannot bind"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Trust (issue 15): who may send what, and the operator's commands.

std::string public_key_of(const fs::path& pub) {
  const std::string text = read_file(pub);
  const auto at = text.find("= ");
  return at == std::string::npos ? std::string() : text.substr(at + 2, 40);
}

// A cycle the scheduler keeps open: M1 owes more BTC than it holds (10), its pay-in fails.
SettlementCycle stuck_cycle(const std::string& id) {
  SettlementCycle c;
  c.cycle_id = id;
  c.deadline = 4102444800;  // 2100: far away
  c.assets = {{"BTC", 8}};
  c.instructions = {{id + "/M1/in", "M1", "BTC", Leg::pay_in, ObligationKind::net, 2000000000},
                    {id + "/M2/out", "M2", "BTC", Leg::pay_out, ObligationKind::net, 2000000000}};
  return c;
}

SettlementCycle lone_draw(const std::string& id) {
  SettlementCycle c;
  c.cycle_id = id;
  c.deadline = 4102444800;
  c.assets = {{"BTC", 8}};
  c.instructions = {{id + "/M2/out", "M2", "BTC", Leg::pay_out, ObligationKind::margin_call, 100000000}};
  c.liquidity_draw = true;
  return c;
}

struct Dealer {
  zmq::socket_t socket;
  Dealer(zmq::context_t& ctx, const std::string& endpoint, const fs::path& server_pub = {}, const fs::path& key = {},
         int timeout_ms = 30000)
      : socket(ctx, zmq::socket_type::dealer) {
    socket.set(zmq::sockopt::rcvtimeo, timeout_ms);
    socket.set(zmq::sockopt::linger, 0);
    if (!server_pub.empty())
      enable_curve_client(socket, read_curve_key_file(server_pub.string()).public_key, read_curve_key_file(key.string()));
    socket.connect(endpoint);
  }
  SettlementAck send(const std::string& frame) { return ack_of(request(socket, {frame})); }
};

TEST(SchedulerTrust, WithCurveOnlyListedProducersGetInAndOnlyWithTheirRights) {
  const fs::path dir = wire_dir("curve_producers");
  for (const char* name : {"sched", "service", "desk", "ops", "stranger"})
    ASSERT_EQ(marginet::testing::run_marginet("keygen " + (dir / name).string()).status, 0);
  {
    std::ofstream p(dir / "producers.txt");
    p << "# who may send settlement cycles\n"
      << public_key_of(dir / "service.pub") << " service draw\n"
      << public_key_of(dir / "desk.pub") << " desk\n"
      << public_key_of(dir / "ops.pub") << " ops operate\n";
  }
  BoundScheduler sched(dir, {"--curve-key", (dir / "sched.key").string(), "--producers", (dir / "producers.txt").string()});
  ASSERT_GT(sched.pid, 0) << read_file(sched.log);
  zmq::context_t ctx(1);
  Dealer desk(ctx, sched.endpoint, dir / "sched.pub", dir / "desk.key");
  Dealer service(ctx, sched.endpoint, dir / "sched.pub", dir / "service.key");
  // A producer without `draw`: balanced cycles yes, a lone pay-out (the attack) no.
  SettlementAck a = desk.send(encode_settlement_cycle(stuck_cycle("s1")));
  EXPECT_EQ(a.status, "recorded") << a.message;
  a = desk.send(encode_settlement_cycle(lone_draw("d1")));
  EXPECT_EQ(a.status, "rejected");
  EXPECT_NE(a.message.find("'desk' is not authorised"), std::string::npos) << a.message;
  a = service.send(encode_settlement_cycle(lone_draw("d2")));
  EXPECT_EQ(a.status, "recorded") << a.message;
  // An unlisted key, and a peer without CURVE: never answered (ZAP refuses the handshake).
  Dealer stranger(ctx, sched.endpoint, dir / "sched.pub", dir / "stranger.key", 1500);
  EXPECT_TRUE(request(stranger.socket, {encode_settlement_cycle(lone_draw("d3"))}).empty());
  Dealer plain(ctx, sched.endpoint, {}, {}, 1500);
  EXPECT_TRUE(request(plain.socket, {encode_settlement_cycle(lone_draw("d4"))}).empty());
  // The status names who keeps s1 open; only `operate` may end it.
  const std::string ledger = (dir / "l.sqlite").string();
  marginet::testing::CommandResult st;
  for (int i = 0; i < 200; ++i) {  // s1 opens at the scheduler's next tick; M1's pay-in then fails
    st = marginet::testing::run_marginet("scheduler status --ledger " + ledger);
    if (st.output.find("blocking,M1,pay-in BTC 20.00000000") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(st.output.find("blocking,M1,pay-in BTC 20.00000000"), std::string::npos) << st.output;
  a = desk.send(encode_settlement_operator({"close", "s1"}));
  EXPECT_EQ(a.status, "rejected");
  EXPECT_NE(a.message.find("may not end cycles"), std::string::npos) << a.message;
  const auto closed = marginet::testing::run_marginet(
      "scheduler close s1 --connect " + sched.endpoint + " --curve-server-key " + (dir / "sched.pub").string() +
      " --curve-key " + (dir / "ops.key").string());
  EXPECT_EQ(closed.status, 0) << closed.output;
  EXPECT_NE(closed.output.find("closed by the operator"), std::string::npos) << closed.output;
  EXPECT_EQ(sched.stop(), 0) << read_file(sched.log);
  const auto after = marginet::testing::run_marginet("scheduler status --ledger " + ledger);
  // M1's pay-in went to default management; M2's pay-out, unfunded (no BTC liquidity), is held
  // as a shortfall and carried into the next cycle, d2.
  EXPECT_NE(after.output.find("instructions,defaulted,1"), std::string::npos) << after.output;
  EXPECT_NE(after.output.find("instructions,rolled,1"), std::string::npos) << after.output;
  EXPECT_NE(after.output.find("cycles,open_cycle,d2"), std::string::npos) << after.output;
  EXPECT_EQ(marginet::testing::run_marginet("ledger verify --ledger " + ledger).status, 0);
  fs::remove_all(dir);
}

TEST(SchedulerTrust, WithoutCurveDrawsAndOperatorRequestsNeedInsecure) {
  for (const bool insecure : {false, true}) {
    const fs::path dir = wire_dir(insecure ? "insecure" : "no_curve");
    BoundScheduler sched(dir, insecure ? std::vector<std::string>{"--insecure"} : std::vector<std::string>{});
    ASSERT_GT(sched.pid, 0) << read_file(sched.log);
    zmq::context_t ctx(1);
    Dealer peer(ctx, sched.endpoint);
    SettlementAck a = peer.send(encode_settlement_cycle(lone_draw("d1")));
    EXPECT_EQ(a.status, insecure ? "recorded" : "rejected") << a.message;
    // Refused without --insecure, and saying why; recorded with it (its message says nothing of rights).
    EXPECT_EQ(a.message.find("'unauthenticated' is not authorised") != std::string::npos, !insecure) << a.message;
    ASSERT_EQ(peer.send(encode_settlement_cycle(stuck_cycle("s1"))).status, "recorded");
    // The request names the open cycle: wait until the scheduler's tick has opened one.
    const std::string target = insecure ? "d1" : "s1";
    std::string status;
    for (int i = 0; i < 200 && status.find("open_cycle,") == std::string::npos; ++i) {
      status = marginet::testing::run_marginet("scheduler status --ledger " + (dir / "l.sqlite").string()).output;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    a = peer.send(encode_settlement_operator({"roll", target}));
    // With --insecure, d1 is open (s1 waits behind it): ended by the request.
    EXPECT_EQ(a.status, insecure ? "done" : "rejected") << a.message;
    EXPECT_EQ(sched.stop(), 0) << read_file(sched.log);
    fs::remove_all(dir);
  }
}

TEST(SchedulerTrust, TheOperatorEndsACycleOnTheLedgerWhenNoSchedulerRunsAndATamperedStateStopsTheScheduler) {
  const fs::path dir = wire_dir("offline_ops");
  const std::string ledger = (dir / "l.sqlite").string(), chains = (dir / "chains.json").string();
  {
    BoundScheduler sched(dir, {});
    ASSERT_GT(sched.pid, 0) << read_file(sched.log);
    zmq::context_t ctx(1);
    Dealer peer(ctx, sched.endpoint);
    ASSERT_EQ(peer.send(encode_settlement_cycle(stuck_cycle("s1"))).status, "recorded");
    // While it runs, the ledger has one writer: the console command is refused.
    const auto busy = marginet::testing::run_marginet("scheduler roll s1 --ledger " + ledger + " --chains " + chains);
    EXPECT_EQ(busy.status, 2) << busy.output;
    EXPECT_EQ(sched.stop(), 0) << read_file(sched.log);
  }
  const auto rolled = marginet::testing::run_marginet("scheduler roll s1 --ledger " + ledger + " --chains " + chains);
  EXPECT_EQ(rolled.status, 0) << rolled.output;
  EXPECT_NE(rolled.output.find("closed by the operator"), std::string::npos) << rolled.output;
  const auto again = marginet::testing::run_marginet("scheduler roll s1 --ledger " + ledger + " --chains " + chains);
  EXPECT_EQ(again.status, 2) << again.output;
  EXPECT_NE(again.output.find("not the open cycle"), std::string::npos) << again.output;
  // The carried obligation's amount raised behind the scheduler's back: it will not start.
  {
    SqliteDb db(ledger);
    db.exec("UPDATE sched_carried SET amount = amount * 2");
  }
  std::ofstream(dir / "c.json") << R"({"cycle_id": "s2", "deadline": "2099-01-01T00:00:00Z", "assets": [{"asset": "BTC", "scale": 8}],
    "instructions": [{"instruction_id": "s2/M3/in", "member": "M3", "asset": "BTC", "leg": "pay_in", "kind": "margin_call", "amount_minor": 5}]})";
  const auto refused = marginet::testing::run_marginet("scheduler --cycle-file " + (dir / "c.json").string() +
                                                       " --ledger " + ledger + " --chains " + chains);
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_NE(refused.output.find("sched_carried"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("amount is 4000000000 in the table, 2000000000 in the ledger"), std::string::npos)
      << refused.output;
  fs::remove_all(dir);
}

TEST(SchedulerTrust, TheServicesWithdrawalReachesACurveSchedulerAndIsPaidOnlyWithTheDrawRight) {
  for (const bool may_draw : {true, false}) {
    const fs::path dir = wire_dir(may_draw ? "service_draw" : "service_nodraw");
    {
      std::ofstream out(dir / "chains.json");
      out << R"({"assets": {"USDC": {"scale": 6, "ccp_liquidity": "1000"}},
        "chains": [{"name": "e", "assets": ["USDC"], "finality_depth": 1, "member_funding": {"USDC": "1000"}}]})";
    }
    for (const char* name : {"sched", "service"})
      ASSERT_EQ(marginet::testing::run_marginet("keygen " + (dir / name).string()).status, 0);
    std::ofstream(dir / "producers.txt") << public_key_of(dir / "service.pub") << " margin-service" << (may_draw ? " draw" : "")
                                         << "\n";
    BoundScheduler sched(dir, {"--curve-key", (dir / "sched.key").string(), "--producers", (dir / "producers.txt").string()});
    ASSERT_GT(sched.pid, 0) << read_file(sched.log);
    const std::string src = std::string(MARGINET_SOURCE_DIR) + "/examples/";
    marginet::testing::ServerProcess server(
        "--device cpu --quiet --model span16 --instruments " + src + "instruments.csv --market " + src +
        "market.csv --marks " + src + "marks.csv --store " + (dir / "clearing.sqlite").string() + " --scheduler " +
        sched.endpoint + " --scheduler-key " + (dir / "sched.pub").string() + " --scheduler-client-key " +
        (dir / "service.key").string());
    ClientOptions co;
    co.endpoint = server.endpoint();
    MarginClient client(co);
    auto r = client.call({{"type", "collateral.deposit"}, {"account", "DESK-A"}, {"asset", "USDC"}, {"amount", "300"},
                          {"reference", "dep-1"}});
    ASSERT_EQ(r["type"], "collateral.deposit.result") << r.dump();
    r = client.call({{"type", "collateral.withdraw"}, {"account", "DESK-A"}, {"asset", "USDC"}, {"amount", "120"},
                     {"reference", "w-1"}});
    ASSERT_EQ(r["type"], "collateral.withdraw.result") << r.dump();
    // The link sends it (CURVE, as margin-service); the scheduler pays it, or refuses the draw.
    const std::string ledger = (dir / "l.sqlite").string();
    std::string status;
    for (int i = 0; i < 300; ++i) {
      status = marginet::testing::run_marginet("scheduler status --ledger " + ledger).output;
      if (may_draw ? status.find("instructions,final,1") != std::string::npos
                   : read_file(sched.log).find("not authorised") != std::string::npos)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (may_draw) {
      EXPECT_NE(status.find("instructions,final,1"), std::string::npos) << status << read_file(sched.log);
      EXPECT_NE(status.find("liquidity,USDC,880.000000"), std::string::npos) << status;
      EXPECT_NE(client.call({{"type", "collateral.query"}, {"account", "DESK-A"}}).dump().find("180000000"),
                std::string::npos);
    } else {
      EXPECT_NE(read_file(sched.log).find("'margin-service' is not authorised to draw"), std::string::npos)
          << read_file(sched.log);
      EXPECT_NE(status.find("cycles,closed,0"), std::string::npos) << status;
      // The rejected pay-out will never be made: the 120 USDC debited go back to the account.
      std::string balances;
      for (int i = 0; i < 100; ++i) {
        balances = client.call({{"type", "collateral.query"}, {"account", "DESK-A"}}).dump();
        if (balances.find("300000000") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      EXPECT_NE(balances.find("300000000"), std::string::npos) << balances;
    }
    EXPECT_EQ(sched.stop(), 0) << read_file(sched.log);
    fs::remove_all(dir);
  }
}
