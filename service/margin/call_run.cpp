#include "service/margin/call_run.hpp"

#include <chrono>
#include <cmath>
#include <ctime>
#include <map>

#include "host/collateral.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string utc_id_stamp(double unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(std::floor(unix_seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

namespace {

std::string iso_now(double unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(std::floor(unix_seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

/// The store's balances as holdings in units of each asset (risk figures: doubles).
std::vector<CollateralHolding> holdings_of(const std::vector<BalanceRow>& rows) {
  std::vector<CollateralHolding> out;
  out.reserve(rows.size());
  for (const BalanceRow& b : rows)
    out.push_back({b.account, b.asset, static_cast<double>(b.amount_minor) / static_cast<double>(pow10_i64(b.scale))});
  return out;
}

void require_finite(const AccountMargin& a) {
  if (!std::isfinite(a.im) || !std::isfinite(a.mm))
    throw input_error("", 0, "im", "account '" + a.account + "': the margin is not a finite number (IM " +
                                       std::to_string(a.im) + " USD); check the market data and positions");
}

}  // namespace

CallRunOutcome run_margin_calls(const CallRunInputs& in, const CallRunRequest& request) {
  const double now = unix_time_now();
  CallRunOutcome out;
  const std::string run_id = request.run_id.empty() ? request.kind + "-" + utc_id_stamp(now) : request.run_id;
  if (auto existing = in.store.call_run(run_id)) {
    out.outcome = Outcome::duplicate;
    out.run = std::move(*existing);
    return out;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Position> book = kept_positions(in.store, in.ref.instruments, in.instruments_source);
  MarginRun margins = in.engine.run(book);
  std::vector<CollateralHolding> holdings = holdings_of(in.store.balances());
  // Calls sent and not yet final are collateral in transit (settlement asset).
  const Methodology& m = in.method;
  for (const auto& [account, minor] : in.store.pending_calls(m.settlement_asset))
    holdings.push_back({account, m.settlement_asset,
                        static_cast<double>(minor) / static_cast<double>(pow10_i64(m.settlement_scale))});
  apply_collateral(margins, holdings, in.ref.market, m);

  CallRun& run = out.run;
  run.run_id = run_id;
  run.kind = request.kind;
  run.at = iso_now(now);
  run.model = m.name;
  run.asset = m.settlement_asset;
  run.scale = m.settlement_scale;
  SettlementCycle cycle;
  cycle.cycle_id = "calls-" + run_id;
  cycle.deadline = std::floor(now) + request.deadline_s;
  cycle.assets.push_back(AssetScale{m.settlement_asset, m.settlement_scale});
  for (const AccountMargin& a : margins.accounts) {
    require_finite(a);
    CallRecord c;
    c.account = a.account;
    c.im = a.im;
    c.mm = a.mm;
    c.collateral_value = a.collateral_value;
    c.call_minor = a.call_minor;
    if (a.call_minor > 0) {
      c.instruction_id = cycle.cycle_id + "/" + a.account + "/" + m.settlement_asset + "/in/margin_call";
      c.state = "pending";
      SettlementInstruction ins;
      ins.instruction_id = c.instruction_id;
      ins.member = a.account;
      ins.asset = m.settlement_asset;
      ins.leg = Leg::pay_in;
      ins.kind = ObligationKind::margin_call;
      ins.amount = a.call_minor;
      cycle.instructions.push_back(std::move(ins));
    }
    run.calls.push_back(std::move(c));
  }
  run.compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::optional<SettlementCycle> sent;
  if (!cycle.instructions.empty()) {
    run.cycle_id = cycle.cycle_id;
    run.cycle_state = "pending";
    sent = std::move(cycle);
  } else {
    run.cycle_state = "none";
  }
  out.outcome = in.store.record_call_run(run, sent);
  if (out.outcome == Outcome::duplicate) {  // recorded meanwhile by another run of the same id
    if (auto existing = in.store.call_run(run_id)) out.run = std::move(*existing);
  }
  return out;
}

WithdrawalCheck check_withdrawal(const CallRunInputs& in, const std::string& account, const std::string& asset,
                                 std::int64_t amount_minor) {
  WithdrawalCheck c;
  const Methodology& m = in.method;
  std::vector<Position> book;
  for (const PositionRow& p : in.store.positions(account)) {
    const Instrument* inst = in.ref.instruments.find(p.instrument);
    if (!inst)
      throw input_error(in.store.path(), 0, "instrument",
                        "account " + account + " holds " + p.instrument + ", which " + in.instruments_source + " does not list");
    book.push_back(Position{account, in.ref.instruments.index_of(p.instrument), quantity_value(p.quantity_units)});
  }
  if (!book.empty()) {
    const MarginRun r = in.engine.run(book);
    for (const AccountMargin& a : r.accounts)
      if (a.account == account) require_finite(a), c.im = a.im;
  }
  const std::vector<BalanceRow> rows = in.store.balances(account);
  int scale = 0;
  for (const BalanceRow& b : rows)
    if (b.asset == asset) c.balance_minor = b.amount_minor, scale = b.scale;
  const auto values = collateral_values(holdings_of(rows), in.ref.market, m);
  const auto v = values.find(account);
  c.value_before = v == values.end() ? 0.0 : v->second;
  // The value of one minor unit of the asset after its haircut.
  const auto h = m.haircuts.find(asset);
  const double haircut = h == m.haircuts.end() ? m.default_haircut : h->second;
  const double unit_value =
      c.balance_minor > 0 ? collateral_price(asset, in.ref.market) * (1.0 - haircut) / static_cast<double>(pow10_i64(scale)) : 0.0;
  const double free_value = c.value_before - c.im;
  if (unit_value > 0 && free_value > 0) {
    const double units = std::floor(free_value / unit_value);
    c.excess_minor = units >= static_cast<double>(c.balance_minor) ? c.balance_minor : static_cast<std::int64_t>(units);
    // The division may round up by an ulp: step back until what is left covers IM.
    while (c.excess_minor > 0 && c.value_before - static_cast<double>(c.excess_minor) * unit_value < c.im) --c.excess_minor;
  }
  const std::int64_t asked = amount_minor < 0 ? c.excess_minor : amount_minor;
  c.value_after = c.value_before - static_cast<double>(std::min(asked, c.balance_minor)) * unit_value;
  c.allowed = asked > 0 && asked <= c.balance_minor && c.value_after >= c.im;
  return c;
}

SettlementCycle withdrawal_cycle(const std::string& cycle_id, const std::string& account, const std::string& asset,
                                 int scale, std::int64_t amount_minor, double deadline_unix) {
  SettlementCycle cycle;
  cycle.cycle_id = cycle_id;
  cycle.deadline = deadline_unix;
  cycle.assets.push_back(AssetScale{asset, scale});
  SettlementInstruction ins;
  ins.instruction_id = cycle_id + "/" + account + "/" + asset + "/out/withdrawal";
  ins.member = account;
  ins.asset = asset;
  ins.leg = Leg::pay_out;
  ins.kind = ObligationKind::margin_call;
  ins.amount = amount_minor;
  cycle.instructions.push_back(std::move(ins));
  return cycle;
}

}  // namespace marginet
