// Output for people and for machines (service/cli/table.hpp): figures rounded to their unit on a
// terminal, whole in CSV and JSON; progress and log lines sharing a terminal without
// interleaving (service/cli/common.hpp).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "service/cli/table.hpp"
#include "tests/run_command.hpp"

namespace marginet::cli {
namespace {

Table sample() {
  Table t;
  t.columns = {"account", "currency", "im", "call", "delta", "n"};
  t.add_row({std::string("A"), std::string("USD"), Figure{1234567.891, 2}, std::string("1234567.90"), -0.000123456,
             std::int64_t{7}});
  t.add_row({std::string("LONG-NAME"), std::string("BTC"), Figure{0.1234567891, 8}, std::string("20240601-1"), 98765.4321,
             std::int64_t{12345}});
  return t;
}

TEST(Table, FixedPointWithThousandsAndNoNegativeZero) {
  EXPECT_EQ(format_fixed(1234567.891, 2), "1,234,567.89");
  EXPECT_EQ(format_fixed(-1234.5, 2), "-1,234.50");
  EXPECT_EQ(format_fixed(-0.001, 2), "0.00");
  EXPECT_EQ(format_fixed(999.999, 2), "1,000.00");
  EXPECT_EQ(format_fixed(0.12345678912, 8), "0.12345679");
  EXPECT_EQ(with_thousands("-1234567"), "-1,234,567");
  EXPECT_EQ(with_thousands("123.4567"), "123.4567");
}

TEST(Table, CsvAndJsonKeepEveryDigitOfAFigure) {
  std::ostringstream csv, json;
  write_table(csv, sample(), "csv");
  EXPECT_EQ(csv.str(),
            "account,currency,im,call,delta,n\n"
            "A,USD,1234567.891,1234567.90,-0.000123456,7\n"
            "LONG-NAME,BTC,0.1234567891,20240601-1,98765.4321,12345\n");
  write_table(json, sample(), "json");
  const auto doc = nlohmann::json::parse(json.str());
  EXPECT_EQ(doc[1]["im"].get<double>(), 0.1234567891);
  // "auto" writes CSV to anything but a terminal's stdout.
  std::ostringstream automatic;
  write_table(automatic, sample(), "auto");
  EXPECT_EQ(automatic.str(), csv.str());
}

TEST(Table, PrettyAlignsColumnsAndRoundsEachFigureToItsUnit) {
  std::ostringstream out;
  write_table(out, sample(), "table");
  EXPECT_EQ(out.str(),
            "account    currency            im          call         delta      n\n"
            "A          USD       1,234,567.89  1,234,567.90  -0.000123456      7\n"
            "LONG-NAME  BTC         0.12345679  20240601-1        98,765.4  12345\n");
}

// The progress line and log lines share a terminal: a log line first clears the progress line
// ("\r\033[K") and the progress line is redrawn after it, so that neither is written into the
// middle of the other. Run under a pseudo-terminal (script(1), util-linux) so that both draw.
TEST(Console, ProgressAndLogLinesNeverInterleave) {
  const std::string dir = marginet::testing::scratch_dir() + "/marginet_console";
  std::filesystem::remove_all(dir);
  const std::string typescript = dir + ".typescript";
  const auto r = testing::run_command("script -qec '" + std::string(MARGINET_EXE) + " demo --device cpu --workdir " +
                                      dir + " --members 3 --positions 400 --instruments 60 --paths 200' " +
                                      typescript + " > /dev/null");
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(typescript);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t logs = 0, progress = 0;
  for (std::size_t at = text.find("] \033["); at != std::string::npos; at = text.find("] \033[", at + 1)) {
    const std::size_t start = text.rfind('[', at);  // "[hh:mm:ss.mmm] <coloured level> ..."
    ASSERT_NE(start, std::string::npos);
    ASSERT_GT(start, 0u);
    const char before = text[start - 1];
    EXPECT_TRUE(before == '\n' || (start >= 3 && text.compare(start - 3, 3, "\033[K") == 0))
        << "a log line written after: " << text.substr(start > 40 ? start - 40 : 0, 40);
    ++logs;
  }
  for (std::size_t at = text.find("clearing day: "); at != std::string::npos; at = text.find("clearing day: ", at + 1)) {
    EXPECT_TRUE(text[at - 1] == '\n' || text.compare(at - 3, 3, "\033[K") == 0)
        << "a progress line written after: " << text.substr(at > 40 ? at - 40 : 0, 40);
    ++progress;
  }
  EXPECT_GE(logs, 11u);      // a line per step of the day, and its outcome
  EXPECT_GE(progress, 11u);  // drawn, redrawn after each log line, done
}

}  // namespace
}  // namespace marginet::cli
