// The clearing store's command line end to end through the real binary (docs/clearing.md
// "Command line"): trades import/list/cancel/verify, positions, members, accounts,
// `margin --store` and `whatif --store` against `--positions` on the same positions, and
// collateral and call runs on the store file.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "models/csv.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/clearing/trade.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::run_marginet;
using namespace std::string_literals;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Rows of CSV text (header included), comments and blank lines skipped.
std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == '[') continue;  // '[': a log line on merged stderr
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    rows.push_back(std::move(cells));
  }
  return rows;
}

class ClearingCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "marginet_clearing_cli_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = dir_ + "/clearing.sqlite";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string st() const { return " --store " + store_; }

  std::string dir_, store_;
};

const char* const kHeader = "source,trade_id,account,instrument,quantity,price,time,side,package_id\n";

TEST_F(ClearingCli, ImportListPositionsExactDecimals) {
  const std::string file = write("trades.csv", std::string(kHeader) +
                                                   "desk-a,T-1,ACC1,BTC-PERPETUAL,1.5,64250.50,2024-06-28T08:00:00Z,,\n"
                                                   "# a comment\n"
                                                   "desk-a,T-2,ACC1,BTC-PERPETUAL,0.00000001,64250,2024-06-28T08:00:01Z,sell,\n"
                                                   "desk-a,T-3,ACC2,ETH-PERPETUAL,2,3500,2024-06-28T08:00:02Z,buy,P1\n"
                                                   "desk-a,T-4,ACC2,ETH-28JUN24,2,3510,2024-06-28T08:00:02Z,sell,P1\n");
  auto r = run_marginet("trades import " + file + st() + " --quiet", false);
  ASSERT_EQ(r.status, 0) << r.output;
  auto rows = csv_rows(r.output);
  ASSERT_EQ(rows[0], (std::vector<std::string>{"outcome", "submissions", "rows"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"recorded", "3", "4"}));

  r = run_marginet("trades list" + st(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  rows = csv_rows(r.output);
  ASSERT_EQ(rows.size(), 5u) << r.output;
  EXPECT_EQ(rows[0][6], "quantity");
  EXPECT_EQ(rows[0][7], "price");
  EXPECT_EQ(rows[1][6], "1.5");
  EXPECT_EQ(rows[1][7], "64250.5");
  EXPECT_EQ(rows[2][6], "-0.00000001");
  EXPECT_EQ(rows[4][6], "-2");
  EXPECT_EQ(rows[4][9], "P1");
  // Filters.
  r = run_marginet("trades list --account ACC2 --limit 1 --format json" + st(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "\"trade_id\": \"T-3\"")) << r.output;
  EXPECT_FALSE(contains(r.output, "T-4")) << r.output;
  EXPECT_TRUE(contains(r.output, "\"quantity\": \"2\"")) << r.output;  // exact text, not a number
  r = run_marginet("trades list --after-seq 3" + st(), false);
  EXPECT_EQ(csv_rows(r.output).size(), 2u) << r.output;

  r = run_marginet("positions" + st(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output,
            "account,instrument,quantity\n"
            "ACC1,BTC-PERPETUAL,1.49999999\n"
            "ACC2,ETH-28JUN24,-2\n"
            "ACC2,ETH-PERPETUAL,2\n");
  r = run_marginet("positions --account ACC1 --format json" + st(), false);
  EXPECT_TRUE(contains(r.output, "\"quantity\": \"1.49999999\"")) << r.output;

  // Re-import: all duplicates, exit 0, nothing new.
  r = run_marginet("trades import " + file + st(), true);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "duplicate,3,4")) << r.output;
  EXPECT_EQ(csv_rows(run_marginet("trades list" + st(), false).output).size(), 5u);

  // A conflicting row (same key, other quantity) and a new good row: the good one is recorded,
  // the bad one named with file, line and field, exit 2.
  const std::string bad = write("bad.csv", std::string(kHeader) +
                                               "desk-a,T-2,ACC1,BTC-PERPETUAL,0.00000002,64250,2024-06-28T08:00:01Z,sell,\n"
                                               "desk-a,T-5,ACC1,BTC-PERPETUAL,1,64000,2024-06-28T09:00:00Z,,\n");
  r = run_marginet("trades import " + bad + st() + " --quiet", true);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, bad + ":2: field 'quantity': conflict")) << r.output;
  EXPECT_TRUE(contains(r.output, "recorded,1,1")) << r.output;
  EXPECT_TRUE(contains(r.output, "conflict,1,1")) << r.output;
  r = run_marginet("positions --account ACC1" + st(), false);
  EXPECT_TRUE(contains(r.output, "ACC1,BTC-PERPETUAL,2.49999999")) << r.output;

  // A bad field stops the import before anything is recorded.
  const std::string junk = write("junk.csv", std::string(kHeader) +
                                                 "desk-a,T-6,ACC1,BTC-PERPETUAL,1,64000,2024-06-28T09:00:00Z,,\n"
                                                 "desk-a,T-7,ACC1,BTC-PERPETUAL,1.123456789,1,2024-06-28T09:00:00Z,,\n");
  r = run_marginet("trades import " + junk + st(), true);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, junk + ":3: field 'quantity'")) << r.output;
  EXPECT_EQ(csv_rows(run_marginet("trades list" + st(), false).output).size(), 6u);  // T-6 not recorded
}

TEST_F(ClearingCli, UnknownInstrumentsCancelVerify) {
  const std::string instruments = std::string(MARGINET_SOURCE_DIR) + "/examples/instruments.csv";
  const std::string file = write("trades.csv", std::string(kHeader) +
                                                   "desk-a,T-1,ACC1,BTC-PERPETUAL,1,64000,2024-06-28T08:00:00Z,,\n"
                                                   "desk-a,T-2,ACC1,NOT-AN-INSTRUMENT,1,1,2024-06-28T08:00:00Z,,\n");
  auto r = run_marginet("trades import " + file + st() + " --quiet --instruments " + instruments, true);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, file + ":3: field 'instrument': unknown_instrument")) << r.output;
  EXPECT_TRUE(contains(r.output, "recorded,1,1")) << r.output;

  r = run_marginet("trades cancel desk-a T-1 --reason wrong-account" + st(), true);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "journal entry 2")) << r.output;
  r = run_marginet("trades cancel desk-a T-1" + st(), true);  // again: cancelled before, still 0
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "cancelled before")) << r.output;
  r = run_marginet("trades cancel desk-a T-404" + st(), true);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "not_found")) << r.output;
  r = run_marginet("trades list" + st(), false);
  const auto rows = csv_rows(r.output);
  ASSERT_EQ(rows.size(), 3u) << r.output;
  EXPECT_EQ(rows[2][1], "cancel");
  EXPECT_EQ(rows[2][6], "-1");
  EXPECT_EQ(rows[2][11], "wrong-account");
  EXPECT_EQ(run_marginet("positions" + st(), false).output, "account,instrument,quantity\n");

  r = run_marginet("trades verify" + st(), false);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "ok: 2 journal entries")) << r.output;

  // Damage the kept positions behind the store's back: verify exits 1 and names the problem.
  {
    const auto w = run_command("sqlite3 -version", true);
    if (w.status == 0) {
      ASSERT_EQ(run_command("sqlite3 " + store_ + " \"INSERT INTO positions VALUES ('ACC1','BTC-PERPETUAL',5)\"").status, 0);
      r = run_marginet("trades verify" + st(), true);
      EXPECT_EQ(r.status, 1) << r.output;
      EXPECT_TRUE(contains(r.output, "position of account 'ACC1' in 'BTC-PERPETUAL'")) << r.output;
    }
  }
  // A missing store: exit 2 naming it.
  r = run_marginet("trades verify --store " + dir_ + "/absent.sqlite", true);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "absent.sqlite")) << r.output;
}

TEST_F(ClearingCli, MembersKeysAndSignedImport) {
  auto r = run_marginet("members keygen ALICE --dir " + dir_, true);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string key_file = dir_ + "/ALICE.sign.key", pub_file = dir_ + "/ALICE.sign.pub";
  struct stat sb {};
  ASSERT_EQ(stat(key_file.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  std::string secret = read_text(key_file), pub = read_text(pub_file);
  secret = secret.substr(0, secret.find_last_not_of(" \n") + 1);
  pub = pub.substr(0, pub.find_last_not_of(" \n") + 1);
  EXPECT_EQ(secret.size(), 128u);
  EXPECT_EQ(pub.size(), 64u);
  EXPECT_EQ(ed25519_keypair_from_seed(secret.substr(0, 64)).public_key_hex, pub);
  EXPECT_EQ(run_marginet("members keygen ALICE --dir " + dir_, true).status, 2);  // never overwrites

  r = run_marginet("members add ALICE --pubkey " + pub_file + st(), true);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_marginet("accounts add AL1 --member ALICE --pretrade-headroom 25000" + st(), true);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(run_marginet("accounts add AL2 --member NOBODY" + st(), true).status, 2);
  r = run_marginet("members list" + st(), false);
  EXPECT_TRUE(contains(r.output, "ALICE," + pub + ",")) << r.output;

  TradeInput in{"desk-a", "S-1", "AL1", "BTC-PERPETUAL", "2", std::nullopt, "64000", "2024-06-28T08:00:00Z", "", ""};
  const std::string sig = sign_trade_hex(parse_trade(in), secret);
  const std::string file = write("signed.csv",
                                 "source,trade_id,account,instrument,quantity,price,time,signature\n"
                                 "desk-a,S-1,AL1,BTC-PERPETUAL,2,64000,2024-06-28T08:00:00Z," + sig + "\n"
                                 "desk-a,S-2,AL1,BTC-PERPETUAL,1,64000,2024-06-28T08:00:00Z,\n");
  r = run_marginet("trades import " + file + st() + " --quiet", true);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, file + ":3: field 'signature': bad_signature")) << r.output;
  EXPECT_TRUE(contains(r.output, "recorded,1,1")) << r.output;
  r = run_marginet("trades list" + st(), false);
  EXPECT_TRUE(contains(r.output, sig)) << r.output;
  EXPECT_EQ(run_marginet("trades verify" + st(), false).status, 0);

  // Removing the key lets unsigned trades in from then on.
  ASSERT_EQ(run_marginet("members key ALICE --none" + st(), true).status, 0);
  r = run_marginet("trades import " + file + st() + " --quiet", true);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "recorded,1,1")) << r.output;
  EXPECT_TRUE(contains(r.output, "duplicate,1,1")) << r.output;
  EXPECT_EQ(run_marginet("members key ALICE --pubkey " + file + st(), true).status, 2);  // not a key file
  EXPECT_EQ(run_marginet("members key ALICE" + st(), true).status, 2);                 // neither option

  // Accounts: headroom set, cleared, listed.
  ASSERT_EQ(run_marginet("accounts set AL1 --no-pretrade-check" + st(), true).status, 0);
  ASSERT_EQ(run_marginet("accounts set desk-b --pretrade-headroom 10" + st(), true).status, 2);  // unknown
  EXPECT_EQ(run_marginet("accounts set AL1 --pretrade-headroom -1" + st(), true).status, 2);
  r = run_marginet("accounts list" + st(), false);
  EXPECT_EQ(r.output, "account,member,pretrade_headroom\nAL1,ALICE,\n") << r.output;
  ASSERT_EQ(run_marginet("accounts set AL1 --pretrade-headroom 1500.25" + st(), true).status, 0);
  r = run_marginet("accounts list --format json" + st(), false);
  EXPECT_TRUE(contains(r.output, "\"pretrade_headroom\": 1500.25")) << r.output;
}

TEST_F(ClearingCli, MarginFromTheStoreEqualsMarginFromTheFile) {
  const std::string ex = std::string(MARGINET_SOURCE_DIR) + "/examples";
  const std::string ref = " --instruments " + ex + "/instruments.csv --market " + ex + "/market.csv --marks " + ex +
                          "/marks.csv --device cpu --quiet";
  // examples/positions.csv as trades, one position split in two trades and one netted to zero.
  std::ostringstream trades;
  trades << "source,trade_id,account,instrument,quantity,price,time\n";
  std::ifstream in(ex + "/positions.csv");
  CsvReader csv(in, "positions.csv", {"account", "instrument", "quantity"});
  int n = 0;
  while (csv.next()) {
    const std::string line = "," + csv.text("account") + "," + csv.text("instrument") + ",";
    if (n == 0) {  // 2.5 = 4 - 1.5
      trades << "desk,P-" << n << "a" << line << "4,1,2024-06-01T07:00:00Z\n";
      trades << "desk,P-" << n << "b" << line << "-1.5,1,2024-06-01T07:00:00Z\n";
    } else {
      trades << "desk,P-" << n << line << csv.text("quantity") << ",1,2024-06-01T07:00:00Z\n";
    }
    ++n;
  }
  trades << "desk,Z-1,MM-C,ETH-PERPETUAL,3,1,2024-06-01T07:00:00Z\n"
            "desk,Z-2,MM-C,ETH-PERPETUAL,-3,1,2024-06-01T07:00:00Z\n";
  auto r = run_marginet("trades import " + write("book.csv", trades.str()) + st() + " --quiet --instruments " + ex +
                            "/instruments.csv",
                        true);
  ASSERT_EQ(r.status, 0) << r.output;

  for (const char* model : {"span16", "deribit-pm"}) {
    const auto from_file = run_marginet(std::string("margin --model ") + model + ref + " --positions " + ex + "/positions.csv", false);
    const auto from_store = run_marginet(std::string("margin --model ") + model + ref + st(), false);
    ASSERT_EQ(from_file.status, 0) << from_file.output;
    ASSERT_EQ(from_store.status, 0) << from_store.output;
    const auto a = csv_rows(from_file.output), b = csv_rows(from_store.output);
    ASSERT_EQ(a.size(), b.size()) << from_file.output << "\n" << from_store.output;
    ASSERT_GE(a.size(), 4u) << from_file.output;  // header and three accounts (deribit-pm: per coin)
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].size(), b[i].size());
      for (std::size_t j = 0; j < a[i].size(); ++j) {
        // header, account, model, currency, call asset, worst scenario: equal
        if (i == 0 || j < 3 || j == 7 || j == 8) {
          EXPECT_EQ(a[i][j], b[i][j]) << model << " row " << i << " column " << a[0][j];
          continue;
        }
        // Figures: equal up to the order the engine sums an account's positions in.
        const double x = std::stod(a[i][j]), y = std::stod(b[i][j]);
        EXPECT_NEAR(x, y, 1e-9 * std::max(1.0, std::fabs(x))) << model << " row " << i << " column " << a[0][j];
      }
    }
  }

  // whatif from the store: the same figures as from the file (the account's book only).
  {
    const std::string proposed = " --account DESK-A --trades " + ex + "/proposed_trades.csv --model span16";
    const auto from_file = run_marginet("whatif" + ref + proposed + " --positions " + ex + "/positions.csv", false);
    const auto from_store = run_marginet("whatif" + ref + proposed + st(), false);
    ASSERT_EQ(from_file.status, 0) << from_file.output;
    ASSERT_EQ(from_store.status, 0) << from_store.output;
    const auto a = csv_rows(from_file.output), b = csv_rows(from_store.output);
    ASSERT_EQ(a.size(), 2u) << from_file.output;
    ASSERT_EQ(b.size(), 2u) << from_store.output;
    ASSERT_EQ(a[1].size(), b[1].size());
    for (std::size_t j = 3; j < 9; ++j)  // im and mm before, after, change (2: the currency)
      EXPECT_NEAR(std::stod(a[1][j]), std::stod(b[1][j]), 1e-9 * std::max(1.0, std::fabs(std::stod(a[1][j])))) << a[0][j];
  }

  // Exactly one of --positions and --store.
  r = run_marginet("margin" + ref + st() + " --positions " + ex + "/positions.csv", true);
  EXPECT_EQ(r.status, 2) << r.output;
  r = run_marginet("margin" + ref, true);
  EXPECT_EQ(r.status, 2) << r.output;
  // An instrument of the store that the instruments file lacks: named with the store.
  ASSERT_EQ(run_marginet("trades import " +
                             write("odd.csv", "source,trade_id,account,instrument,quantity,price,time\n"
                                              "desk,X-1,MM-C,DOGE-PERPETUAL,1,1,2024-06-01T07:00:00Z\n") +
                             st() + " --quiet",
                         true)
                .status,
            0);
  r = run_marginet("margin" + ref + st(), true);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, store_)) << r.output;
  EXPECT_TRUE(contains(r.output, "DOGE-PERPETUAL")) << r.output;
}

TEST_F(ClearingCli, CollateralAndCallsOnTheStoreFile) {
  const std::string ex = std::string(MARGINET_SOURCE_DIR) + "/examples";
  const std::string ref = " --instruments " + ex + "/instruments.csv --market " + ex + "/market.csv --marks " + ex +
                          "/marks.csv --device cpu --quiet";
  ASSERT_EQ(run_marginet("trades import " + ex + "/captured_trades.csv --quiet --instruments " + ex + "/instruments.csv" + st()).status, 0);
  // Deposits: exact, idempotent by reference, refused with a reason (exit 2).
  auto r = run_marginet("collateral deposit DESK-A USDC 150000.5 --reference d1 --quiet" + st(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "recorded,DESK-A,USDC,150000.500000,150000.500000,1,")) << r.output;
  r = run_marginet("collateral deposit DESK-A USDC 150000.5 --reference d1 --quiet" + st(), false);
  EXPECT_TRUE(contains(r.output, "duplicate,")) << r.output;
  r = run_marginet("collateral deposit DESK-A USDC 1.0000001 --quiet" + st());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "amount")) << r.output;
  r = run_marginet("collateral deposit DESK-A DOGE 1 --quiet" + st());
  EXPECT_EQ(r.status, 2) << r.output;
  // A call run on the file: DESK-A is covered, the others are called.
  r = run_marginet("calls run --run-id eod-1 --kind eod" + ref + st(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto rows = csv_rows(r.output);
  ASSERT_EQ(rows.size(), 4u) << r.output;  // header + DESK-A, FUND-B, MM-C
  EXPECT_EQ(rows[0][0], "account");
  EXPECT_EQ(rows[0][4], "call_USD");
  std::map<std::string, std::vector<std::string>> by_account;
  for (std::size_t i = 1; i < rows.size(); ++i) by_account[rows[i][0]] = rows[i];
  EXPECT_EQ(by_account["DESK-A"][4], "0.00");
  EXPECT_EQ(by_account["DESK-A"][6], "none");
  EXPECT_NE(by_account["FUND-B"][4], "0.00");
  EXPECT_EQ(by_account["FUND-B"][6], "pending");
  // Shown again (the latest run), from a reader; the same id again changes nothing.
  EXPECT_EQ(run_marginet("calls show --quiet" + st(), false).output, run_marginet("calls show eod-1 --quiet" + st(), false).output);
  r = run_marginet("calls run --run-id eod-1" + ref.substr(0, ref.size() - 8) + st());  // without --quiet
  EXPECT_TRUE(contains(r.output, ", duplicate")) << r.output;
  EXPECT_EQ(run_marginet("calls show no-such-run --quiet" + st()).status, 2);
  // Withdrawals: never below IM; the excess may leave.
  r = run_marginet("collateral withdraw DESK-A USDC 150000.5" + ref + st());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "withdrawal refused: IM")) << r.output;
  r = run_marginet("collateral withdraw DESK-A USDC excess --reference w1" + ref + st(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "recorded,DESK-A,USDC,")) << r.output;
  EXPECT_TRUE(contains(r.output, "withdrawal-DESK-A-w1")) << r.output;
  // The movements agree with the balances.
  r = run_marginet("collateral movements" + st());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "collateral: ok: 2 collateral movements")) << r.output;
  r = run_marginet("collateral list --quiet" + st(), false);
  EXPECT_EQ(csv_rows(r.output).size(), 2u) << r.output;
  // --connect and --store together is a usage error.
  EXPECT_NE(run_marginet("collateral list --connect tcp://127.0.0.1:1 --quiet" + st()).status, 0);
}

TEST_F(ClearingCli, SecondWriterIsRefusedWhileOneHoldsTheLock) {
  const std::string file = write("trades.csv", std::string(kHeader) +
                                                   "desk-a,T-1,ACC1,BTC-PERPETUAL,1,64000,2024-06-28T08:00:00Z,,\n");
  {
    auto writer = open_clearing_store(store_, OpenMode::writer);  // held by this process
    for (const std::string& cmd : {"trades import " + file, "trades cancel desk-a T-1"s, "members add M2"s,
                                  "accounts add A9 --member M2"s}) {
      const auto r = run_marginet(cmd + st(), true);
      EXPECT_EQ(r.status, 2) << cmd << ": " << r.output;
      EXPECT_TRUE(contains(r.output, "locked")) << cmd << ": " << r.output;
    }
    // Readers are not refused.
    const auto r = run_marginet("positions" + st(), false);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(writer->journal_size(), 0);
  }
  const auto r = run_marginet("trades import " + file + st() + " --quiet", false);
  EXPECT_EQ(r.status, 0) << r.output;
}

}  // namespace
}  // namespace marginet
