#pragma once
// Trades for netting (SPEC §3, §6): `trades.csv` with columns
//   trade_id,buyer,seller,base_asset,quote_asset,quantity,price
// The buyer receives `quantity` of base and pays `quantity × price` of quote.
//
// Loaded into a columnar TradeSet with dense member ids (order of first appearance) and dense
// asset ids (order of assets.csv), which is what the netting kernels read. Exactness:
//   * quantity is decimal text in the base asset's scale; more non-zero decimals than the scale
//     is an error (never rounded silently);
//   * price is decimal text (up to 18 decimals), quote units per one base unit;
//   * notional = quantity × price, formed exactly in 128 bits and rounded ONCE, half-even, to the
//     quote asset's minor unit (models/money.hpp multiply_money). A notional that rounds to zero
//     is rejected (a trade must move value both ways);
//   * per asset, the total of all deliveries (the gross) must fit int64 minor units: every net,
//     bilateral net, pay-in and pay-out is bounded by it, so the kernels can never overflow.
// Rejected with file, line and field: self-trades (buyer == seller), duplicate trade ids, unknown
// assets, base == quote, non-positive quantity or price, amounts beyond int64.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/asset.hpp"

namespace marginet {

/// Dense int32 ids for names (members, accounts), in order of first appearance. An open-
/// addressing table of ids over the names (flat arrays: the loader looks up two names per trade).
class NameIndex {
 public:
  std::int32_t intern(std::string_view name);
  std::optional<std::int32_t> find(std::string_view name) const;
  const std::string& name(std::int32_t id) const { return names_[static_cast<std::size_t>(id)]; }
  std::size_t size() const noexcept { return names_.size(); }

 private:
  /// The slot holding `name`, or the empty slot where it would go.
  std::size_t slot_of(std::string_view name, std::uint64_t hash) const;
  void grow();

  std::vector<std::string> names_;
  std::vector<std::uint64_t> hashes_;  // per id
  std::vector<std::int32_t> slots_;    // power-of-two size, −1 = empty
};

/// Trade columns as the parser builds them (one per chunk of a file).
struct TradeColumnsOwned {
  std::vector<std::int32_t> buyer, seller, base, quote;
  std::vector<std::int64_t> quantity, notional;
  void reserve(std::size_t n);
  void push(std::int32_t b, std::int32_t s, std::int32_t base_asset, std::int32_t quote_asset, std::int64_t q,
            std::int64_t n) {
    buyer.push_back(b);
    seller.push_back(s);
    base.push_back(base_asset);
    quote.push_back(quote_asset);
    quantity.push_back(q);
    notional.push_back(n);
  }
};

/// Columnar trades with dense ids. Invariants (kept by add()): buyer != seller, base != quote,
/// quantity > 0, notional > 0, ids in range, per-asset gross deliveries ≤ INT64_MAX.
class TradeSet {
 public:
  TradeSet() = default;
  explicit TradeSet(AssetTable assets) : assets_(std::move(assets)), gross_(assets_.size(), 0) {}

  std::int32_t intern_member(std::string_view name) { return members_.intern(name); }

  /// Appends one trade; input_error naming `source`, `line` and the field on a broken rule.
  void add(std::int32_t buyer, std::int32_t seller, std::int32_t base_asset, std::int32_t quote_asset,
           std::int64_t quantity, std::int64_t notional, const std::string& source = "trades",
           long line = 0);
  void reserve(std::size_t n);

  std::size_t size() const noexcept { return buyer_.size(); }
  bool empty() const noexcept { return buyer_.empty(); }
  const AssetTable& assets() const noexcept { return assets_; }
  const NameIndex& members() const noexcept { return members_; }

  const std::vector<std::int32_t>& buyer() const noexcept { return buyer_; }
  const std::vector<std::int32_t>& seller() const noexcept { return seller_; }
  const std::vector<std::int32_t>& base_asset() const noexcept { return base_; }
  const std::vector<std::int32_t>& quote_asset() const noexcept { return quote_; }
  const std::vector<std::int64_t>& quantity() const noexcept { return quantity_; }  // base minor units
  const std::vector<std::int64_t>& notional() const noexcept { return notional_; }  // quote minor units
  /// Per asset: Σ quantity where it is the base + Σ notional where it is the quote.
  const std::vector<std::int64_t>& gross_deliveries() const noexcept { return gross_; }

 private:
  AssetTable assets_;
  NameIndex members_;
  std::vector<std::int32_t> buyer_, seller_, base_, quote_;
  std::vector<std::int64_t> quantity_, notional_;
  std::vector<std::int64_t> gross_;

  friend struct TradeSetAccess;  // the trades.csv parser's bulk path (models/trade.cpp)
};

/// How trades.csv is parsed: the lines after the header are split into `threads` chunks at line
/// ends (fewer for a small file: at least `min_chunk_bytes` each), parsed in parallel and merged
/// in file order. The result — ids, rows, the error reported — is the same for any split.
struct TradeParseOptions {
  unsigned threads = 0;                  // 0 = the machine's hardware threads
  std::size_t min_chunk_bytes = 1 << 20;
};

/// Reads trades.csv (header row, `#` comments, blank lines and double-quoted fields allowed;
/// a record is one line). The whole file is read into memory and parsed in parallel chunks.
TradeSet read_trades_csv(const std::string& path, const AssetTable& assets, const TradeParseOptions& options = {});
/// The same over text already in memory; `source` names it in errors.
TradeSet parse_trades_csv(std::string_view text, const std::string& source, const AssetTable& assets,
                          const TradeParseOptions& options = {});


}  // namespace marginet
