#pragma once
// Instruments (SPEC §3): European options, dated futures, perpetuals and spot, settled linear
// (values in the quote currency, e.g. USD) or inverse (values in the underlying coin, Deribit
// style), plus the parser of Deribit instrument names and the table of instruments by id.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace marginet {

enum class InstrumentKind : std::uint8_t { option, future, perpetual, spot };
enum class OptionType : std::uint8_t { call, put };
enum class Settlement : std::uint8_t { linear, inverse };

struct Instrument {
  std::string id;
  std::string underlying;              // e.g. "BTC"; the key into MarketSnapshot
  InstrumentKind kind = InstrumentKind::option;
  OptionType put_call = OptionType::call;  // options only
  double strike = 0;                   // options only, quote currency per unit of underlying
  double expiry = 0;                   // Unix seconds UTC; 0 for perpetual and spot
  double contract_size = 1;            // units of underlying per contract (1: quantities in coin)
  Settlement settlement = Settlement::linear;
};

const char* to_string(InstrumentKind kind);
const char* to_string(OptionType type);
const char* to_string(Settlement settlement);
/// "option" | "future" | "perpetual" | "spot".
std::optional<InstrumentKind> parse_instrument_kind(std::string_view text);
/// "call" | "put" | "C" | "P" (either case).
std::optional<OptionType> parse_option_type(std::string_view text);
/// "linear" | "inverse".
std::optional<Settlement> parse_settlement(std::string_view text);

/// Deribit instrument names:
///   BTC-28JUN24-70000-C   option (strike may use 'd' as decimal point: XRP_USDC-7JUN24-0d625-C)
///   BTC-28JUN24           dated future
///   BTC-PERPETUAL         perpetual
/// Coin-settled names (BTC, ETH, ...) are inverse; `<COIN>_USDC` / `<COIN>_USDT` names are linear
/// with underlying <COIN>. Expiry is 08:00 UTC of the date; contract_size 1 (quantities in coin).
/// nullopt when the text is not such a name (or names an impossible date).
std::optional<Instrument> parse_deribit_name(std::string_view name);

/// Instruments by id, in insertion order. Lookups of unknown ids throw input_error naming the id.
class InstrumentTable {
 public:
  /// Adds an instrument; false (and no change) when the id is already present.
  bool add(Instrument instrument);

  std::size_t size() const { return instruments_.size(); }
  bool empty() const { return instruments_.empty(); }
  const Instrument& operator[](std::size_t i) const { return instruments_[i]; }
  const std::vector<Instrument>& all() const { return instruments_; }
  auto begin() const { return instruments_.begin(); }
  auto end() const { return instruments_.end(); }

  bool contains(std::string_view id) const { return find(id) != nullptr; }
  /// nullptr when unknown.
  const Instrument* find(std::string_view id) const;
  /// input_error "unknown instrument 'X'" when unknown.
  const Instrument& at(std::string_view id) const;
  /// Position of `id` in the table; input_error when unknown.
  std::size_t index_of(std::string_view id) const;
  /// Position of `id` in the table; nullopt when unknown (one lookup).
  std::optional<std::size_t> find_index(std::string_view id) const;

 private:
  std::vector<Instrument> instruments_;
  std::unordered_map<std::string, std::size_t> by_id_;
};

}  // namespace marginet
