#pragma once
// The `margin` and `whatif` tables, built from the results as JSON (the fields of margin.result
// and whatif.result, service/margin/protocol.hpp encode_account), so that the offline commands
// and `marginet client` print the same table.
//
//   margin: account,model,currency,im,mm,collateral_value,call,call_asset,worst_scenario, then
//           delta_usd,gamma_usd,vega_usd (USD methodologies: one row per account) or coin_delta
//           (deribit-pm in coin: one row per account and currency, every figure in the coin)
//   whatif: account,model,currency,im_before,im_after,im_change,mm_before,mm_after,mm_change,
//           worst_scenario_before,worst_scenario_after (deribit-pm in coin: a row per currency)
//
// `currency` is the unit of im, mm and collateral_value; `call` is exact, in `call_asset`. On a
// terminal (pretty) figures are rounded to their unit's decimals and scenarios carry their label.

#include <nlohmann/json.hpp>

#include "service/cli/table.hpp"

namespace marginet::cli {

Table margin_table(const nlohmann::ordered_json& accounts, bool pretty);
Table whatif_table(const nlohmann::ordered_json& account, const nlohmann::ordered_json& before,
                   const nlohmann::ordered_json& after, bool pretty);

}  // namespace marginet::cli
