// The msgpack settlement messages (service/settlement/wire.hpp) and the scheduler's ZeroMQ
// PULL socket end to end: a cycle pushed twice is recorded once and acknowledged twice
// (recorded, duplicate), a bad frame is rejected without harm, and the cycle settles.

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
#include <string>
#include <thread>
#include <zmq.hpp>

#include "models/errors.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/wire.hpp"
#include "tests/run_command.hpp"

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

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  std::string exe = MARGINET_EXE;
  argv.push_back(exe.data());
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
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
  const pid_t pid = spawn({"scheduler", "--pull", pull, "--ack", ackp, "--ledger", ledger, "--chains",
                           (dir / "chains.json").string(), "--until-idle", "--poll-ms", "5"},
                          (dir / "log.txt").string());
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

}  // namespace
