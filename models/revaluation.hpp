#pragma once
// Full revaluation of one instrument under one scenario (SPEC §5 stage 1): the element that
// the risk-array kernel runs for every (instrument, scenario) pair and that the reference
// path runs for every (position, scenario) pair.
//
// Units. value_quote() is the value of one unit of quantity in the quote currency (USD):
//   option:                    contract_size · Black-76(F, K, T, σ, r)
//   future, perpetual, spot:   contract_size · (F − F₀)   (F₀ the current price: zero at base)
// P&L of a scenario (F → F' = F·(1+m), σ → σ', T → T − days/365):
//   in the quote currency (span16, stress, VaR):  value_quote(F') − value_quote(F)
//   in coin (deribit-pm):                         value_quote(F')/F' − value_quote(F)/F
// For an inverse future of coin size q this gives q·m/(1+m) coin, as SPEC §4 states.

#include <cstdint>

#include "models/hd.hpp"
#include "models/instrument.hpp"
#include "models/pricing.hpp"
#include "models/scenario_set.hpp"

namespace marginet {

/// An instrument flattened for revaluation (plain data: copied to the device as is).
struct InstrumentState {
  InstrumentKind kind = InstrumentKind::future;
  OptionType put_call = OptionType::call;
  std::int32_t group = 0;        // index of its underlying in the scenario set
  double strike = 0;
  double years = 0;              // T, years to expiry (0 for perpetual and spot)
  double contract_size = 1;
  double forward = 0;            // F: forward of its expiry (future mark, perp mark or index)
  double vol = 0;                // σ: mark implied volatility (options)
  double rate = 0;               // r
  double base_value = 0;         // value_quote at the base (F, σ, T)
};

enum class PnlUnits : std::uint8_t { quote, coin };

MARGINET_HD double value_quote(const InstrumentState& st, double forward, double vol, double years) {
  if (st.kind == InstrumentKind::option)
    return st.contract_size * black76_price(st.put_call, forward, st.strike, years, vol, st.rate);
  return st.contract_size * (forward - st.forward);
}

/// P&L of one unit of the instrument in one scenario shock of its underlying.
MARGINET_HD double scenario_pnl(const InstrumentState& st, const ScenarioShock& shock,
                                const VolTermParams& vol_terms, PnlUnits units) {
  const double f1 = st.forward * (1.0 + shock.price_move);
  double t1 = st.years - shock.days / 365.0;
  if (t1 < 0) t1 = 0;
  const double v1 =
      st.kind == InstrumentKind::option
          ? st.contract_size * black76_price(st.put_call, f1, st.strike, t1,
                                             shocked_vol(shock, st.vol, st.years * 365.0, vol_terms),
                                             st.rate)
          : st.contract_size * (f1 - st.forward);
  if (units == PnlUnits::coin) return v1 / f1 - st.base_value / st.forward;
  return v1 - st.base_value;
}

}  // namespace marginet
