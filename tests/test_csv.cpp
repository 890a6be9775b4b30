// The input-file reader: comments, quoting, and errors that name file, line and field.

#include <gtest/gtest.h>

#include <sstream>

#include "models/csv.hpp"
#include "models/instrument.hpp"
#include "models/positions.hpp"

namespace marginet {
namespace {

TEST(Csv, ReadsRowsSkippingCommentsAndBlankLines) {
  std::istringstream in(
      "# positions\naccount,instrument,quantity\n\nA1, BTC-PERPETUAL ,1.5\n# x\n\"A,2\",X,-2\n");
  CsvReader csv(in, "positions.csv", {"account", "instrument", "quantity"});
  ASSERT_TRUE(csv.next());
  EXPECT_EQ(csv.text("account"), "A1");
  EXPECT_EQ(csv.text("instrument"), "BTC-PERPETUAL");
  EXPECT_DOUBLE_EQ(csv.number("quantity"), 1.5);
  EXPECT_EQ(csv.line(), 4);
  ASSERT_TRUE(csv.next());
  EXPECT_EQ(csv.text("account"), "A,2");
  EXPECT_DOUBLE_EQ(csv.number("quantity"), -2.0);
  EXPECT_EQ(csv.line(), 6);
  EXPECT_FALSE(csv.next());
}

TEST(Csv, MissingColumnNamesFileAndField) {
  std::istringstream in("account,quantity\n");
  try {
    CsvReader csv(in, "positions.csv", {"account", "instrument"});
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_EQ(e.file(), "positions.csv");
    EXPECT_EQ(e.field(), "instrument");
    EXPECT_NE(std::string(e.what()).find("positions.csv:1: field 'instrument'"), std::string::npos)
        << e.what();
  }
}

TEST(Csv, BadNumberNamesLineAndField) {
  std::istringstream in("a,q\nx,1\ny,1.2.3\n");
  CsvReader csv(in, "f.csv", {"a", "q"});
  ASSERT_TRUE(csv.next());
  ASSERT_TRUE(csv.next());
  try {
    csv.number("q");
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.field(), "q");
  }
}

TEST(Csv, RejectsWrongFieldCountAndNonFinite) {
  std::istringstream in("a,q\nx\n");
  CsvReader csv(in, "f.csv", {"a"});
  EXPECT_THROW(csv.next(), input_error);
  EXPECT_FALSE(parse_double("nan"));
  EXPECT_FALSE(parse_double("inf"));
  EXPECT_FALSE(parse_double(""));
  EXPECT_DOUBLE_EQ(*parse_double("+1e3"), 1000.0);
}

TEST(Csv, MissingFileIsAnInputError) {
  EXPECT_THROW(CsvReader("/nonexistent/x.csv", {}), input_error);
}

TEST(Iso8601, ParsesUtcTimes) {
  EXPECT_EQ(*parse_iso8601_utc("1970-01-01T00:00:00Z"), 0.0);
  EXPECT_EQ(*parse_iso8601_utc("2024-06-28T08:00:00Z"), 1719561600.0);
  EXPECT_EQ(*parse_iso8601_utc("2024-02-29T00:00:00Z"), 1709164800.0);
  EXPECT_DOUBLE_EQ(*parse_iso8601_utc("2024-06-28T08:00:00.250Z"), 1719561600.25);
  EXPECT_EQ(*parse_iso8601_utc("2024-06-28"), 1719532800.0);
  EXPECT_EQ(format_iso8601_utc(1719561600.0), "2024-06-28T08:00:00Z");
}

TEST(Iso8601, RejectsMalformed) {
  for (const char* bad : {"2024-06-28T08:00:00", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
                          "2024-06-28 08:00:00Z", "24-06-28T08:00:00Z", "2024-06-28T08:00:00+01:00",
                          "2024-06-28T25:00:00Z", ""})
    EXPECT_FALSE(parse_iso8601_utc(bad)) << bad;
}

// positions.csv parsed in parallel chunks split at line ends (models/positions.hpp): the same
// positions, in file order, and the same first error with its absolute line, whatever the split.
InstrumentTable position_instruments() {
  InstrumentTable t;
  for (int i = 0; i < 50; ++i) {
    Instrument inst;
    inst.id = "BTC-OPT-" + std::to_string(i) + (i % 2 ? "-C" : "-P");  // longer than SSO strings
    inst.underlying = "BTC";
    inst.kind = InstrumentKind::option;
    inst.strike = 50000 + 1000 * i;
    inst.expiry = 1.8e9;
    t.add(inst);
  }
  return t;
}

std::string positions_text(int rows) {
  std::string s = "# a book\naccount,instrument,quantity\n";
  for (int r = 0; r < rows; ++r) {
    if (r % 97 == 0) s += "# comment line\n\n";
    s += (r % 13 == 0 ? "\"ACC," + std::to_string(r % 40) + "\"" : "ACC" + std::to_string(r % 40)) + ",BTC-OPT-" +
         std::to_string(r % 50) + (r % 50 % 2 ? "-C" : "-P") + "," + std::to_string((r % 7) - 3.5) + "\n";
  }
  return s;
}

std::string positions_error(const std::string& text, unsigned threads) {
  try {
    parse_positions_csv(text, "p.csv", position_instruments(), threads, 1);
  } catch (const input_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(ParallelPositionsParse, AnySplitGivesTheOnePassResult) {
  const std::string text = positions_text(5000);
  const InstrumentTable t = position_instruments();
  const std::vector<Position> one = parse_positions_csv(text, "p.csv", t, 1, 1);
  ASSERT_EQ(one.size(), 5000u);
  EXPECT_EQ(one[13].account, "ACC,13");  // a quoted field
  EXPECT_EQ(one[1].instrument, t.index_of("BTC-OPT-1-C"));
  EXPECT_EQ(one[1].quantity, -2.5);
  for (unsigned threads : {2u, 3u, 7u, 16u}) {
    SCOPED_TRACE(threads);
    const std::vector<Position> many = parse_positions_csv(text, "p.csv", t, threads, 1);
    ASSERT_EQ(many.size(), one.size());
    for (std::size_t j = 0; j < one.size(); ++j) {
      ASSERT_EQ(many[j].account, one[j].account) << j;
      ASSERT_EQ(many[j].instrument, one[j].instrument) << j;
      ASSERT_EQ(many[j].quantity, one[j].quantity) << j;
    }
  }
}

TEST(ParallelPositionsParse, TheFirstBadLineIsReportedWithItsLineWhateverTheSplit) {
  const std::string good = positions_text(3000);
  std::vector<std::string> lines;
  std::istringstream in(good);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  const std::vector<std::pair<std::string, std::string>> faults = {
      {"ACC1,NOPE,1", "field 'instrument': unknown instrument 'NOPE'"},
      {"ACC1,BTC-OPT-1-C,abc", "field 'quantity': not a finite number: 'abc'"},
      {"ACC1,BTC-OPT-1-C,2e12", "field 'quantity': |quantity| above 1e12"},
      {",BTC-OPT-1-C,1", "field 'account': empty"},
      {"ACC1,BTC-OPT-1-C", "expected 3 fields, found 2"},
      {"\"ACC1,BTC-OPT-1-C,1", "unterminated quoted field"}};
  for (std::size_t k = 0; k < faults.size(); ++k) {
    const std::size_t at = lines.size() - 50 - 300 * k;  // late in the file: not in the first chunk
    std::vector<std::string> bad_lines = lines;
    bad_lines[at] = faults[k].first;
    if (k % 2) bad_lines[lines.size() / 3] = "ACC9,ALSO-NOPE,1";  // an earlier fault wins
    std::string bad;
    for (const std::string& l : bad_lines) bad += l + "\n";
    const std::string expected = positions_error(bad, 1);
    const std::size_t line = k % 2 ? lines.size() / 3 + 1 : at + 1;
    EXPECT_NE(expected.find("p.csv:" + std::to_string(line)), std::string::npos) << expected;
    EXPECT_NE(expected.find(k % 2 ? "unknown instrument 'ALSO-NOPE'" : faults[k].second), std::string::npos) << expected;
    for (unsigned threads : {2u, 5u, 13u}) EXPECT_EQ(positions_error(bad, threads), expected) << k << " " << threads;
  }
  // The header: a missing column, an empty file.
  EXPECT_NE(positions_error("account,quantity\nA,1\n", 2).find("field 'instrument': missing column in header"),
            std::string::npos);
  EXPECT_NE(positions_error("", 2).find("empty file: no header row"), std::string::npos);
}

}  // namespace
}  // namespace marginet
