// Instruments, Deribit names, the market snapshot and the loaders of instruments.csv,
// market.csv, marks.csv (SPEC §3): good files load, bad ones fail naming file, line and field.

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/reference_data.hpp"

namespace marginet {
namespace {

double utc(const char* iso) { return *parse_iso8601_utc(iso); }

TEST(DeribitNames, OptionFuturePerpetual) {
  const auto opt = parse_deribit_name("BTC-28JUN24-70000-C");
  ASSERT_TRUE(opt);
  EXPECT_EQ(opt->id, "BTC-28JUN24-70000-C");
  EXPECT_EQ(opt->underlying, "BTC");
  EXPECT_EQ(opt->kind, InstrumentKind::option);
  EXPECT_EQ(opt->put_call, OptionType::call);
  EXPECT_EQ(opt->strike, 70000.0);
  EXPECT_EQ(opt->expiry, utc("2024-06-28T08:00:00Z"));
  EXPECT_EQ(opt->contract_size, 1.0);
  EXPECT_EQ(opt->settlement, Settlement::inverse);

  const auto put = parse_deribit_name("ETH-5JUL24-3500-P");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->put_call, OptionType::put);
  EXPECT_EQ(put->expiry, utc("2024-07-05T08:00:00Z"));

  const auto fut = parse_deribit_name("BTC-28JUN24");
  ASSERT_TRUE(fut);
  EXPECT_EQ(fut->kind, InstrumentKind::future);
  EXPECT_EQ(fut->expiry, utc("2024-06-28T08:00:00Z"));
  EXPECT_EQ(fut->settlement, Settlement::inverse);

  const auto perp = parse_deribit_name("BTC-PERPETUAL");
  ASSERT_TRUE(perp);
  EXPECT_EQ(perp->kind, InstrumentKind::perpetual);
  EXPECT_EQ(perp->expiry, 0.0);
  EXPECT_EQ(perp->underlying, "BTC");
}

TEST(DeribitNames, LinearUsdcAndDecimalStrikes) {
  const auto lin = parse_deribit_name("XRP_USDC-7JUN24-0d625-C");
  ASSERT_TRUE(lin);
  EXPECT_EQ(lin->underlying, "XRP");
  EXPECT_EQ(lin->settlement, Settlement::linear);
  EXPECT_EQ(lin->strike, 0.625);
  const auto perp = parse_deribit_name("SOL_USDC-PERPETUAL");
  ASSERT_TRUE(perp);
  EXPECT_EQ(perp->settlement, Settlement::linear);
}

TEST(DeribitNames, RejectsWhatIsNotAName) {
  for (const char* bad : {"", "BTC", "BTC-", "BTC-28JUN24-70000", "BTC-28JUN24-70000-X",
                          "BTC-31FEB24", "BTC-28JUX24", "BTC-28JUN24--C", "BTC-28JUN24-0-C",
                          "BTC-28JUN24-abc-C", "btc-28JUN24", "BTC_EUR-28JUN24", "BTC-PERPETUAL-1",
                          "BTC-128JUN24"})
    EXPECT_FALSE(parse_deribit_name(bad)) << bad;
}

TEST(InstrumentTable, LookupByIdAndUnknownIds) {
  InstrumentTable t;
  EXPECT_TRUE(t.add(*parse_deribit_name("BTC-PERPETUAL")));
  EXPECT_TRUE(t.add(*parse_deribit_name("BTC-28JUN24")));
  EXPECT_FALSE(t.add(*parse_deribit_name("BTC-PERPETUAL")));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.index_of("BTC-28JUN24"), 1u);
  EXPECT_EQ(t.at("BTC-PERPETUAL").kind, InstrumentKind::perpetual);
  EXPECT_EQ(t.find("ETH-PERPETUAL"), nullptr);
  try {
    t.at("ETH-PERPETUAL");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown instrument 'ETH-PERPETUAL'"), std::string::npos);
  }
}

TEST(MarketSnapshot, ForwardFromFutureElseCarryAndYearFraction) {
  MarketSnapshot m;
  const double t0 = utc("2024-06-01T08:00:00Z");
  m.set_underlying("BTC", {67500, 0.05, t0});
  const double jun = utc("2024-06-28T08:00:00Z"), sep = utc("2024-09-27T08:00:00Z");
  EXPECT_DOUBLE_EQ(m.time_to_expiry("BTC", jun), 27.0 / 365.0);
  EXPECT_EQ(m.time_to_expiry("BTC", t0 - 3600), 0.0);  // expired: never negative
  EXPECT_DOUBLE_EQ(year_fraction(365 * 86400.0), 1.0);
  EXPECT_DOUBLE_EQ(m.forward("BTC", sep), 67500 * std::exp(0.05 * (118.0 / 365.0)));
  EXPECT_FALSE(m.forward_from_future("BTC", jun));
  m.set_future_forward("BTC", jun, 67900);
  EXPECT_EQ(m.forward("BTC", jun), 67900.0);
  EXPECT_TRUE(m.forward_from_future("BTC", jun));
  EXPECT_THROW(m.forward("ETH", jun), input_error);
  try {
    m.mark("BTC-28JUN24");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("no mark for instrument 'BTC-28JUN24'"), std::string::npos);
  }
}

const char* kInstruments =
    "id,underlying,kind,put_call,strike,expiry,contract_size,settlement\n"
    "# Deribit names\n"
    "BTC-28JUN24-70000-C,,,,,,,\n"
    "BTC-28JUN24,,,,,,,\n"
    "BTC-PERPETUAL,,,,,,,\n"
    "CME-P,BTC,option,P,68000,2024-06-28T15:00:00Z,0.1,linear\n"
    "SPOT,BTC,spot,,,,,linear\n";
const char* kMarket =
    "underlying,index_price,rate,valuation_time\n"
    "BTC,67500,0.0,2024-06-01T08:00:00Z\n";
const char* kMarks =
    "instrument,mark_price,mark_iv\n"
    "BTC-28JUN24-70000-C,0.0125,\n"
    "BTC-28JUN24,67900,\n"
    "BTC-PERPETUAL,67520,\n"
    "CME-P,,0.55\n";

TEST(Loaders, LoadTheThreeFiles) {
  std::istringstream i(kInstruments), m(kMarket), k(kMarks);
  const InstrumentTable ins = load_instruments(i, "instruments.csv");
  ASSERT_EQ(ins.size(), 5u);
  EXPECT_EQ(ins.at("CME-P").put_call, OptionType::put);
  EXPECT_EQ(ins.at("CME-P").contract_size, 0.1);
  EXPECT_EQ(ins.at("CME-P").settlement, Settlement::linear);
  EXPECT_EQ(ins.at("SPOT").kind, InstrumentKind::spot);
  EXPECT_EQ(ins.at("SPOT").contract_size, 1.0);
  MarketSnapshot market = load_market(m, "market.csv");
  EXPECT_EQ(market.underlying("BTC").index_price, 67500.0);
  load_marks(k, "marks.csv", ins, market);
  EXPECT_EQ(market.mark("BTC-28JUN24-70000-C").mark_price, 0.0125);
  EXPECT_FALSE(market.mark("BTC-28JUN24-70000-C").has_iv());
  EXPECT_EQ(market.mark("CME-P").mark_iv, 0.55);
  // The marked future is the forward of its expiry.
  EXPECT_EQ(market.forward("BTC", utc("2024-06-28T08:00:00Z")), 67900.0);
}

TEST(Loaders, ExampleFilesLoad) {
  const std::string dir = std::string(MARGINET_SOURCE_DIR) + "/examples/";
  const ReferenceData ref =
      load_reference_data(dir + "instruments.csv", dir + "market.csv", dir + "marks.csv");
  EXPECT_GE(ref.instruments.size(), 10u);
  EXPECT_EQ(ref.market.mark_count(), ref.instruments.size() - 1);  // all but spot are marked
}

struct BadCase {
  const char* what;
  std::string instruments, market, marks;
  const char* file;
  long line;
  const char* field;
};

void expect_input_error(const BadCase& c) {
  std::istringstream i(c.instruments), m(c.market), k(c.marks);
  try {
    const InstrumentTable ins = load_instruments(i, "instruments.csv");
    MarketSnapshot market = load_market(m, "market.csv");
    load_marks(k, "marks.csv", ins, market);
    ADD_FAILURE() << c.what << ": no error";
  } catch (const input_error& e) {
    EXPECT_EQ(e.file(), c.file) << c.what << ": " << e.what();
    EXPECT_EQ(e.line(), c.line) << c.what << ": " << e.what();
    EXPECT_EQ(e.field(), c.field) << c.what << ": " << e.what();
  }
}

std::string with_line(const char* base, const char* line) { return std::string(base) + line; }

TEST(Loaders, BadInputNamesFileLineAndField) {
  const std::string I = kInstruments, M = kMarket, K = kMarks;
  const BadCase cases[] = {
      {"not a Deribit name", with_line(kInstruments, "BTC-FOO,,,,,,,\n"), M, K, "instruments.csv", 8, "id"},
      {"bad kind", with_line(kInstruments, "X,BTC,swap,,,,,linear\n"), M, K, "instruments.csv", 8, "kind"},
      {"bad strike", with_line(kInstruments, "X,BTC,option,C,-5,2024-06-28T08:00:00Z,1,linear\n"), M, K, "instruments.csv", 8, "strike"},
      {"bad expiry", with_line(kInstruments, "X,BTC,option,C,5,28/06/2024,1,linear\n"), M, K, "instruments.csv", 8, "expiry"},
      {"bad put_call", with_line(kInstruments, "X,BTC,option,Q,5,2024-06-28T08:00:00Z,1,linear\n"), M, K, "instruments.csv", 8, "put_call"},
      {"bad settlement", with_line(kInstruments, "X,BTC,future,,,2024-06-28T08:00:00Z,1,quanto\n"), M, K, "instruments.csv", 8, "settlement"},
      {"bad contract size", with_line(kInstruments, "X,BTC,future,,,2024-06-28T08:00:00Z,0,linear\n"), M, K, "instruments.csv", 8, "contract_size"},
      {"strike on a future", with_line(kInstruments, "X,BTC,future,,5,2024-06-28T08:00:00Z,1,linear\n"), M, K, "instruments.csv", 8, "strike"},
      {"duplicate id", with_line(kInstruments, "BTC-PERPETUAL,,,,,,,\n"), M, K, "instruments.csv", 8, "id"},
      {"missing column", "id,underlying\nBTC-PERPETUAL,\n", M, K, "instruments.csv", 1, "kind"},
      {"bad index", I, with_line(kMarket, "ETH,-1,0,2024-06-01T08:00:00Z\n"), K, "market.csv", 3, "index_price"},
      {"bad rate", I, with_line(kMarket, "ETH,3000,abc,2024-06-01T08:00:00Z\n"), K, "market.csv", 3, "rate"},
      {"bad time", I, with_line(kMarket, "ETH,3000,0,yesterday\n"), K, "market.csv", 3, "valuation_time"},
      {"duplicate underlying", I, with_line(kMarket, "BTC,3000,0,2024-06-01T08:00:00Z\n"), K, "market.csv", 3, "underlying"},
      {"unknown instrument", I, M, with_line(kMarks, "ETH-PERPETUAL,3000,\n"), "marks.csv", 6, "instrument"},
      {"duplicate mark", I, M, with_line(kMarks, "BTC-PERPETUAL,67000,\n"), "marks.csv", 6, "instrument"},
      {"bad mark_iv", I, M, with_line(kMarks, "SPOT,67500,0.5\n"), "marks.csv", 6, "mark_iv"},
      {"negative iv", "id,underlying,kind,put_call,strike,expiry,contract_size,settlement\nBTC-28JUN24-70000-C,,,,,,,\n",
       M, "instrument,mark_price,mark_iv\nBTC-28JUN24-70000-C,,-0.5\n", "marks.csv", 2, "mark_iv"},
      {"option without mark", I, M, "instrument,mark_price,mark_iv\nCME-P,,\n", "marks.csv", 2, "mark_price"},
      {"future without price", I, M, "instrument,mark_price,mark_iv\nBTC-28JUN24,,\n", "marks.csv", 2, "mark_price"},
      // 2 BTC for a call on 1 BTC: above the upper bound, no volatility fits.
      {"no volatility fits", I, M, "instrument,mark_price,mark_iv\nBTC-28JUN24-70000-C,2,\n", "marks.csv", 2, "mark_price"},
      {"underlying not in market", "id,underlying,kind,put_call,strike,expiry,contract_size,settlement\nETH-PERPETUAL,,,,,,,\n",
       M, "instrument,mark_price,mark_iv\nETH-PERPETUAL,3000,\n", "marks.csv", 2, "instrument"},
  };
  for (const BadCase& c : cases) expect_input_error(c);
}

TEST(Loaders, MissingFileIsAnInputError) {
  EXPECT_THROW(load_instruments("/nonexistent/instruments.csv"), input_error);
}

}  // namespace
}  // namespace marginet
