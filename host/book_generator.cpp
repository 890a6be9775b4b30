#include "host/book_generator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <fstream>
#include <random>

#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

std::string account_name(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ACC%06zu", i);
  return buf;
}

namespace {
const double kExpiryDays[] = {1, 7, 14, 28, 63, 91, 182, 273, 364};
constexpr std::size_t kExpiries = sizeof kExpiryDays / sizeof kExpiryDays[0];

std::string underlying_name(std::size_t u) {
  if (u == 0) return "BTC";
  if (u == 1) return "ETH";
  char buf[32];
  std::snprintf(buf, sizeof buf, "U%02zu", u);
  return buf;
}

double smile(double base, double F, double K, double T) {
  const double x = std::log(K / F);
  return base * (1.0 + 0.25 * x * x / std::max(T, 0.02)) * (1.0 - 0.1 * x);
}
}  // namespace

GeneratedBook generate_book(const BookSpec& spec) {
  if (spec.underlyings == 0) throw usage_error("a book needs at least one underlying");
  GeneratedBook book;
  std::mt19937_64 rng(spec.seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);

  // Underlyings and futures: index, rate, base vol; a small basis per expiry.
  std::vector<double> base_vol(spec.underlyings);
  const std::size_t per_underlying = std::max<std::size_t>(kExpiries + 1, spec.instruments / spec.underlyings);
  for (std::size_t u = 0; u < spec.underlyings; ++u) {
    const std::string name = underlying_name(u);
    book.underlyings.push_back(name);
    const double index = u == 0 ? 65000.0 : u == 1 ? 3500.0 : std::exp(1.0 + 6.0 * uni(rng));
    book.market.set_underlying(name, UnderlyingMarket{index, 0.0, spec.valuation_time});
    base_vol[u] = 0.4 + 0.5 * uni(rng);
    const bool inverse = u < 2;
    const Settlement settle = inverse ? Settlement::inverse : Settlement::linear;
    Instrument perp{name + "-PERPETUAL", name, InstrumentKind::perpetual, OptionType::call, 0, 0, 1, settle};
    book.instruments.add(perp);
    book.market.set_mark(perp.id, Mark{index * (1.0 + 0.001 * normal(rng)), std::nan("")});
    for (std::size_t e = 0; e < kExpiries; ++e) {
      const double expiry = spec.valuation_time + kExpiryDays[e] * 86400.0;
      const double fwd = index * std::exp(0.05 * kExpiryDays[e] / 365.0);
      char id[64];
      std::snprintf(id, sizeof id, "%s-F%03d", name.c_str(), static_cast<int>(kExpiryDays[e]));
      Instrument fut{id, name, InstrumentKind::future, OptionType::call, 0, expiry, 1, settle};
      book.instruments.add(fut);
      book.market.set_mark(fut.id, Mark{fwd, std::nan("")});
      book.market.set_future_forward(name, expiry, fwd);
    }
  }
  // Option chains: strikes spread over moneyness 0.5–2 (denser near the money), calls and puts.
  for (std::size_t u = 0; u < spec.underlyings; ++u) {
    const std::string& name = book.underlyings[u];
    const double index = book.market.underlying(name).index_price;
    const bool inverse = u < 2;
    const std::size_t options = per_underlying - kExpiries - 1;
    const std::size_t strikes_per_expiry = std::max<std::size_t>(1, options / (2 * kExpiries));
    std::size_t made = 0;
    for (std::size_t e = 0; e < kExpiries && made < options; ++e) {
      const double expiry = spec.valuation_time + kExpiryDays[e] * 86400.0;
      const double T = kExpiryDays[e] / 365.0;
      const double F = book.market.forward(name, expiry);
      for (std::size_t k = 0; k < strikes_per_expiry && made < options; ++k) {
        const double z = strikes_per_expiry == 1 ? 0.0 : -1.0 + 2.0 * static_cast<double>(k) / (strikes_per_expiry - 1);
        const double K = F * std::exp(0.69 * z * std::fabs(z) + 0.001 * static_cast<double>(k));
        for (int pc = 0; pc < 2 && made < options; ++pc, ++made) {
          char id[80];
          std::snprintf(id, sizeof id, "%s-O%03d-%zu-%c", name.c_str(), static_cast<int>(kExpiryDays[e]), k,
                        pc == 0 ? 'C' : 'P');
          Instrument opt{id, name, InstrumentKind::option, pc == 0 ? OptionType::call : OptionType::put,
                         std::round(K * 1e4) / 1e4, expiry, 1, inverse ? Settlement::inverse : Settlement::linear};
          book.instruments.add(opt);
          book.market.set_mark(opt.id, Mark{std::nan(""), smile(base_vol[u], F, opt.strike, T)});
        }
      }
    }
    (void)index;
  }

  // Positions: account sizes ~ Zipf (power law), instruments near the money more often.
  const std::size_t n = book.instruments.size();
  std::vector<double> weight(spec.accounts);
  double total = 0;
  for (std::size_t a = 0; a < spec.accounts; ++a) total += weight[a] = 1.0 / std::pow(static_cast<double>(a + 1), 0.8);
  std::vector<std::size_t> per_account(spec.accounts);
  std::size_t assigned = 0;
  for (std::size_t a = 0; a < spec.accounts; ++a) {
    per_account[a] = std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(spec.positions) * weight[a] / total));
    assigned += per_account[a];
  }
  // Trim or pad the largest accounts so the total is exact.
  for (std::size_t a = 0; assigned > spec.positions && a < spec.accounts; ++a) {
    const std::size_t cut = std::min(per_account[a] - 1, assigned - spec.positions);
    per_account[a] -= cut;
    assigned -= cut;
  }
  if (assigned < spec.positions && spec.accounts) per_account[0] += spec.positions - assigned;
  book.positions.reserve(spec.positions);
  for (std::size_t a = 0; a < spec.accounts; ++a) {
    const std::string acc = account_name(a);
    const std::size_t home = static_cast<std::size_t>(uni(rng) * static_cast<double>(spec.underlyings)) % spec.underlyings;
    for (std::size_t j = 0; j < per_account[a]; ++j) {
      std::size_t i;
      if (uni(rng) < 0.7) {  // most positions in the account's home underlying
        const std::size_t base = home * per_underlying;
        const std::size_t span = std::min(per_underlying, n - std::min(n, base));
        i = span ? base + static_cast<std::size_t>(uni(rng) * static_cast<double>(span)) % span : 0;
      } else {
        i = static_cast<std::size_t>(uni(rng) * static_cast<double>(n)) % n;
      }
      const Instrument& inst = book.instruments[i];
      double q = std::round(normal(rng) * 20.0) / 10.0;
      if (q == 0) q = 0.1;
      if (inst.settlement == Settlement::linear && inst.kind != InstrumentKind::option) q = std::round(q * 10);
      book.positions.push_back(Position{acc, i, q});
    }
  }
  return book;
}

void write_returns_history(const std::string& path, const std::vector<std::string>& underlyings, int days,
                           double valuation_time, std::uint64_t seed, bool stressed) {
  std::ofstream f(path);
  if (!f) throw input_error(path, 0, "", "cannot open for writing");
  f.precision(17);
  f << "date,underlying,return,vol_return\n";
  std::mt19937_64 rng(seed);
  std::student_t_distribution<double> shock(4.0);
  std::normal_distribution<double> normal;
  const std::size_t U = underlyings.size();
  const double base = stressed ? 0.06 : 0.03;  // daily vol level
  std::vector<double> var(U, base * base);
  for (int d = 0; d < days; ++d) {
    const double market = shock(rng) / std::sqrt(2.0);  // t(4) scaled to unit variance
    const bool crash = stressed && d == days / 2;
    const double date = valuation_time - (days - d) * 86400.0;
    for (std::size_t u = 0; u < U; ++u) {
      const double idio = shock(rng) / std::sqrt(2.0);
      double r = std::sqrt(var[u]) * (0.85 * market + 0.53 * idio);
      if (crash) r = -0.35 - 0.05 * static_cast<double>(u);
      r = std::max(r, -0.9);
      var[u] = 0.000002 + 0.08 * r * r + 0.90 * var[u];  // clustering
      const double vol_return = -2.0 * r + 0.03 * normal(rng);
      f << format_iso8601_utc(date).substr(0, 10) << "," << underlyings[u] << "," << r << "," << vol_return << "\n";
    }
  }
}

void write_collateral(const GeneratedBook& book, const std::string& path, std::uint64_t seed) {
  std::ofstream f(path);
  if (!f) throw input_error(path, 0, "", "cannot open for writing");
  f.precision(17);
  f << "account,asset,amount\n";
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::map<std::string, double> notional;  // rough size of each account's book
  for (const Position& p : book.positions) {
    const Instrument& i = book.instruments[p.instrument];
    notional[p.account] += std::fabs(p.quantity) * i.contract_size * book.market.underlying(i.underlying).index_price;
  }
  const double btc = book.market.underlying(book.underlyings.front()).index_price;
  for (const auto& [account, n] : notional) {
    const double want = n * 0.15 * (0.3 + uni(rng));  // some accounts will be short of margin
    f << account << ",USDC," << std::round(want * 0.6 * 100) / 100 << "\n";
    f << account << "," << book.underlyings.front() << "," << std::round(want * 0.4 / btc * 1e8) / 1e8 << "\n";
  }
}

void write_book(const GeneratedBook& book, const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto open = [&](const char* name) {
    std::ofstream f(dir + "/" + name);
    if (!f) throw input_error(dir + "/" + name, 0, "", "cannot open for writing");
    f.precision(17);
    return f;
  };
  {
    auto f = open("instruments.csv");
    f << "id,underlying,kind,put_call,strike,expiry,contract_size,settlement\n";
    for (const Instrument& i : book.instruments) {
      f << i.id << "," << i.underlying << "," << to_string(i.kind) << ",";
      if (i.kind == InstrumentKind::option) f << to_string(i.put_call) << "," << i.strike;
      else f << ",";
      f << ",";
      if (i.kind == InstrumentKind::option || i.kind == InstrumentKind::future) f << format_iso8601_utc(i.expiry);
      f << "," << i.contract_size << "," << to_string(i.settlement) << "\n";
    }
  }
  {
    auto f = open("market.csv");
    f << "underlying,index_price,rate,valuation_time\n";
    for (const std::string& u : book.underlyings) {
      const UnderlyingMarket& m = book.market.underlying(u);
      f << u << "," << m.index_price << "," << m.rate << "," << format_iso8601_utc(m.valuation_time) << "\n";
    }
  }
  {
    auto f = open("marks.csv");
    f << "instrument,mark_price,mark_iv\n";
    for (const Instrument& i : book.instruments) {
      const Mark* m = book.market.find_mark(i.id);
      if (!m) continue;
      f << i.id << ",";
      if (m->has_price()) f << m->mark_price;
      f << ",";
      if (m->has_iv()) f << m->mark_iv;
      f << "\n";
    }
  }
  {
    auto f = open("positions.csv");
    f << "account,instrument,quantity\n";
    for (const Position& p : book.positions) f << p.account << "," << book.instruments[p.instrument].id << "," << p.quantity << "\n";
  }
}

}  // namespace marginet
