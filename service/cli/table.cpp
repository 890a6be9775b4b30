#include "service/cli/table.hpp"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "models/errors.hpp"

namespace marginet::cli {

void Table::add_row(std::vector<Cell> row) {
  MARGINET_EXPECTS(row.size() == columns.size(), "row width matches the header");
  rows.push_back(std::move(row));
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
      std::visit([&](const auto& v) { obj[table.columns[c]] = v; }, row[c]);
    }
    rows.push_back(std::move(obj));
  }
  out << rows.dump(2) << "\n";
}

void write_table(std::ostream& out, const Table& table, const std::string& format) {
  if (format == "json")
    write_json(out, table);
  else
    write_csv(out, table);
}

}  // namespace marginet::cli
