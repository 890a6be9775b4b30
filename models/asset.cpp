#include "models/asset.hpp"

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

std::int32_t AssetTable::add(std::string name, int scale, const std::string& source, long line) {
  if (name.empty()) throw input_error(source, line, "asset", "empty asset name");
  if (scale < 0 || scale > kMaxMoneyScale)
    throw input_error(source, line, "scale", money_status_text(MoneyStatus::bad_scale, scale));
  if (find(name)) throw input_error(source, line, "asset", "asset '" + name + "' listed twice");
  assets_.push_back(Asset{std::move(name), scale});
  return static_cast<std::int32_t>(assets_.size() - 1);
}

std::vector<AssetScale> AssetTable::scales() const {
  std::vector<AssetScale> out;
  out.reserve(assets_.size());
  for (const auto& a : assets_) out.push_back(AssetScale{a.name, a.scale});
  return out;
}

namespace {
AssetTable read_assets(CsvReader& csv) {
  AssetTable table;
  while (csv.next()) {
    const std::int64_t scale = csv.integer("scale");
    if (scale < 0 || scale > kMaxMoneyScale)
      csv.fail("scale", "must be 0.." + std::to_string(kMaxMoneyScale) + " (got " + std::to_string(scale) + ")");
    table.add(csv.required_text("asset"), static_cast<int>(scale), csv.file(), csv.line());
  }
  return table;
}
}  // namespace

AssetTable read_assets_csv(const std::string& path) {
  CsvReader csv(path, {"asset", "scale"});
  return read_assets(csv);
}

AssetTable read_assets_csv(std::istream& in, const std::string& name) {
  CsvReader csv(in, name, {"asset", "scale"});
  return read_assets(csv);
}

}  // namespace marginet
