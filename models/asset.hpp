#pragma once
// The assets that settle (SPEC §3): `assets.csv` with columns `asset,scale`, scale being the
// decimal places of the minor unit (BTC 8, ETH 9, USD 2, USDC 6). Assets get dense ids 0..n−1
// in file order; the kernels see only those ids.

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/settlement_cycle.hpp"

namespace marginet {

struct Asset {
  std::string name;
  int scale = 0;  // 0..kMaxMoneyScale
};

class AssetTable {
 public:
  /// Adds an asset; input_error (naming `source`/`line`) on an empty or duplicate name or a scale
  /// outside 0..18. Returns its dense id.
  std::int32_t add(std::string name, int scale, const std::string& source = "assets", long line = 0);
  /// The dense id of `name`; nullopt when unknown. Linear: a market has a few assets.
  std::optional<std::int32_t> find(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < assets_.size(); ++i)
      if (assets_[i].name == name) return static_cast<std::int32_t>(i);
    return std::nullopt;
  }
  const Asset& operator[](std::int32_t id) const { return assets_[static_cast<std::size_t>(id)]; }
  std::size_t size() const noexcept { return assets_.size(); }
  bool empty() const noexcept { return assets_.empty(); }
  const std::vector<Asset>& all() const noexcept { return assets_; }
  /// As the settlement cycle lists them.
  std::vector<AssetScale> scales() const;

 private:
  std::vector<Asset> assets_;
};

/// Reads `asset,scale`; every error names file, line and field.
AssetTable read_assets_csv(const std::string& path);
AssetTable read_assets_csv(std::istream& in, const std::string& name);

}  // namespace marginet
