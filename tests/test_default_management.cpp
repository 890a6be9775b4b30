// Default management over the clearing store (service/margin/default_management.hpp,
// docs/default-management.md): a fund sized from the store's book and recorded as the members'
// contributions; a member declared in default has its positions closed out under the default
// scenarios, its collateral and contribution applied and the rest run down the waterfall; the
// store keeps every step and moves the positions and collateral to the house account, all
// checked afterwards by the store's own verification. And the CLI, end to end.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "host/collateral.hpp"
#include "host/contagion_engine.hpp"
#include "host/margin_engine.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/db/sqlite.hpp"
#include "service/margin/call_run.hpp"
#include "service/margin/default_management.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

namespace fs = std::filesystem;
using testing::run_marginet;

std::string ex(const char* name) { return std::string(MARGINET_SOURCE_DIR) + "/examples/" + name; }

TradeInput trade(const std::string& id, const std::string& account, const std::string& instrument, const std::string& qty,
                 const std::string& price) {
  TradeInput t;
  t.source = "venue";
  t.trade_id = id;
  t.account = account;
  t.instrument = instrument;
  t.quantity_text = qty;
  t.price_text = price;
  t.time = "2024-06-01T07:00:00Z";
  return t;
}

class DefaultManagement : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("marginet-default-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ref_ = load_reference_data(ex("instruments.csv"), ex("market.csv"), ex("marks.csv"));
    method_ = load_methodology("span16");
    fund_ = builtin_default_fund_config();
    fund_.minimum_contribution_minor = 1'000'00;
    fund_.group_of = {{"ALPHA", "ALPHA-GROUP"}, {"ALPHA-ASIA", "ALPHA-GROUP"}};
    ClearingStoreOptions so;
    so.instruments = instrument_ids(ref_.instruments);
    store_ = open_clearing_store((dir_ / "clearing.sqlite").string(), OpenMode::writer, so);
    // BETA signs its trades: the CCP's transfer of its positions needs no signature of BETA's.
    const Ed25519Keypair beta_key = generate_ed25519_keypair();
    for (const char* m : {"ALPHA", "ALPHA-ASIA", "GAMMA"}) store_->add_member(m, std::nullopt);
    store_->add_member("BETA", beta_key.public_key_hex);
    store_->add_account("BETA-1", "BETA");
    store_->add_account("BETA-2", "BETA");
    std::vector<TradeInput> trades{
        trade("1", "ALPHA", "BTC-PERPETUAL", "-3", "67000"),
        trade("2", "ALPHA-ASIA", "BTC-28JUN24-70000-C", "-10", "0.02"),
        trade("3", "BETA-1", "ETH-PERPETUAL", "-40", "3800"),
        trade("4", "BETA-2", "BTC-28JUN24-65000-P", "-15", "0.03"),
        trade("5", "GAMMA", "BTC-28JUN24", "2", "67600"),
        trade("6", "GAMMA", "BTC-28JUN24-65000-C", "5", "0.05"),
    };
    for (TradeInput& t : trades) {
      if (t.account.rfind("BETA", 0) == 0) t.signature_hex = sign_trade_hex(parse_trade(t), beta_key.secret_key_hex);
      ASSERT_EQ(store_->submit({Submission::trade(t)})[0].outcome, Outcome::recorded) << t.trade_id;
    }
    ASSERT_EQ(store_->deposit({"ALPHA", "USDC", 200'000'000000, "a"}).outcome, Outcome::recorded);
    ASSERT_EQ(store_->deposit({"BETA-1", "BTC", 1'00000000, "b"}).outcome, Outcome::recorded);   // 1 BTC
    ASSERT_EQ(store_->deposit({"BETA-2", "USD", 5'000'00, "c"}).outcome, Outcome::recorded);
    ASSERT_EQ(store_->deposit({"GAMMA", "USD", 150'000'00, "d"}).outcome, Outcome::recorded);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  DefaultInputs inputs() { return DefaultInputs{*store_, ref_, instruments_source_, method_, fund_, Backend::cpu}; }

  fs::path dir_;
  ReferenceData ref_;
  Methodology method_;
  DefaultFundConfig fund_;
  std::string instruments_source_ = "instruments.csv";
  std::unique_ptr<ClearingStore> store_;
};

TEST_F(DefaultManagement, SizingFromTheStoreBecomesTheFund) {
  const FundSizingRun run = size_fund_from_store(inputs());
  ASSERT_EQ(run.sizing.members.size(), 4u);  // ALPHA, ALPHA-ASIA, BETA, GAMMA
  ASSERT_EQ(run.sizing.groups.size(), 3u);   // ALPHA-GROUP, BETA, GAMMA
  EXPECT_EQ(run.sizing.groups[0].group, "ALPHA-GROUP");
  EXPECT_GT(run.sizing.fund_minor, 0);
  EXPECT_EQ(record_fund_sizing(*store_, run, fund_, "df-1"), Outcome::recorded);
  EXPECT_EQ(record_fund_sizing(*store_, run, fund_, "df-1"), Outcome::duplicate);
  const auto balances = store_->fund_balances();
  std::int64_t total = 0;
  for (const MemberContribution& m : run.sizing.members) {
    EXPECT_EQ(balances.at(m.member), m.contribution_minor) << m.member;
    EXPECT_GE(m.contribution_minor, fund_.minimum_contribution_minor);
    total += m.contribution_minor;
  }
  EXPECT_EQ(total, run.sizing.contributions_minor);
  EXPECT_GE(total, run.sizing.fund_minor);
  const auto recorded = store_->fund_sizing("");
  ASSERT_TRUE(recorded.has_value());
  EXPECT_EQ(recorded->fund_minor, run.sizing.fund_minor);
  // Liquidity Cover-2 in the fund's currency names two groups and their stress obligations.
  const auto usd = std::find_if(run.liquidity.begin(), run.liquidity.end(), [](const auto& l) { return l.asset == "USD"; });
  ASSERT_NE(usd, run.liquidity.end());
  EXPECT_EQ(usd->groups.size(), 2u);
  EXPECT_GT(usd->need, 0);
  // The balances are the sums of their movements: one changed behind the store's back is found.
  EXPECT_TRUE(store_->verify_collateral().ok) << store_->verify_collateral().summary();
  const std::string path = (dir_ / "clearing.sqlite").string();
  store_.reset();
  SqliteDb(path, false).exec("UPDATE fund_balances SET amount_minor = amount_minor + 1 WHERE member = 'GAMMA'");
  store_ = open_clearing_store(path, OpenMode::reader);
  const CollateralVerifyReport v = store_->verify_collateral();
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.summary().find("default-fund balance of GAMMA"), std::string::npos) << v.summary();
}

TEST_F(DefaultManagement, DeclaredDefaultRunsTheWaterfallAndMovesEverythingToTheHouse) {
  ASSERT_EQ(record_fund_sizing(*store_, size_fund_from_store(inputs()), fund_, "df-1"), Outcome::recorded);
  const auto fund_before = store_->fund_balances();
  const PositionMap positions_before = store_->rebuild_positions_from_journal();

  const DefaultReport r = declare_default(inputs(), {"BETA", "missed its pay-in", "D-1"});
  ASSERT_EQ(r.outcome, Outcome::recorded);
  EXPECT_EQ(r.accounts, (std::vector<std::string>{"BETA-1", "BETA-2"}));
  EXPECT_EQ(r.positions, 2u);
  // The close-out loss is the largest scenario loss, in money rounded up.
  double worst = 0;
  for (double l : r.scenario_losses) worst = std::max(worst, l);
  EXPECT_DOUBLE_EQ(r.close_out_loss, worst);
  std::int64_t loss_minor = 0;
  ASSERT_EQ(margin_call_minor_units(worst, 2, loss_minor), MoneyStatus::ok);
  EXPECT_EQ(r.inputs.loss_minor, loss_minor);
  EXPECT_GT(loss_minor, 0);
  // Margin: 1 BTC after its haircut plus 5,000 USD, rounded down to the cent.
  const double btc = collateral_price("BTC", ref_.market) * (1.0 - method_.haircuts.at("BTC"));
  EXPECT_EQ(r.inputs.margin_minor, static_cast<std::int64_t>(std::floor((btc + 5000.0) * 100)));
  EXPECT_EQ(r.inputs.contribution_minor, fund_before.at("BETA"));
  // The layers add up to the loss, in order.
  std::int64_t sum = 0;
  for (const LayerTotal& l : r.waterfall.layers) sum += l.absorbed_minor;
  EXPECT_EQ(sum, loss_minor);

  // The store: the default and its steps, contributions applied, positions and collateral moved.
  const std::vector<DefaultSummary> defaults = store_->defaults();
  ASSERT_EQ(defaults.size(), 1u);
  EXPECT_EQ(defaults[0].default_id, "D-1");
  EXPECT_EQ(defaults[0].loss_minor, loss_minor);
  EXPECT_EQ(defaults[0].positions_moved, 2);
  EXPECT_EQ(defaults[0].collateral_moved, 2);
  ASSERT_EQ(defaults[0].steps.size(), r.waterfall.steps.size());
  for (std::size_t i = 0; i < r.waterfall.steps.size(); ++i) {
    EXPECT_EQ(defaults[0].steps[i].layer, r.waterfall.steps[i].layer);
    EXPECT_EQ(defaults[0].steps[i].absorbed_minor, r.waterfall.steps[i].absorbed_minor);
  }
  EXPECT_EQ(store_->default_of("BETA"), "D-1");
  const auto fund_after = store_->fund_balances();
  std::int64_t contribution_used = r.waterfall.layers[1].absorbed_minor;
  EXPECT_EQ(fund_after.count("BETA") ? fund_after.at("BETA") : 0, fund_before.at("BETA") - contribution_used);
  for (const auto& [member, used] : r.waterfall.contribution_used)
    EXPECT_EQ(fund_after.at(member), fund_before.at(member) - used) << member;
  EXPECT_TRUE(store_->positions("BETA-1").empty());
  EXPECT_TRUE(store_->positions("BETA-2").empty());
  const PositionMap after = store_->rebuild_positions_from_journal();
  EXPECT_EQ(after.at({fund_.house_account, "ETH-PERPETUAL"}), positions_before.at({"BETA-1", "ETH-PERPETUAL"}));
  EXPECT_EQ(after.at({fund_.house_account, "BTC-28JUN24-65000-P"}), positions_before.at({"BETA-2", "BTC-28JUN24-65000-P"}));
  EXPECT_TRUE(store_->balances("BETA-1").empty());
  const auto house = store_->balances(fund_.house_account);
  ASSERT_EQ(house.size(), 2u);
  EXPECT_EQ(house[0].asset, "BTC");
  EXPECT_EQ(house[0].amount_minor, 1'00000000);
  // Everything still checks: the unsigned transfer entries belong to a recorded default.
  const JournalVerifyReport v = store_->verify_journal();
  EXPECT_TRUE(v.ok) << v.summary();
  EXPECT_TRUE(store_->verify_collateral().ok);
}

TEST_F(DefaultManagement, AMemberInDefaultTradesNoMoreAndIsDeclaredOnce) {
  const DefaultReport first = declare_default(inputs(), {"GAMMA", "operator", ""});
  ASSERT_EQ(first.outcome, Outcome::recorded);
  const std::int64_t journal = store_->journal_size();
  const DefaultReport again = declare_default(inputs(), {"GAMMA", "operator", ""});
  EXPECT_EQ(again.outcome, Outcome::duplicate);
  EXPECT_EQ(again.default_id, first.default_id);
  EXPECT_EQ(store_->journal_size(), journal);
  EXPECT_EQ(store_->defaults().size(), 1u);
  const SubmitResult refused = store_->submit({Submission::trade(trade("7", "GAMMA", "BTC-PERPETUAL", "1", "67000"))})[0];
  EXPECT_EQ(refused.outcome, Outcome::rejected);
  EXPECT_NE(refused.message.find("in default"), std::string::npos) << refused.message;
  // Nobody may write the CCP's transfer source.
  TradeInput forged = trade("8", "ALPHA", "BTC-PERPETUAL", "1", "67000");
  forged.source = kDefaultTransferSource;
  EXPECT_EQ(store_->submit({Submission::trade(forged)})[0].outcome, Outcome::rejected);
  EXPECT_THROW(declare_default(inputs(), {"NOBODY", "", ""}), input_error);
  EXPECT_THROW(declare_default(inputs(), {fund_.house_account, "", ""}), input_error);
}

TEST_F(DefaultManagement, MarginThatCoversTheLossLeavesTheFundUntouched) {
  // GAMMA is long 2 BTC futures and 5 calls: its worst scenario (the crash) loses less than its
  // 150,000 USD.
  ASSERT_EQ(record_fund_sizing(*store_, size_fund_from_store(inputs()), fund_, "df-1"), Outcome::recorded);
  const auto fund_before = store_->fund_balances();
  const DefaultReport r = declare_default(inputs(), {"GAMMA", "", "D-G"});
  ASSERT_EQ(r.outcome, Outcome::recorded);
  ASSERT_LT(r.inputs.loss_minor, r.inputs.margin_minor);
  EXPECT_EQ(r.waterfall.layers[0].absorbed_minor, r.inputs.loss_minor);
  for (std::size_t l = 1; l < r.waterfall.layers.size(); ++l) EXPECT_EQ(r.waterfall.layers[l].absorbed_minor, 0);
  EXPECT_EQ(r.waterfall.margin_surplus_minor, r.inputs.margin_minor - r.inputs.loss_minor);
  EXPECT_EQ(store_->fund_balances(), fund_before);
  EXPECT_EQ(store_->skin_in_the_game_used(), 0);
}

TEST_F(DefaultManagement, TheHouseAccountIsNeverCalled) {
  ASSERT_EQ(declare_default(inputs(), {"BETA", "", "D-1"}).outcome, Outcome::recorded);
  MarginEngine engine(ref_.instruments, ref_.market, method_, Backend::cpu);
  const CallRunOutcome run = run_margin_calls(CallRunInputs{*store_, ref_, instruments_source_, method_, engine}, {"r1"});
  const auto house = std::find_if(run.run.calls.begin(), run.run.calls.end(),
                                  [&](const CallRecord& c) { return c.account == fund_.house_account; });
  ASSERT_NE(house, run.run.calls.end());
  EXPECT_GT(house->im, 0);
  EXPECT_EQ(house->call_minor, 0);
  EXPECT_EQ(house->state, "none");
}

TEST_F(DefaultManagement, ATransferEntryWithoutARecordedDefaultIsFound) {
  // Someone with write access to the file forges a CCP transfer moving GAMMA's future away.
  Trade t;
  t.source = kDefaultTransferSource;
  t.trade_id = "D-FORGED/GAMMA/BTC-28JUN24/out";
  t.account = "GAMMA";
  t.instrument = "BTC-28JUN24";
  t.quantity_units = -200000000;
  t.price = "67600";
  t.time = "2024-06-01T08:00:00Z";
  t.package_id = "D-FORGED";
  const std::string path = (dir_ / "clearing.sqlite").string();
  store_.reset();
  {
    SqliteDb db(path, false);
    db.exec("INSERT INTO journal(kind, source, trade_id, account, instrument, quantity_units, price, time, package_id,"
            " recorded_at) VALUES ('trade', 'ccp.default', '" + t.trade_id + "', 'GAMMA', 'BTC-28JUN24', -200000000,"
            " '67600', '2024-06-01T08:00:00Z', 'D-FORGED', '2026-12-06T00:00:00.000Z')");
    db.exec("INSERT INTO trades(source, trade_id, journal_seq, digest) VALUES ('ccp.default', '" + t.trade_id +
            "', (SELECT MAX(seq) FROM journal), '" + trade_digest_hex(t) + "')");
    db.exec("UPDATE positions SET quantity_units = 0 WHERE account = 'GAMMA' AND instrument = 'BTC-28JUN24'");
  }
  store_ = open_clearing_store(path, OpenMode::reader);
  const JournalVerifyReport v = store_->verify_journal();
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.summary().find("default 'D-FORGED', which is not recorded"), std::string::npos) << v.summary();
}

TEST_F(DefaultManagement, TheStoreAsAContagionNetwork) {
  ASSERT_EQ(record_fund_sizing(*store_, size_fund_from_store(inputs()), fund_, "df-1"), Outcome::recorded);
  // The squeeze: the short members lose, GAMMA (long) gains.
  const StoreNetwork sn = store_network(inputs(), "squeeze: +100%, vol +50%");
  const Network& n = sn.network;
  EXPECT_EQ(sn.scenario, "squeeze: +100%, vol +50%");
  ASSERT_EQ(n.ids, (std::vector<std::string>{"CCP", "ALPHA", "ALPHA-ASIA", "BETA", "GAMMA"}));
  std::int64_t fund = 0;
  for (const auto& [m, v] : store_->fund_balances()) fund += v;
  EXPECT_DOUBLE_EQ(n.external_assets[0], static_cast<double>(fund_.skin_in_the_game_minor() + fund) / 100.0);
  const auto link = [&](const std::string& from, const std::string& to) {
    for (const NetworkLiability& l : n.liabilities)
      if (n.ids[static_cast<std::size_t>(l.from)] == from && n.ids[static_cast<std::size_t>(l.to)] == to) return l;
    ADD_FAILURE() << "no link " << from << " -> " << to;
    return NetworkLiability{};
  };
  const NetworkLiability beta = link("BETA", "CCP");
  const double btc = collateral_price("BTC", ref_.market) * (1.0 - method_.haircuts.at("BTC"));
  EXPECT_DOUBLE_EQ(beta.margin, std::min(beta.amount, btc + 5000.0));  // its collateral is margin on the link
  EXPECT_GT(link("CCP", "GAMMA").amount, 0);                           // the CCP owes the winner
  EXPECT_DOUBLE_EQ(sn.losses + 0.0, link("ALPHA", "CCP").amount + link("ALPHA-ASIA", "CCP").amount + beta.amount);
  // Cleared: the CCP's resources cover its winners, so it pays in full; the losers beyond their
  // margin default in the first wave.
  const ContagionRun run = clear_network(n);
  EXPECT_TRUE(run.agree);
  EXPECT_EQ(run.nodes.defaulted[0], 0);
  EXPECT_DOUBLE_EQ(run.nodes.payment[0], sn.gains);
  // Without a name: the scenario with the largest total loss; a wrong name is an error naming them.
  EXPECT_FALSE(store_network(inputs(), "").scenario.empty());
  EXPECT_THROW(store_network(inputs(), "no such scenario"), input_error);
}

// ---- the CLI ------------------------------------------------------------------------------------

TEST(DefaultCli, SizesFromAPositionsFileAndNamesBadConfigKeys) {
  const std::string ref = " --instruments " + ex("instruments.csv") + " --market " + ex("market.csv") + " --marks " +
                          ex("marks.csv") + " --device cpu";
  const auto r = run_marginet("default-fund --positions " + ex("positions.csv") + ref + " --quiet", false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.substr(0, r.output.find('\n')), "member,group,im_USD,exposure_USD,exposure_scenario,contribution_USD");
  EXPECT_NE(r.output.find("\nDESK-A,DESK-A,"), std::string::npos);
  EXPECT_NE(r.output.find("\nMM-C,MM-C,"), std::string::npos);

  const auto json = run_marginet("default-fund --positions " + ex("positions.csv") + ref + " --format json --quiet", false);
  ASSERT_EQ(json.status, 0);
  EXPECT_NE(json.output.find("\"art42\""), std::string::npos);
  EXPECT_NE(json.output.find("\"liquidity_cover2\""), std::string::npos);

  const fs::path bad = fs::temp_directory_path() / ("marginet-df-bad-" + std::to_string(::getpid()) + ".json");
  std::ofstream(bad) << R"({"assesment_cap": 1, "scenarios": [{"name": "x", "shocks": {"*": {"move": -0.2}}}]})";
  const auto e = run_marginet("default-fund --positions " + ex("positions.csv") + ref + " --config " + bad.string());
  EXPECT_EQ(e.status, 2);
  EXPECT_NE(e.output.find(bad.string()), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("assessment_cap"), std::string::npos) << e.output;
  fs::remove(bad);
  EXPECT_EQ(run_marginet("default-fund" + ref).status, 2);  // neither --store nor --positions
}

TEST(DefaultCli, DeclareOnAStoreThenListAndShow) {
  const fs::path dir = fs::temp_directory_path() / ("marginet-default-cli-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string store = (dir / "s.sqlite").string();
  const std::string ref = " --instruments " + ex("instruments.csv") + " --market " + ex("market.csv") + " --marks " +
                          ex("marks.csv") + " --device cpu";
  ASSERT_EQ(run_marginet("trades import " + ex("captured_trades.csv") + " --store " + store + " --quiet").status, 0);
  ASSERT_EQ(run_marginet("collateral deposit FUND-B BTC 2 --store " + store).status, 0);
  ASSERT_EQ(run_marginet("default-fund --store " + store + ref + " --record df-1 --quiet").status, 0);
  const auto net = run_marginet("contagion --from-store " + store + ref + " --quiet --network-out " + (dir / "net.json").string(), false);
  ASSERT_EQ(net.status, 0) << net.output;
  EXPECT_EQ(net.output.substr(0, net.output.find('\n')), "node,payment_USD,total_liability_USD,shortfall_USD,equity_USD,defaulted,wave");
  EXPECT_NE(net.output.find("\nCCP,"), std::string::npos) << net.output;
  EXPECT_EQ(run_marginet("contagion --network " + (dir / "net.json").string() + " --quiet", false).output, net.output);
  const auto d = run_marginet("default declare FUND-B --id D-1 --reason 'missed pay-in' --store " + store + ref, false);
  ASSERT_EQ(d.status, 0) << d.output;
  EXPECT_EQ(d.output.substr(0, d.output.find('\n')), "step,layer,member,available_USD,absorbed_USD,remaining_USD");
  EXPECT_NE(d.output.find("\n1,defaulter_margin,,121500.00,"), std::string::npos) << d.output;  // 2 BTC less 10 %
  const auto list = run_marginet("default list --store " + store, false);
  ASSERT_EQ(list.status, 0);
  EXPECT_NE(list.output.find("\nD-1,FUND-B,"), std::string::npos) << list.output;
  const auto show = run_marginet("default show FUND-B --format json --store " + store, false);
  ASSERT_EQ(show.status, 0);
  EXPECT_NE(show.output.find("\"default_id\":\"D-1\""), std::string::npos) << show.output;
  EXPECT_EQ(run_marginet("default declare NOBODY --store " + store + ref).status, 2);
  EXPECT_EQ(run_marginet("default show D-9 --store " + store).status, 2);
  const auto verify = run_marginet("trades verify --store " + store);
  EXPECT_EQ(verify.status, 0) << verify.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace marginet
