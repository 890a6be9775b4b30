#pragma once
// Tabular results: CSV (header row, then one line per row) and JSON (an array of objects) for
// machines, at full precision; an aligned table for people on a terminal, every figure rounded to
// its unit's decimals. Doubles go to CSV and JSON in their shortest round-trip form, integers
// exactly.

#include <cstdint>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "models/csv.hpp"  // format_fixed, with_thousands

namespace marginet::cli {

/// A figure with the decimals it is shown with on a terminal (2 for USD, 8 for BTC, …); CSV and
/// JSON write it whole.
struct Figure {
  double value = 0;
  int decimals = 2;
};

using Cell = std::variant<std::string, double, std::int64_t, Figure>;

/// Decimals of a figure in `unit` on a terminal: USD-like 2, BTC 8, ETH and SOL 9, else 4.
int unit_decimals(const std::string& unit);

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;

  void add_row(std::vector<Cell> row);
};

void write_csv(std::ostream& out, const Table& table);
void write_json(std::ostream& out, const Table& table);
/// Columns aligned (text left, numbers right), figures rounded to their decimals, other doubles
/// to 6 significant digits in fixed point (an exponent only below 1e-6 or from 1e15).
void write_pretty(std::ostream& out, const Table& table);
/// "csv", "json", "table", or "auto": a table when `out` is a terminal's stdout, else CSV.
void write_table(std::ostream& out, const Table& table, const std::string& format);
/// Whether `format` asks for the aligned table when writing to `out`.
bool pretty_output(const std::ostream& out, const std::string& format);

/// Shortest decimal text that parses back to the same double; "nan"/"inf" spelled out.
std::string format_double(double value);

}  // namespace marginet::cli
