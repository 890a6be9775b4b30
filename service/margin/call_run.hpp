#pragma once
// Call runs and withdrawal checks over the clearing store (SPEC §9, docs/clearing.md
// "Collateral and calls"), shared by the service (`calls.run`, `collateral.withdraw`, the
// scheduled runs) and the CLI (`marginet calls run --store`).
//
//   CallRunInputs in{store, ref, method, engine};
//   CallRunOutcome r = run_margin_calls(in, {"eod-2026-12-02", "eod"});
//   // r.run: IM, MM, collateral value and call of every account with positions;
//   // its cycle of margin-call pay-ins is in the store's outbox (one transaction).
//
// A call run margins the store's kept positions afresh (not the what-if cache), values each
// account's collateral balances at the market's index prices less the methodology's haircuts
// (host/collateral.hpp), counts the margin calls already sent and not yet final as collateral in
// transit (so a second run before the first settles does not call the same shortfall twice),
// and calls max(0, IM − collateral value) rounded up to the settlement asset's minor unit.

#include <cstdint>
#include <optional>
#include <string>

#include "host/margin_engine.hpp"
#include "models/methodology.hpp"
#include "models/reference_data.hpp"
#include "host/collateral.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/protocol.hpp"

namespace marginet {

struct CallRunInputs {
  ClearingStore& store;
  const ReferenceData& ref;
  const std::string& instruments_source;  // names the instruments file in errors
  const Methodology& method;
  MarginEngine& engine;                   // any engine of `ref` and `method`; run() afresh
};

struct CallRunRequest {
  std::string run_id;                     // "" = "<kind>-<UTC time>"
  std::string kind = "on_demand";         // eod | intraday | on_demand
  double deadline_s = 3600;               // the cycle's deadline, seconds from now
};

struct CallRunOutcome {
  Outcome outcome = Outcome::recorded;    // recorded, or duplicate (the run id existed: `run` is that run)
  CallRun run;
};

/// Runs the calls and records them (rules above). input_error for a store position in an
/// instrument the reference data lacks, or a collateral asset without a price.
CallRunOutcome run_margin_calls(const CallRunInputs& in, const CallRunRequest& request);

/// The check of a withdrawal of `amount_minor` of `asset` from `account` (figures in the
/// methodology's quote currency). `allowed` when the collateral value after it covers IM.
struct WithdrawalCheck {
  double im = 0, value_before = 0, value_after = 0;
  std::int64_t balance_minor = 0;         // the account's balance of the asset
  std::int64_t excess_minor = 0;          // the most that may leave (≤ balance), rounded down
  bool allowed = false;
};
/// `amount_minor` < 0 asks for the excess only (allowed when it is > 0).
WithdrawalCheck check_withdrawal(const CallRunInputs& in, const std::string& account, const std::string& asset,
                                 std::int64_t amount_minor);

/// The pay-out cycle of a withdrawal that was allowed: one margin-call pay-out to the account.
SettlementCycle withdrawal_cycle(const std::string& cycle_id, const std::string& account, const std::string& asset,
                                 int scale, std::int64_t amount_minor, double deadline_unix);

/// Seconds since the Unix epoch, and a UTC timestamp "20261202T160000Z" for ids.
double unix_time_now();
std::string utc_id_stamp(double unix_seconds);

/// The store's balances as holdings in units of each asset (risk figures: doubles), for
/// collateral_values().
std::vector<CollateralHolding> collateral_holdings(const std::vector<BalanceRow>& rows);

// The store's records as the protocol's reply rows (the service and the CLI print the same).
/// A run with its calls in exact decimals of the run's asset and their total; logic_error if the
/// total overflows int64.
protocol::CallRunText call_run_text(const CallRun& run, const std::string& outcome);
std::vector<protocol::BalanceRowText> balance_rows_text(const std::vector<BalanceRow>& rows);
/// A deposit's or withdrawal's result (`figures` and `cycle_id` are the caller's to add).
protocol::CollateralChangeResult collateral_change_text(const CollateralResult& r, const std::string& account,
                                                        const std::string& asset, std::int64_t amount_minor, int scale);

}  // namespace marginet
