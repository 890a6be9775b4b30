// `marginet greeks` (SPEC §2, §4): one row per instrument, csv and json, and bad input exits 2
// naming file, line and field.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "host/backend.hpp"
#include "tests/run_command.hpp"

namespace {

using marginet::testing::CommandResult;
using marginet::testing::run_marginet;

const std::string kExamples = std::string(MARGINET_SOURCE_DIR) + "/examples/";

std::string example_args() {
  return "greeks --instruments " + kExamples + "instruments.csv --market " + kExamples +
         "market.csv --marks " + kExamples + "marks.csv --quiet --device cpu";
}

std::size_t count_lines(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

/// A scratch directory with the example files, one of them replaced.
struct Scratch {
  std::string dir;
  explicit Scratch(const std::string& name) : dir(::testing::TempDir() + "greeks_cli_" + name + "/") {
    std::system(("mkdir -p " + dir).c_str());
    for (const char* f : {"instruments.csv", "market.csv", "marks.csv"}) {
      std::ifstream in(kExamples + f);
      std::ofstream out(dir + f);
      out << in.rdbuf();
    }
  }
  void write(const std::string& file, const std::string& text) { std::ofstream(dir + file) << text; }
  /// Appends one line; returns its 1-based line number.
  long append(const std::string& file, const std::string& text) {
    std::ifstream in(dir + file);
    long lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    std::ofstream(dir + file, std::ios::app) << text;
    return lines + 1;
  }
  std::string args() const {
    return "greeks --instruments " + dir + "instruments.csv --market " + dir + "market.csv --marks " +
           dir + "marks.csv --quiet --device cpu";
  }
};

TEST(GreeksCli, CsvHasOneRowPerInstrument) {
  const CommandResult r = run_marginet(example_args(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.rfind("id,price,price_coin,delta,delta_coin,gamma,vega,theta,rho,vanna,volga,iv\n", 0), 0u)
      << r.output;
  EXPECT_EQ(count_lines(r.output), 1u + 16u) << r.output;
  EXPECT_NE(r.output.find("\nBTC-28JUN24-65000-C,"), std::string::npos);
  EXPECT_NE(r.output.find("\nBTC-PERPETUAL,67520,1,1,1,0,0,0,0,0,0,nan\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(",0.5\n"), std::string::npos) << r.output;  // mark_iv given: iv = 0.5
}

TEST(GreeksCli, JsonAndOutFile) {
  const std::string out = ::testing::TempDir() + "greeks_cli.json";
  const CommandResult r = run_marginet(example_args() + " --format json --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().front(), '[');
  EXPECT_NE(text.str().find("\"id\": \"BTC-28JUN24-70000-C\""), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("\"delta_coin\""), std::string::npos);
  EXPECT_NE(text.str().find("\"iv\": null"), std::string::npos);  // futures have no iv
  std::remove(out.c_str());
}

void expect_bad_input(Scratch& s, const std::string& needle1, const std::string& needle2) {
  const CommandResult r = run_marginet(s.args());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(needle1), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle2), std::string::npos) << r.output;
}

TEST(GreeksCli, BadStrikeNamesFileLineAndField) {
  Scratch s("strike");
  const long line = s.append("instruments.csv", "X,BTC,option,C,abc,2024-06-28T08:00:00Z,1,linear\n");
  expect_bad_input(s, "instruments.csv:" + std::to_string(line), "field 'strike'");
}

TEST(GreeksCli, UnknownInstrumentInMarks) {
  Scratch s("unknown");
  const long line = s.append("marks.csv", "BTC-28JUN24-99000-C,,0.5\n");
  expect_bad_input(s, "marks.csv:" + std::to_string(line), "field 'instrument'");
}

TEST(GreeksCli, MarkWhereNoVolatilityFits) {
  Scratch s("novol");
  s.write("marks.csv", "instrument,mark_price,mark_iv\nBTC-28JUN24,67900,\nBTC-28JUN24-65000-C,0.0001,\n");
  expect_bad_input(s, "marks.csv:3", "field 'mark_price'");
}

TEST(GreeksCli, OptionWithoutAMark) {
  Scratch s("nomark");
  s.write("marks.csv", "instrument,mark_price,mark_iv\nBTC-PERPETUAL,67520,\n");
  expect_bad_input(s, "marks.csv", "no mark for option");
}

TEST(GreeksCli, BadValuationTime) {
  Scratch s("time");
  s.write("market.csv", "underlying,index_price,rate,valuation_time\nBTC,67500,0,2024-13-01T00:00:00Z\n");
  expect_bad_input(s, "market.csv:2", "field 'valuation_time'");
}

TEST(GreeksCli, MissingFileAndMissingOption) {
  const CommandResult missing = run_marginet("greeks --instruments /nonexistent.csv --market " +
                                             kExamples + "market.csv --marks " + kExamples + "marks.csv --quiet");
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent.csv"), std::string::npos) << missing.output;
  EXPECT_EQ(run_marginet("greeks --market x --marks y").status, 2);
}

TEST(GreeksCli, CudaWithoutADeviceExits2) {
  if (marginet::probe_cuda().available()) GTEST_SKIP() << "a CUDA device answers here";
  const CommandResult r = run_marginet(example_args() + " --device cuda");
  EXPECT_EQ(r.status, 2) << r.output;
}

}  // namespace
