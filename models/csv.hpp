#pragma once
// Reading the input files of SPEC §3: CSV with a header row, `#` comments and blank lines
// allowed, fields optionally double-quoted. Every error names file, line and field.
//
//   CsvReader csv("positions.csv", {"account", "instrument", "quantity"});
//   while (csv.next()) {
//     std::string account = csv.text("account");
//     double q = csv.number("quantity");
//   }

#include <cstdint>
#include <fstream>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/errors.hpp"

namespace marginet {

class CsvReader {
 public:
  /// Opens `path` and reads its header. Columns in `required` must be present (input_error
  /// otherwise); other columns are allowed and may be read with has()/text().
  CsvReader(const std::string& path, const std::vector<std::string>& required);
  /// The same over an already open stream; `name` is used in error messages.
  CsvReader(std::istream& in, std::string name, const std::vector<std::string>& required);

  /// Advances to the next data row; false at end of file.
  bool next();

  const std::string& file() const { return name_; }
  long line() const { return line_; }
  const std::vector<std::string>& header() const { return header_; }
  bool has(std::string_view column) const { return index_of(column).has_value(); }

  /// The raw text of a field (trimmed). Empty when the column is absent.
  const std::string& text(std::string_view column) const;
  /// A non-empty field; input_error when empty.
  const std::string& required_text(std::string_view column) const;
  /// A finite decimal number; input_error naming the field when not.
  double number(std::string_view column) const;
  /// A signed 64-bit integer.
  std::int64_t integer(std::string_view column) const;
  /// ISO 8601 UTC time (`2024-06-28T08:00:00Z`, fractional seconds allowed) as Unix seconds.
  double time(std::string_view column) const;
  /// The i-th field of the row (for wide files such as risk arrays).
  const std::string& field(std::size_t i) const;
  std::size_t width() const { return row_.size(); }

  /// An input_error at the current line for `column`.
  [[noreturn]] void fail(std::string_view column, const std::string& what) const;

 private:
  std::optional<std::size_t> index_of(std::string_view column) const;
  bool read_record(std::vector<std::string>& fields);

  std::unique_ptr<std::ifstream> owned_;
  std::istream* in_;
  std::string name_;
  long line_ = 0;
  std::vector<std::string> header_;
  std::vector<std::string> row_;
};

/// Split one CSV record into trimmed fields (double-quoted fields, "" for a quote inside them).
/// False when a quoted field is not terminated on the line.
bool split_csv_record(std::string_view line, std::vector<std::string>& fields);

/// Parse ISO 8601 UTC text into Unix seconds; nullopt when malformed.
std::optional<double> parse_iso8601_utc(std::string_view text);
/// Format Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
std::string format_iso8601_utc(double unix_seconds);
/// A figure for people: `value` with `decimals` places and thousands separators
/// ("1,234,567.89"); no "-0.00"; nan and inf spelled out.
std::string format_fixed(double value, int decimals);
/// Decimal text with thousands separators in its whole part ("-1234.5" → "-1,234.5").
std::string with_thousands(std::string text);
/// Parse a finite double (the whole text must be consumed).
std::optional<double> parse_double(std::string_view text);

/// Reads a whole file into a string; input_error when it cannot be opened.
std::string read_file_text(const std::string& path);

}  // namespace marginet
