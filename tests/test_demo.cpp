// `marginet demo`, the clearing day (service/demo/clearing_day.hpp), end to end on the real
// service and scheduler, and its report opened in a real headless browser (Debian's chromium,
// installed with the test dependencies: scripts/install-deps.sh --test).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <iterator>
#include <string>

#include "tests/run_command.hpp"

namespace {

namespace fs = std::filesystem;
using marginet::testing::run_command;
using marginet::testing::run_marginet;

const std::string kSmallDay = " --device cpu --members 5 --positions 1200 --instruments 200 --paths 300";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// One day, every check of it: CTest runs each test of a file as its own process, so a day
// shared by several tests would run once per test, in parallel, in one folder.
TEST(Demo, AClearingDayEndToEndAndItsReportInABrowser) {
  const std::string dir = ::testing::TempDir() + "/marginet_clearing_day_" + std::to_string(getpid());
  fs::remove_all(dir);
  const auto day_run = run_marginet("demo --workdir " + dir + kSmallDay, false);
  ASSERT_EQ(day_run.status, 0) << day_run.output;

  // The summary, a line per part of the day.
  for (const char* line : {"trades captured", "IM span16", "IM deribit-pm", "IM hvar", "IM mc-es", "intraday",
                           "end of day", "netting efficiency", "settlement", "default", "ledger", "report"})
    EXPECT_NE(day_run.output.find(std::string("\n") + line + ","), std::string::npos) << line << "\n" << day_run.output;
  const auto day = read_json(dir + "/day.json");
  // Every account of every member margined, and the RFQ check refused some packages.
  EXPECT_EQ(day["members"].size(), 5u);
  EXPECT_EQ(day["accounts"].size(), 20u);
  EXPECT_NE(day_run.output.find("refused by the pre-trade check"), std::string::npos);
  EXPECT_EQ(day_run.output.find(" 0 refused by the pre-trade check"), std::string::npos) << day_run.output;
  // The member whose transfers fail missed its pay-in and went through the waterfall.
  ASSERT_TRUE(day["default"].is_object()) << day.dump();
  EXPECT_EQ(day["default"]["member"], day["defaulter"]);
  EXPECT_GT(day["default"]["loss"].get<double>(), 0.0);
  double absorbed = 0;
  for (const auto& s : day["default"]["steps"]) absorbed += s["absorbed"].get<double>();
  EXPECT_NEAR(absorbed, day["default"]["loss"].get<double>(), 0.011);  // every cent of the loss placed
  // Three cycles settled (intraday calls, EOD calls, the net), one with a defaulted pay-in.
  ASSERT_EQ(day["cycles"].size(), 3u) << day["cycles"].dump();
  int defaulted = 0;
  for (const auto& c : day["cycles"]) {
    EXPECT_EQ(c["final"].get<int>() + c["defaulted"].get<int>() + c["rolled"].get<int>(), c["instructions"].get<int>());
    defaulted += c["defaulted"].get<int>();
  }
  EXPECT_GE(defaulted, 1);
  EXPECT_EQ(day["netting"].size(), 4u);
  EXPECT_TRUE(day["ledger"]["verified"].get<bool>());
  EXPECT_GT(day["ledger"]["proof_entry"].get<int>(), 0);
  // Nothing left running: no service or scheduler of the day's folder (the children run as
  // /proc/self/exe; "[/]" keeps pgrep from matching its own shell).
  // pgrep (procps, a test dependency) exits 1 when nothing matches.
  const std::string pattern = "'[/]proc/self/exe (serve|scheduler) .*" + dir + "/'";
  EXPECT_EQ(run_command("pgrep -f " + pattern).status, 1) << run_command("pgrep -af " + pattern).output;

  // The report in a real headless browser: every image loads, no script error; the first
  // screen kept in the build folder for a look.
  const std::string report = dir + "/report.html";
  ASSERT_TRUE(fs::exists(report));
  const std::string shot = fs::path(MARGINET_EXE).parent_path().parent_path() / "demo-report-first-screen.png";
  const auto browser = run_command(std::string(MARGINET_SOURCE_DIR) + "/scripts/check-report.sh " + report + " " + shot);
  ASSERT_EQ(browser.status, 0) << browser.output;
  EXPECT_NE(browser.output.find("images loaded, 0 errors"), std::string::npos) << browser.output;
  EXPECT_GT(fs::file_size(shot), 10'000u);

  // `marginet report` makes the report again from the run's day.json alone.
  const std::string copy = dir + "_copy";
  fs::remove_all(copy);
  fs::create_directories(copy);
  fs::copy_file(dir + "/day.json", copy + "/day.json");
  const auto again = run_marginet("report " + copy, false);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find(copy + "/report.html"), std::string::npos) << again.output;
  std::ifstream in(copy + "/report.html");
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);  // self-contained
  fs::remove_all(copy);
  fs::remove_all(dir);
}

TEST(DemoInput, AFolderTheDemoDidNotMakeIsRefused) {
  const std::string dir = ::testing::TempDir() + "/marginet_not_a_demo_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir + "/precious.txt") << "keep me\n";
  const auto r = run_marginet("demo --workdir " + dir + kSmallDay);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("was not made by `marginet demo`"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/precious.txt"));
  fs::remove_all(dir);
}

TEST(DemoInput, ReportOfAFolderWithoutADayExits2) {
  const auto r = run_marginet("report " + ::testing::TempDir());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("day.json"), std::string::npos) << r.output;
}

}  // namespace
