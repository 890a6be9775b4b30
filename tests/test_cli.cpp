// The binary's contract (SPEC §2): --version, --help, exit codes for bad usage.

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "host/backend.hpp"
#include "tests/run_command.hpp"

namespace {

using marginet::testing::CommandResult;
using marginet::testing::run_marginet;

TEST(Cli, VersionNamesRevisionBackendsAndDevice) {
  const CommandResult r = run_marginet("--version");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("marginet 0.1.0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("revision: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("backends built: cpu"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("device: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" risk arrays"), std::string::npos) << r.output;  // the CPU's SIMD level
}

TEST(Cli, HelpListsSubcommands) {
  const CommandResult r = run_marginet("--help");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("demo"), std::string::npos) << r.output;
}

TEST(Cli, UnknownSubcommandExits2) {
  const CommandResult r = run_marginet("frobnicate");
  EXPECT_EQ(r.status, 2) << r.output;
}

TEST(Cli, UnknownFlagExits2) {
  const CommandResult r = run_marginet("demo --no-such-flag");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no-such-flag"), std::string::npos) << r.output;
}

TEST(Cli, NoSubcommandExits2) { EXPECT_EQ(run_marginet("").status, 2); }

TEST(Cli, BadDeviceExits2) {
  const CommandResult r = run_marginet("demo --device tpu");
  EXPECT_EQ(r.status, 2) << r.output;
}

TEST(Cli, CudaWithoutADeviceExits2) {
  if (marginet::probe_cuda().available()) GTEST_SKIP() << "a CUDA device answers here";
  const CommandResult r = run_marginet("demo --device cuda --quiet");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no CUDA device answered"), std::string::npos) << r.output;
}

}  // namespace
