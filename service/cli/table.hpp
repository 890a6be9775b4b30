#pragma once
// Tabular results written as CSV (header row, then one line per row) or JSON (an array of
// objects). Doubles are written in their shortest round-trip form, integers exactly.

#include <cstdint>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

namespace marginet::cli {

using Cell = std::variant<std::string, double, std::int64_t>;

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;

  void add_row(std::vector<Cell> row);
};

void write_csv(std::ostream& out, const Table& table);
void write_json(std::ostream& out, const Table& table);
/// "csv" or "json"
void write_table(std::ostream& out, const Table& table, const std::string& format);

/// Shortest decimal text that parses back to the same double; "nan"/"inf" spelled out.
std::string format_double(double value);

}  // namespace marginet::cli
