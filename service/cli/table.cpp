#include "service/cli/table.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "models/errors.hpp"

namespace marginet::cli {

void Table::add_row(std::vector<Cell> row) {
  MARGINET_EXPECTS(row.size() == columns.size(), "row width matches the header");
  rows.push_back(std::move(row));
}

int unit_decimals(const std::string& unit) {
  if (unit == "USD" || unit == "USDC" || unit == "USDT" || unit == "EUR") return 2;
  if (unit == "BTC") return 8;
  if (unit == "ETH" || unit == "SOL") return 9;
  return 4;
}

std::string format_double(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, res.ptr);
}

static std::string csv_field(const Cell& cell) {
  if (const auto* s = std::get_if<std::string>(&cell)) {
    if (s->find_first_of(",\"\n") == std::string::npos) return *s;
    std::string quoted = "\"";
    for (char c : *s) {
      if (c == '"') quoted += '"';
      quoted += c;
    }
    return quoted + "\"";
  }
  if (const auto* d = std::get_if<double>(&cell)) return format_double(*d);
  if (const auto* f = std::get_if<Figure>(&cell)) return format_double(f->value);
  return std::to_string(std::get<std::int64_t>(cell));
}

void write_csv(std::ostream& out, const Table& table) {
  for (std::size_t c = 0; c < table.columns.size(); ++c)
    out << (c ? "," : "") << table.columns[c];
  out << "\n";
  for (const auto& row : table.rows) {
    for (std::size_t c = 0; c < row.size(); ++c) out << (c ? "," : "") << csv_field(row[c]);
    out << "\n";
  }
}

void write_json(std::ostream& out, const Table& table) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& row : table.rows) {
    nlohmann::ordered_json obj;
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (const auto* f = std::get_if<Figure>(&row[c]))
        obj[table.columns[c]] = f->value;
      else
        std::visit([&](const auto& v) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(v)>, Figure>) obj[table.columns[c]] = v;
        }, row[c]);
    }
    rows.push_back(std::move(obj));
  }
  out << rows.dump(2) << "\n";
}

namespace {

/// "-123.45", "0.00", "17": an optional sign, digits, at most one point followed by digits.
bool is_decimal_text(const std::string& s) {
  std::size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  const std::size_t digits_from = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == digits_from) return false;
  if (i == s.size()) return true;
  if (s[i] != '.' || i + 1 == s.size()) return false;
  for (++i; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

struct PrettyCell {
  std::string text;
  bool number = false;
};

PrettyCell pretty_cell(const Cell& cell) {
  if (const auto* s = std::get_if<std::string>(&cell)) {
    // Exact amounts arrive as decimal text ("1250.00"): right-aligned like the other numbers.
    const bool number = is_decimal_text(*s);
    return {number ? with_thousands(*s) : *s, number};
  }
  if (const auto* f = std::get_if<Figure>(&cell)) return {format_fixed(f->value, f->decimals), true};
  if (const auto* d = std::get_if<double>(&cell)) {
    // A figure without a unit's decimals: six significant digits, fixed point where that reads.
    const double a = std::fabs(*d);
    if (a == 0) return {"0", true};
    if (!std::isfinite(*d) || (a != 0 && (a < 1e-6 || a >= 1e15))) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6g", *d);
      return {buf, true};
    }
    const int whole = a >= 1 ? static_cast<int>(std::floor(std::log10(a))) + 1 : 0;
    int lead_zeros = 0;  // 0.000945: three zeros after the point before the first digit
    if (a > 0 && a < 1) lead_zeros = -static_cast<int>(std::floor(std::log10(a))) - 1;
    return {format_fixed(*d, std::clamp(6 - whole, 0, 6) + lead_zeros), true};
  }
  return {std::to_string(std::get<std::int64_t>(cell)), true};
}

std::size_t display_width(const std::string& s) {
  std::size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;  // UTF-8: count code points
  return w;
}

}  // namespace

void write_pretty(std::ostream& out, const Table& table) {
  const std::size_t n = table.columns.size();
  std::vector<std::vector<PrettyCell>> cells;
  std::vector<std::size_t> width(n);
  std::vector<bool> numeric(n, false);
  for (std::size_t c = 0; c < n; ++c) width[c] = display_width(table.columns[c]);
  for (const auto& row : table.rows) {
    std::vector<PrettyCell> line;
    for (std::size_t c = 0; c < n; ++c) {
      line.push_back(pretty_cell(row[c]));
      width[c] = std::max(width[c], display_width(line.back().text));
      if (line.back().number) numeric[c] = true;
    }
    cells.push_back(std::move(line));
  }
  auto emit = [&](std::size_t c, const std::string& text, bool right) {
    const std::string pad(width[c] - display_width(text), ' ');
    out << (c ? "  " : "") << (right ? pad + text : (c + 1 < n ? text + pad : text));
  };
  for (std::size_t c = 0; c < n; ++c) emit(c, table.columns[c], numeric[c]);
  out << "\n";
  for (const auto& line : cells) {
    for (std::size_t c = 0; c < n; ++c) emit(c, line[c].text, numeric[c] && line[c].number);
    out << "\n";
  }
}

bool pretty_output(const std::ostream& out, const std::string& format) {
  if (format == "table") return true;
  return format == "auto" && &out == &std::cout && isatty(STDOUT_FILENO) == 1;
}

void write_table(std::ostream& out, const Table& table, const std::string& format) {
  if (format == "json")
    write_json(out, table);
  else if (pretty_output(out, format))
    write_pretty(out, table);
  else
    write_csv(out, table);
}

}  // namespace marginet::cli
