#include "models/var_scenarios.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/philox.hpp"

namespace marginet {

ReturnHistory read_returns(const std::string& path) {
  CsvReader csv(path, {"date", "underlying", "return"});
  const bool has_vol = csv.has("vol_return");
  std::map<std::string, std::map<double, std::pair<double, double>>> by_underlying;
  std::set<double> dates;
  while (csv.next()) {
    const double date = csv.time("date");
    const std::string& u = csv.required_text("underlying");
    const double r = csv.number("return");
    if (r <= -1.0) csv.fail("return", "must be > -1");
    const double v = has_vol && !csv.text("vol_return").empty() ? csv.number("vol_return") : 0.0;
    if (!by_underlying[u].emplace(date, std::make_pair(r, v)).second)
      csv.fail("date", "duplicate return for '" + u + "' on this date");
    dates.insert(date);
  }
  ReturnHistory h;
  // The common calendar: dates on which every underlying has a return.
  for (double d : dates) {
    bool all = true;
    for (const auto& [u, series] : by_underlying) all = all && series.count(d);
    if (all) h.dates.push_back(d);
  }
  for (const auto& [u, series] : by_underlying) {
    auto& r = h.returns[u];
    auto& v = h.vol_returns[u];
    for (double d : h.dates) {
      r.push_back(series.at(d).first);
      v.push_back(series.at(d).second);
    }
  }
  if (h.dates.empty()) throw input_error(path, 0, "date", "no date carries a return for every underlying");
  return h;
}

std::vector<double> ewma_filter(const std::vector<double>& r, double lambda) {
  const std::size_t n = r.size();
  if (n == 0 || lambda <= 0) return r;
  if (lambda >= 1) throw input_error("ewma_lambda must be within [0, 1)");
  const std::size_t seed_days = std::min<std::size_t>(30, n);
  double var = 0;
  for (std::size_t t = 0; t < seed_days; ++t) var += r[t] * r[t];
  var /= static_cast<double>(seed_days);
  if (!(var > 0)) return r;  // a flat history has nothing to scale
  std::vector<double> sigma(n);
  for (std::size_t t = 0; t < n; ++t) {
    sigma[t] = std::sqrt(var);
    var = lambda * var + (1 - lambda) * r[t] * r[t];
  }
  const double now = std::sqrt(var);
  std::vector<double> out(n);
  for (std::size_t t = 0; t < n; ++t) out[t] = sigma[t] > 0 ? r[t] * now / sigma[t] : r[t];
  return out;
}

std::vector<double> overlapping_returns(const std::vector<double>& daily, int h) {
  std::vector<double> out;
  if (h < 1 || daily.size() < static_cast<std::size_t>(h)) return out;
  for (std::size_t t = 0; t + static_cast<std::size_t>(h) <= daily.size(); ++t) {
    double g = 1;
    for (int j = 0; j < h; ++j) g *= 1 + daily[t + static_cast<std::size_t>(j)];
    out.push_back(g - 1);
  }
  return out;
}

namespace {

void append_history(ScenarioSet& set, const ReturnHistory& hist, const std::string& path,
                    const std::vector<std::string>& underlyings, int h, double lambda, const char* tag) {
  const std::size_t U = underlyings.size();
  std::vector<std::vector<double>> moves(U), vols(U);
  for (std::size_t u = 0; u < U; ++u) {
    const auto it = hist.returns.find(underlyings[u]);
    if (it == hist.returns.end())
      throw input_error(path, 0, "underlying", "no returns for underlying '" + underlyings[u] + "' held in the book");
    moves[u] = overlapping_returns(ewma_filter(it->second, lambda), h);
    vols[u] = overlapping_returns(hist.vol_returns.at(underlyings[u]), h);
  }
  const std::size_t n = U ? moves[0].size() : 0;
  if (U && n == 0)
    throw input_error(path, 0, "date", "fewer dates (" + std::to_string(hist.dates.size()) +
                                           ") than the holding period (" + std::to_string(h) + ")");
  for (std::size_t t = 0; t < n; ++t) {
    set.labels.push_back(std::string(tag) + format_iso8601_utc(hist.dates[t]).substr(0, 10));
    set.weights.push_back(1.0);
    for (std::size_t u = 0; u < U; ++u) {
      ScenarioShock s;
      s.price_move = moves[u][t];
      s.vol_kind = VolShock::relative;
      s.vol_shift = vols[u][t];
      s.days = h;
      set.shocks.push_back(s);
    }
  }
  set.count += n;
}

}  // namespace

ScenarioSet historical_scenarios(const HvarConfig& c, const std::vector<std::string>& underlyings,
                                 const std::string& name) {
  if (c.returns.empty()) throw usage_error("hvar needs a returns file (--returns FILE or \"returns\" in the config)");
  if (!(c.confidence > 0 && c.confidence < 1)) throw input_error("hvar: confidence must be within (0, 1)");
  if (c.holding_days < 1) throw input_error("hvar: holding_days must be >= 1");
  ScenarioSet set;
  set.name = name;
  set.underlyings = underlyings;
  set.vol_terms.resize(underlyings.size());
  append_history(set, read_returns(c.returns), c.returns, underlyings, c.holding_days, c.ewma_lambda, "");
  if (!c.stress_returns.empty()) {
    set.stress_offset = set.count;
    append_history(set, read_returns(c.stress_returns), c.stress_returns, underlyings, c.holding_days, 0.0,
                   "stress ");
  }
  return set;
}

std::vector<double> cholesky(const std::vector<double>& a, std::size_t n, const std::vector<std::string>& names) {
  std::vector<double> l(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j <= i; ++j) {
      double sum = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) sum -= l[i * n + k] * l[j * n + k];
      if (i == j) {
        if (!(sum > 1e-12))
          throw input_error("mc-es: the correlation matrix is not positive definite (at " + names[i] + ")");
        l[i * n + i] = std::sqrt(sum);
      } else {
        l[i * n + j] = sum / l[j * n + j];
      }
    }
  }
  return l;
}

std::vector<std::uint32_t> stream_keys(const std::vector<std::string>& names) {
  std::vector<std::uint32_t> keys;
  std::set<std::uint32_t> used;
  for (const std::string& n : names) {
    std::uint32_t h = 2166136261u;
    for (unsigned char ch : n) h = (h ^ ch) * 16777619u;
    while (!used.insert(h).second) ++h;
    keys.push_back(h);
  }
  return keys;
}

ScenarioSet monte_carlo_scenarios(const McEsConfig& c, const std::vector<std::string>& underlyings,
                                  const std::string& name, const std::vector<std::string>& universe_in) {
  if (c.paths == 0 || c.paths > 10'000'000) throw input_error("mc-es: paths must be within 1..10,000,000");
  if (!(c.confidence > 0 && c.confidence < 1)) throw input_error("mc-es: confidence must be within (0, 1)");
  if (c.holding_days < 1) throw input_error("mc-es: holding_days must be >= 1");
  // The universe, sorted by name, and where each of the run's underlyings sits in it.
  std::vector<std::string> universe = universe_in.empty() ? underlyings : universe_in;
  std::sort(universe.begin(), universe.end());
  universe.erase(std::unique(universe.begin(), universe.end()), universe.end());
  const std::size_t U = underlyings.size(), N = universe.size();
  std::vector<std::size_t> column(U);
  for (std::size_t u = 0; u < U; ++u) {
    const auto it = std::lower_bound(universe.begin(), universe.end(), underlyings[u]);
    if (it == universe.end() || *it != underlyings[u])
      throw logic_error("mc-es: underlying '" + underlyings[u] + "' is not in the universe of the reference data");
    column[u] = static_cast<std::size_t>(it - universe.begin());
  }
  // Rows of the Cholesky factor up to the last column a run needs (later rows are never read).
  std::size_t rows = 0;
  for (std::size_t col : column) rows = std::max(rows, col + 1);
  std::vector<double> corr(rows * rows);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < rows; ++j) corr[i * rows + j] = i == j ? 1.0 : c.correlation(universe[i], universe[j]);
  const std::vector<double> l = cholesky(corr, rows, universe);
  const std::vector<std::uint32_t> keys = stream_keys(std::vector<std::string>(universe.begin(), universe.begin() + rows));
  const double h = c.holding_days / 365.0;
  std::vector<double> sd(U);
  for (std::size_t u = 0; u < U; ++u) {
    sd[u] = c.vol(underlyings[u]) * std::sqrt(h);
    if (!(sd[u] >= 0)) throw input_error("mc-es: volatility of '" + underlyings[u] + "' must be >= 0");
  }
  (void)N;
  ScenarioSet set;
  set.name = name;
  set.underlyings = underlyings;
  set.vol_terms.resize(U);
  set.count = c.paths;
  set.shocks.resize(c.paths * U);
  set.weights.assign(c.paths, 1.0);
  set.labels.resize(c.paths);
  // Each path is drawn from its own Philox counters (path, the underlying's key): the set is the
  // same on any thread count.
#pragma omp parallel for schedule(static)
  for (std::size_t p = 0; p < c.paths; ++p) {
    std::vector<double> z(rows);
    for (std::size_t k = 0; k < rows; ++k) z[k] = philox_stream_normal(c.seed, static_cast<std::uint32_t>(p), keys[k]);
    for (std::size_t u = 0; u < U; ++u) {
      const std::size_t r = column[u];
      double x = 0;
      for (std::size_t k = 0; k <= r; ++k) x += l[r * rows + k] * z[k];
      ScenarioShock& s = set.shocks[p * U + u];
      s.price_move = std::exp(sd[u] * x - 0.5 * sd[u] * sd[u]) - 1.0;
      s.days = c.holding_days;
    }
    char label[32];
    std::snprintf(label, sizeof label, "path %zu", p + 1);
    set.labels[p] = label;
  }
  return set;
}

}  // namespace marginet
