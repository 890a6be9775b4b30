#include "service/clearing/trade_csv.hpp"

#include <memory>
#include <unordered_map>

#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

namespace {

const std::vector<std::string> kRequired = {"source", "trade_id", "account", "instrument",
                                            "quantity", "price",  "time"};

std::vector<Submission> read_rows(CsvReader& csv, std::vector<std::vector<long>>* lines) {
  std::vector<Submission> out;
  std::vector<std::vector<long>> row_lines;
  std::unordered_map<std::string, std::size_t> package_at;  // package_id -> index in out
  while (csv.next()) {
    TradeInput in;
    for (const char* col : {"source", "trade_id", "account", "instrument", "quantity", "price", "time"})
      csv.required_text(col);
    in.source = csv.text("source");
    in.trade_id = csv.text("trade_id");
    in.account = csv.text("account");
    in.instrument = csv.text("instrument");
    in.quantity_text = csv.text("quantity");
    in.price_text = csv.text("price");
    in.time = csv.text("time");
    if (const std::string& side = csv.text("side"); !side.empty()) {
      in.side = parse_side(side);
      if (!in.side) csv.fail("side", "'" + side + "': not buy or sell");
    }
    in.package_id = csv.text("package_id");
    in.signature_hex = csv.text("signature");
    Trade checked;
    if (auto e = validate_trade(in, checked)) csv.fail(e->field, e->what);

    if (in.package_id.empty()) {
      out.push_back(Submission::trade(std::move(in)));
      row_lines.push_back({csv.line()});
      continue;
    }
    const auto [it, fresh] = package_at.emplace(in.package_id, out.size());
    if (fresh) {
      out.push_back(Submission::package({std::move(in)}));
      row_lines.push_back({csv.line()});
    } else {
      out[it->second].legs.push_back(std::move(in));
      row_lines[it->second].push_back(csv.line());
    }
  }
  if (lines) *lines = std::move(row_lines);
  return out;
}

}  // namespace

std::vector<Submission> read_trade_submissions_csv(const std::string& path, std::vector<std::vector<long>>* lines) {
  CsvReader csv(path, kRequired);
  return read_rows(csv, lines);
}

std::vector<Submission> read_trade_submissions_csv(std::istream& in, const std::string& name,
                                                   std::vector<std::vector<long>>* lines) {
  CsvReader csv(in, name, kRequired);
  return read_rows(csv, lines);
}

}  // namespace marginet
