// The input-file reader: comments, quoting, and errors that name file, line and field.

#include <gtest/gtest.h>

#include <sstream>

#include "models/csv.hpp"

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

}  // namespace
}  // namespace marginet
