#include "service/margin/call_run.hpp"

#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <set>

#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

/// `unix_seconds` (whole seconds) in UTC with strftime's `format`.
std::string utc_text(double unix_seconds, const char* format) {
  const std::time_t t = static_cast<std::time_t>(std::floor(unix_seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

}  // namespace

std::string utc_id_stamp(double unix_seconds) { return utc_text(unix_seconds, "%Y%m%dT%H%M%SZ"); }

std::vector<CollateralHolding> collateral_holdings(const std::vector<BalanceRow>& rows) {
  std::vector<CollateralHolding> out;
  out.reserve(rows.size());
  for (const BalanceRow& b : rows)
    out.push_back({b.account, b.asset, static_cast<double>(b.amount_minor) / static_cast<double>(pow10_i64(b.scale))});
  return out;
}

protocol::CallRunText call_run_text(const CallRun& run, const std::string& outcome) {
  protocol::CallRunText t;
  t.run_id = run.run_id;
  t.kind = run.kind;
  t.at = run.at;
  t.model = run.model;
  t.asset = run.asset;
  t.units = run.units;
  t.scale = run.scale;
  t.cycle_id = run.cycle_id;
  t.cycle_state = run.cycle_state;
  t.outcome = outcome;
  t.compute_ms = run.compute_ms;
  std::int64_t total = 0;
  for (const CallRecord& c : run.calls) {
    if (!checked_add(total, c.call_minor, total)) throw logic_error("the total of the calls overflows");
    t.calls.push_back({c.account, c.im, c.mm, c.collateral_value, format_money(c.call_minor, run.scale),
                       format_money(c.settled_minor, run.scale), c.state, c.instruction_id});
  }
  t.total_call = format_money(total, run.scale);
  return t;
}

std::vector<protocol::BalanceRowText> balance_rows_text(const std::vector<BalanceRow>& rows) {
  std::vector<protocol::BalanceRowText> out;
  out.reserve(rows.size());
  for (const BalanceRow& b : rows)
    out.push_back({b.account, b.asset, format_money(b.amount_minor, b.scale), b.amount_minor, b.scale});
  return out;
}

protocol::CollateralChangeResult collateral_change_text(const CollateralResult& r, const std::string& account,
                                                        const std::string& asset, std::int64_t amount_minor, int scale) {
  protocol::CollateralChangeResult out;
  out.outcome = to_string(r.outcome);
  out.account = account;
  out.asset = asset;
  out.amount = format_money(amount_minor, scale);
  out.balance = format_money(r.balance_minor, scale);
  out.movement_seq = r.movement_seq;
  out.cycle_id = r.cycle_id;
  return out;
}

namespace {

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
  std::vector<CollateralHolding> holdings = collateral_holdings(in.store.balances());
  // Calls sent and not yet final are collateral in transit (settlement asset).
  const Methodology& m = in.method;
  for (const auto& [account, minor] : in.store.pending_calls(m.settlement_asset))
    holdings.push_back({account, m.settlement_asset,
                        static_cast<double>(minor) / static_cast<double>(pow10_i64(m.settlement_scale))});
  apply_collateral(margins, holdings, in.ref.market, m);

  CallRun& run = out.run;
  run.run_id = run_id;
  run.kind = request.kind;
  run.at = utc_text(now, "%Y-%m-%dT%H:%M:%SZ");
  run.model = m.name;
  run.asset = m.settlement_asset;
  run.scale = m.settlement_scale;
  SettlementCycle cycle;
  cycle.cycle_id = "calls-" + run_id;
  cycle.deadline = std::floor(now) + request.deadline_s;
  cycle.assets.push_back(AssetScale{m.settlement_asset, m.settlement_scale});
  // The CCP's house account holds defaulters' portfolios: margined for the record, never called.
  std::set<std::string> house;
  for (const DefaultSummary& d : in.store.defaults()) house.insert(d.house_account);
  for (const AccountMargin& a : margins.accounts) {
    require_finite(a);
    CallRecord c;
    c.account = a.account;
    c.im = a.im;
    c.mm = a.mm;
    c.collateral_value = a.collateral_value;
    c.call_minor = house.count(a.account) ? 0 : a.call_minor;
    if (c.call_minor > 0) {
      c.instruction_id = cycle.cycle_id + "/" + a.account + "/" + m.settlement_asset + "/in/margin_call";
      c.state = "pending";
      SettlementInstruction ins;
      ins.instruction_id = c.instruction_id;
      ins.member = a.account;
      ins.asset = m.settlement_asset;
      ins.leg = Leg::pay_in;
      ins.kind = ObligationKind::margin_call;
      ins.amount = c.call_minor;
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
  const auto values = collateral_values(collateral_holdings(rows), in.ref.market, m);
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
  cycle.liquidity_draw = true;  // a release of collateral the CCP holds: no pay-in funds it
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
