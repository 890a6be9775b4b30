#include "host/greeks_engine.hpp"

#include <cmath>
#include <limits>
#include <unordered_map>

#include "host/dispatch.hpp"
#include "models/errors.hpp"
#include "models/implied_vol.hpp"

namespace marginet {

kernels::GreeksInputs GreeksBatch::inputs() const {
  return kernels::GreeksInputs{size(),       kind.data(),   put_call.data(),     settlement.data(),
                               forward.data(), strike.data(), expiry_years.data(), sigma.data(),
                               rate.data()};
}

void GreeksBatch::push_back(InstrumentKind k, OptionType pc, Settlement st, double F, double K,
                            double T, double vol, double r) {
  kind.push_back(static_cast<std::uint8_t>(k));
  put_call.push_back(static_cast<std::uint8_t>(pc));
  settlement.push_back(static_cast<std::uint8_t>(st));
  forward.push_back(F);
  strike.push_back(K);
  expiry_years.push_back(T);
  sigma.push_back(vol);
  rate.push_back(r);
  iv.push_back(k == InstrumentKind::option ? vol : std::numeric_limits<double>::quiet_NaN());
}

GreeksBatch flatten_greeks_batch(const InstrumentTable& instruments, const MarketSnapshot& market) {
  GreeksBatch batch;
  for (const Instrument& ins : instruments) {
    const UnderlyingMarket& u = market.underlying(ins.underlying);
    const Mark* mark = market.find_mark(ins.id);
    switch (ins.kind) {
      case InstrumentKind::option: {
        if (!mark) throw input_error("no mark for option '" + ins.id + "' (needs mark_iv or mark_price)");
        const double T = market.time_to_expiry(ins.underlying, ins.expiry);
        const double F = market.forward(ins.underlying, ins.expiry);
        double vol = mark->mark_iv;
        if (!mark->has_iv()) {
          const double value = ins.settlement == Settlement::inverse ? mark->mark_price * F
                                                                     : mark->mark_price;
          const ImpliedVol iv = implied_vol_black76(ins.put_call, value, F, ins.strike, T, u.rate);
          if (iv.status != IvStatus::ok)
            throw input_error("instrument '" + ins.id + "': no volatility fits mark_price " +
                              std::to_string(mark->mark_price) + ": " + describe(iv.status));
          vol = iv.sigma;
        }
        batch.push_back(ins.kind, ins.put_call, ins.settlement, F, ins.strike, T, vol, u.rate);
        break;
      }
      case InstrumentKind::future: {
        const double F = mark ? mark->mark_price : market.forward(ins.underlying, ins.expiry);
        batch.push_back(ins.kind, ins.put_call, ins.settlement, F, 0.0,
                        market.time_to_expiry(ins.underlying, ins.expiry), 0.0, u.rate);
        break;
      }
      case InstrumentKind::perpetual:
      case InstrumentKind::spot: {
        const double F = mark ? mark->mark_price : u.index_price;
        batch.push_back(ins.kind, ins.put_call, ins.settlement, F, 0.0, 0.0, 0.0, u.rate);
        break;
      }
    }
  }
  return batch;
}

void GreeksTable::resize(std::size_t n) {
  for (auto* v : {&price, &price_coin, &delta, &delta_coin, &gamma, &vega, &theta, &rho, &vanna,
                  &volga, &iv})
    v->assign(n, 0.0);
}

kernels::GreeksOutputs GreeksTable::outputs() {
  return kernels::GreeksOutputs{price.data(), price_coin.data(), delta.data(), delta_coin.data(),
                                gamma.data(), vega.data(),       theta.data(), rho.data(),
                                vanna.data(), volga.data()};
}

InstrumentRisk GreeksTable::row(std::size_t i) const {
  return InstrumentRisk{price[i], price_coin[i], delta[i], delta_coin[i], gamma[i],
                        vega[i],  theta[i],      rho[i],   vanna[i],      volga[i]};
}

std::vector<double> GreeksTable::row_major() const {
  std::vector<double> out(size() * kernels::kGreeksColumns);
  for (std::size_t i = 0; i < size(); ++i) {
    const InstrumentRisk r = row(i);
    const double cols[kernels::kGreeksColumns] = {r.price, r.price_coin, r.delta, r.delta_coin,
                                                  r.gamma, r.vega,       r.theta, r.rho,
                                                  r.vanna, r.volga};
    std::copy(cols, cols + kernels::kGreeksColumns, out.begin() + i * kernels::kGreeksColumns);
  }
  return out;
}

GreeksTable compute_greeks(Backend backend, const GreeksBatch& batch) {
  GreeksTable table;
  table.resize(batch.size());
  MARGINET_DISPATCH(backend, price_greeks, batch.inputs(), table.outputs());
  table.iv = batch.iv;
  return table;
}

GreeksTable compute_greeks(Backend backend, const InstrumentTable& instruments,
                           const MarketSnapshot& market) {
  return compute_greeks(backend, flatten_greeks_batch(instruments, market));
}

GreeksTable compute_greeks_reference(const GreeksBatch& b) {
  GreeksTable t;
  t.resize(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) {
    const InstrumentRisk r = instrument_risk(
        static_cast<InstrumentKind>(b.kind[i]), static_cast<OptionType>(b.put_call[i]),
        static_cast<Settlement>(b.settlement[i]), b.forward[i], b.strike[i], b.expiry_years[i],
        b.sigma[i], b.rate[i]);
    t.price[i] = r.price;
    t.price_coin[i] = r.price_coin;
    t.delta[i] = r.delta;
    t.delta_coin[i] = r.delta_coin;
    t.gamma[i] = r.gamma;
    t.vega[i] = r.vega;
    t.theta[i] = r.theta;
    t.rho[i] = r.rho;
    t.vanna[i] = r.vanna;
    t.volga[i] = r.volga;
  }
  t.iv = b.iv;
  return t;
}

namespace {

// CSR of the positions (accounts in order of first appearance) and instrument → underlying index.
struct PortfolioLayout {
  PortfolioGreeks result;
  std::vector<std::size_t> offsets;
  std::vector<std::uint32_t> instrument;
  std::vector<double> quantity;
  std::vector<std::uint32_t> underlying;
};

PortfolioLayout layout(const InstrumentTable& instruments, const GreeksTable& greeks,
                       const std::vector<Position>& positions) {
  MARGINET_EXPECTS(greeks.size() == instruments.size(), "one greeks row per instrument");
  PortfolioLayout l;
  std::unordered_map<std::string, std::uint32_t> underlying_index;
  for (const Instrument& ins : instruments) {
    auto [it, added] = underlying_index.emplace(ins.underlying,
                                                static_cast<std::uint32_t>(l.result.underlyings.size()));
    if (added) l.result.underlyings.push_back(ins.underlying);
    l.underlying.push_back(it->second);
  }
  std::unordered_map<std::string, std::size_t> account_index;
  std::vector<std::size_t> account_of(positions.size());
  for (std::size_t p = 0; p < positions.size(); ++p) {
    MARGINET_EXPECTS(positions[p].instrument < instruments.size(), "position names a known instrument");
    auto [it, added] = account_index.emplace(positions[p].account, l.result.accounts.size());
    if (added) l.result.accounts.push_back(positions[p].account);
    account_of[p] = it->second;
  }
  // Stable counting sort by account keeps each account's positions in file order.
  l.offsets.assign(l.result.accounts.size() + 1, 0);
  for (std::size_t a : account_of) ++l.offsets[a + 1];
  for (std::size_t a = 0; a < l.result.accounts.size(); ++a) l.offsets[a + 1] += l.offsets[a];
  std::vector<std::size_t> next(l.offsets.begin(), l.offsets.end() - 1);
  l.instrument.resize(positions.size());
  l.quantity.resize(positions.size());
  for (std::size_t p = 0; p < positions.size(); ++p) {
    const std::size_t at = next[account_of[p]]++;
    const Instrument& ins = instruments[positions[p].instrument];
    l.instrument[at] = static_cast<std::uint32_t>(positions[p].instrument);
    l.quantity[at] = positions[p].quantity * ins.contract_size;
  }
  l.result.values.assign(l.result.accounts.size() * l.result.underlyings.size() *
                             kernels::kGreeksColumns,
                         0.0);
  return l;
}

}  // namespace

PortfolioGreeks aggregate_portfolio_greeks(Backend backend, const InstrumentTable& instruments,
                                           const GreeksTable& greeks,
                                           const std::vector<Position>& positions) {
  PortfolioLayout l = layout(instruments, greeks, positions);
  const std::vector<double> rows = greeks.row_major();
  const kernels::PortfolioGreeksArgs args{l.result.accounts.size(), l.offsets.data(),
                                          l.instrument.data(),      l.quantity.data(),
                                          instruments.size(),       l.underlying.data(),
                                          l.result.underlyings.size(), rows.data(),
                                          l.result.values.data()};
  MARGINET_DISPATCH(backend, portfolio_greeks, args);
  return std::move(l.result);
}

PortfolioGreeks aggregate_portfolio_greeks_reference(const InstrumentTable& instruments,
                                                     const GreeksTable& greeks,
                                                     const std::vector<Position>& positions) {
  PortfolioLayout l = layout(instruments, greeks, positions);
  const std::vector<double> rows = greeks.row_major();
  const std::size_t U = l.result.underlyings.size();
  for (std::size_t a = 0; a < l.result.accounts.size(); ++a)
    for (std::size_t p = l.offsets[a]; p < l.offsets[a + 1]; ++p) {
      const std::uint32_t i = l.instrument[p];
      double* cell = &l.result.values[(a * U + l.underlying[i]) * kernels::kGreeksColumns];
      for (std::size_t c = 0; c < kernels::kGreeksColumns; ++c)
        cell[c] += l.quantity[p] * rows[i * kernels::kGreeksColumns + c];
    }
  return std::move(l.result);
}

}  // namespace marginet
