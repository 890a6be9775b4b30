#include "models/trade_generator.hpp"

#include <cmath>
#include <ostream>
#include <random>

#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

namespace {

struct BuiltinAsset {
  const char* name;
  int scale;
  double usd_price;
  bool stable;  // a common quote asset
};
constexpr BuiltinAsset kBuiltin[] = {
    {"BTC", 8, 60000.0, false}, {"ETH", 9, 3000.0, false}, {"USD", 2, 1.0, true},
    {"USDC", 6, 1.0, true},     {"USDT", 6, 1.0, true},    {"SOL", 9, 150.0, false},
    {"XRP", 6, 0.5, false},     {"DOGE", 8, 0.1, false},   {"ADA", 6, 0.4, false},
    {"LTC", 8, 80.0, false}};
constexpr std::size_t kBuiltinCount = sizeof kBuiltin / sizeof kBuiltin[0];

/// Uniform in [0, 1) from 53 random bits (portable, unlike std::uniform_real_distribution).
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
/// Standard normal by Box–Muller (portable).
double normal(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform(rng), u2 = uniform(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

struct GeneratedTrade {
  std::size_t buyer, seller;
  std::int32_t base, quote;
  std::int64_t quantity;  // base minor units
  Decimal price;
  std::int64_t notional;  // quote minor units: quantity × price, half-even
};

template <class Sink>
void for_each_trade(const TradeGeneratorConfig& cfg, Sink&& sink) {
  if (cfg.members < 2) throw usage_error("trade generator: at least 2 members");
  if (cfg.assets < 2 || cfg.assets > kBuiltinCount)
    throw usage_error("trade generator: 2.." + std::to_string(kBuiltinCount) + " assets");
  std::mt19937_64 rng(cfg.seed);
  const auto n_assets = static_cast<std::int32_t>(cfg.assets);
  auto pick_member = [&] {
    const auto m = static_cast<std::size_t>(static_cast<double>(cfg.members) *
                                            std::pow(uniform(rng), cfg.member_skew));
    return m < cfg.members ? m : cfg.members - 1;
  };
  auto pick_asset = [&] {  // skewed toward the first assets
    const auto a = static_cast<std::int32_t>(n_assets * uniform(rng) * uniform(rng));
    return a < n_assets ? a : n_assets - 1;
  };
  for (std::size_t t = 0; t < cfg.trades; ++t) {
    GeneratedTrade g{};
    g.buyer = pick_member();
    do g.seller = pick_member();
    while (g.seller == g.buyer);
    g.base = pick_asset();
    g.quote = -1;
    if (uniform(rng) < 0.7) {  // most trades are quoted in a stable asset
      const std::int32_t stable = 2 + static_cast<std::int32_t>(3 * uniform(rng));
      if (stable < n_assets && stable != g.base) g.quote = stable;
    }
    while (g.quote < 0 || g.quote == g.base) g.quote = static_cast<std::int32_t>(n_assets * uniform(rng)) % n_assets;
    const BuiltinAsset& b = kBuiltin[g.base];
    const BuiltinAsset& q = kBuiltin[g.quote];
    // Price: the reference ratio ±1 %, with 8 significant digits.
    const double ratio = b.usd_price / q.usd_price * (1.0 + 0.01 * normal(rng));
    int decimals = 8 - static_cast<int>(std::ceil(std::log10(ratio)));
    decimals = decimals < 0 ? 0 : (decimals > 12 ? 12 : decimals);
    g.price = Decimal{std::llround(ratio * std::pow(10.0, decimals)), decimals};
    if (g.price.mantissa < 1) g.price.mantissa = 1;
    // Size: lognormal notional, median 2,000 USD (mean ~3,300), between 1 USD and 1 million USD.
    // Bounded so that 10 assets' gross deliveries stay within int64 minor units up to a few tens
    // of millions of trades (DOGE at scale 8: INT64_MAX minor units is only ~9.2e9 USD).
    double usd = std::exp(std::log(2000.0) + 1.0 * normal(rng));
    usd = usd < 1.0 ? 1.0 : (usd > 1e6 ? 1e6 : usd);
    g.quantity = std::llround(usd / b.usd_price * std::pow(10.0, b.scale));
    if (g.quantity < 1) g.quantity = 1;
    while (true) {  // at least one minor unit of quote (a 1 USD trade always has it)
      const MoneyStatus st = multiply_money(g.quantity, b.scale, g.price, q.scale, g.notional);
      MARGINET_EXPECTS(st == MoneyStatus::ok, "generated notional fits int64");
      if (g.notional > 0) break;
      g.quantity *= 2;
    }
    sink(t, g);
  }
}

std::string member_name(std::size_t m) {
  std::string digits = std::to_string(m);
  if (digits.size() < 4) digits.insert(0, 4 - digits.size(), '0');
  return "M" + digits;
}

}  // namespace

AssetTable generator_assets(std::size_t n) {
  if (n > kBuiltinCount) throw usage_error("trade generator: at most 10 assets");
  AssetTable table;
  for (std::size_t i = 0; i < n; ++i) table.add(kBuiltin[i].name, kBuiltin[i].scale);
  return table;
}

TradeSet generate_trades(const TradeGeneratorConfig& cfg) {
  TradeSet set(generator_assets(cfg.assets));
  // Intern every member up front so that ids equal generator indices (M0000 is id 0).
  for (std::size_t m = 0; m < cfg.members; ++m) set.intern_member(member_name(m));
  set.reserve(cfg.trades);
  for_each_trade(cfg, [&](std::size_t, const GeneratedTrade& g) {
    set.add(static_cast<std::int32_t>(g.buyer), static_cast<std::int32_t>(g.seller), g.base, g.quote,
            g.quantity, g.notional, "generator", 0);
  });
  return set;
}

void write_generated_trades_csv(std::ostream& out, const TradeGeneratorConfig& cfg) {
  out << "trade_id,buyer,seller,base_asset,quote_asset,quantity,price\n";
  for_each_trade(cfg, [&](std::size_t t, const GeneratedTrade& g) {
    out << 'T' << (t + 1) << ',' << member_name(g.buyer) << ',' << member_name(g.seller) << ','
        << kBuiltin[g.base].name << ',' << kBuiltin[g.quote].name << ','
        << format_money(g.quantity, kBuiltin[g.base].scale) << ','
        << format_money(g.price.mantissa, g.price.decimals) << '\n';
  });
}

void write_assets_csv(std::ostream& out, const AssetTable& assets) {
  out << "asset,scale\n";
  for (const auto& a : assets.all()) out << a.name << ',' << a.scale << '\n';
}

}  // namespace marginet
