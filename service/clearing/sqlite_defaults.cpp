// SqliteClearingStore, schema v4: default-fund sizings and contributions, and declared defaults
// with their waterfall steps, the collateral and the positions they move (clearing_store.hpp
// has the rules, docs/default-management.md the procedure).

#include "models/errors.hpp"
#include "models/money.hpp"
#include "service/clearing/sqlite_clearing_store.hpp"

namespace marginet {

namespace {

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

WaterfallLayer layer_from(const std::string& text) {
  for (WaterfallLayer l : {WaterfallLayer::defaulter_margin, WaterfallLayer::defaulter_contribution,
                           WaterfallLayer::skin_in_the_game, WaterfallLayer::survivors_contributions,
                           WaterfallLayer::assessments, WaterfallLayer::uncovered})
    if (text == to_string(l)) return l;
  throw logic_error("unknown waterfall layer '" + text + "' in the store");
}

}  // namespace

bool SqliteClearingStore::member_in_default(const std::string& member) {
  if (!defaulted_) {
    defaulted_.emplace();
    SqliteStatement q(*db_, "SELECT member FROM defaults");
    while (q.step()) defaulted_->insert(q.text(0));
  }
  return defaulted_->count(member) > 0;
}

// ---- the default fund --------------------------------------------------------------------------

std::int64_t SqliteClearingStore::fund_balance_of(const std::string& member) const {
  SqliteStatement q(*db_, "SELECT amount_minor FROM fund_balances WHERE member = ?");
  q.bind(1, member);
  return q.step() ? q.int64(0) : 0;
}

void SqliteClearingStore::move_fund(const std::string& member, std::int64_t delta, const char* kind,
                                    const std::string& reference, const std::string& now) {
  std::int64_t after = 0;
  if (!checked_add(fund_balance_of(member), delta, after)) throw input_error("a default-fund balance overflows int64");
  SqliteStatement move(*db_,
                       "INSERT INTO fund_movements(member, amount_minor, kind, reference, recorded_at)"
                       " VALUES (?, ?, ?, ?, ?)");
  move.bind(1, member).bind(2, delta).bind(3, std::string_view(kind)).bind(4, reference).bind(5, now);
  move.run();
  if (after == 0) {
    SqliteStatement drop(*db_, "DELETE FROM fund_balances WHERE member = ?");
    drop.bind(1, member);
    drop.run();
  } else {
    SqliteStatement put(*db_,
                        "INSERT INTO fund_balances(member, amount_minor) VALUES (?1, ?2)"
                        " ON CONFLICT(member) DO UPDATE SET amount_minor = ?2");
    put.bind(1, member).bind(2, after);
    put.run();
  }
}

Outcome SqliteClearingStore::record_fund_sizing(const FundSizingRecord& sizing) {
  require_writer("record_fund_sizing");
  std::lock_guard<std::mutex> lk(mutex_);
  if (auto p = identifier_problem(sizing.sizing_id))
    throw input_error("", 0, "sizing_id", in_quotes(sizing.sizing_id) + ": " + *p);
  const std::string now = clearing_now_utc();
  return transact(*db_, [&] {
    {
      SqliteStatement q(*db_, "SELECT 1 FROM fund_sizings WHERE sizing_id = ?");
      q.bind(1, sizing.sizing_id);
      if (q.step()) return Outcome::duplicate;
    }
    {
      SqliteStatement q(*db_, "SELECT currency, scale FROM fund_sizings ORDER BY seq DESC LIMIT 1");
      SqliteStatement any(*db_, "SELECT 1 FROM fund_balances LIMIT 1");
      if (q.step() && (q.text(0) != sizing.currency || q.int64(1) != sizing.scale) && any.step())
        throw input_error("", 0, "currency",
                          "the default fund is held in " + q.text(0) + " (scale " + std::to_string(q.int64(1)) +
                              "); a sizing in " + sizing.currency + " (scale " + std::to_string(sizing.scale) +
                              ") cannot replace it while contributions are held");
    }
    SqliteStatement ins(*db_,
                        "INSERT INTO fund_sizings(sizing_id, at, currency, scale, fund_minor, art42, cover2, scenario,"
                        " report_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, sizing.sizing_id).bind(2, sizing.at).bind(3, sizing.currency);
    ins.bind(4, static_cast<std::int64_t>(sizing.scale)).bind(5, sizing.fund_minor).bind(6, sizing.art42);
    ins.bind(7, sizing.cover2).bind(8, sizing.scenario).bind(9, sizing.report_json);
    ins.run();
    for (const MemberAmount& c : sizing.contributions) {
      if (c.amount_minor < 0) throw input_error("", 0, "contribution", "member " + in_quotes(c.member) + ": must be ≥ 0");
      std::int64_t diff = 0;
      if (!checked_sub(c.amount_minor, fund_balance_of(c.member), diff))
        throw input_error("a contribution change overflows int64");
      if (diff != 0) move_fund(c.member, diff, "contribution", sizing.sizing_id, now);
    }
    return Outcome::recorded;
  }, [] {});
}

std::optional<FundSizingRecord> SqliteClearingStore::fund_sizing(const std::string& sizing_id) const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_,
                    "SELECT sizing_id, at, currency, scale, fund_minor, art42, cover2, scenario, report_json"
                    " FROM fund_sizings WHERE ?1 = '' OR sizing_id = ?1 ORDER BY seq DESC LIMIT 1");
  q.bind(1, sizing_id);
  if (!q.step()) return std::nullopt;
  FundSizingRecord r;
  r.sizing_id = q.text(0);
  r.at = q.text(1);
  r.currency = q.text(2);
  r.scale = static_cast<int>(q.int64(3));
  r.fund_minor = q.int64(4);
  r.art42 = q.real(5);
  r.cover2 = q.real(6);
  r.scenario = q.text(7);
  r.report_json = q.text(8);
  return r;
}

std::map<std::string, std::int64_t> SqliteClearingStore::fund_balances() const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::map<std::string, std::int64_t> out;
  SqliteStatement q(*db_, "SELECT member, amount_minor FROM fund_balances WHERE amount_minor != 0");
  while (q.step()) out[q.text(0)] = q.int64(1);
  return out;
}

// ---- defaults ----------------------------------------------------------------------------------

Outcome SqliteClearingStore::record_default(const DefaultRecord& d) {
  require_writer("record_default");
  std::lock_guard<std::mutex> lk(mutex_);
  if (auto p = identifier_problem(d.default_id)) throw input_error("", 0, "default_id", in_quotes(d.default_id) + ": " + *p);
  if (auto p = identifier_problem(d.house_account))
    throw input_error("", 0, "house_account", in_quotes(d.house_account) + ": " + *p);
  if (!is_valid_utc_time(d.declared_at)) throw input_error("", 0, "declared_at", in_quotes(d.declared_at) + ": not an ISO 8601 UTC time");
  const std::string now = clearing_now_utc();
  return transact(*db_, [&] {
    {
      SqliteStatement q(*db_, "SELECT default_id FROM defaults WHERE default_id = ?1 OR member = ?2");
      q.bind(1, d.default_id).bind(2, d.member);
      if (q.step()) return q.text(0) == d.default_id ? Outcome::duplicate : Outcome::conflict;
    }
    std::vector<std::string> accounts;
    {
      SqliteStatement q(*db_, "SELECT account FROM accounts WHERE member = ? ORDER BY account");
      q.bind(1, d.member);
      while (q.step()) accounts.push_back(q.text(0));
    }
    for (const std::string& a : accounts)
      if (a == d.house_account) throw input_error("", 0, "member", "the CCP's house account cannot default");

    SqliteStatement ins(*db_,
                        "INSERT INTO defaults(default_id, member, reason, declared_at, currency, scale, loss_minor,"
                        " house_account, report_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, d.default_id).bind(2, d.member).bind(3, d.reason).bind(4, d.declared_at).bind(5, d.currency);
    ins.bind(6, static_cast<std::int64_t>(d.scale)).bind(7, d.loss_minor).bind(8, d.house_account).bind(9, d.report_json);
    ins.run();
    SqliteStatement step(*db_,
                         "INSERT INTO default_steps(default_id, step, layer, member, available_minor, absorbed_minor,"
                         " remaining_minor) VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (std::size_t i = 0; i < d.steps.size(); ++i) {
      const WaterfallStep& s = d.steps[i];
      step.bind(1, d.default_id).bind(2, static_cast<std::int64_t>(i + 1)).bind(3, std::string_view(to_string(s.layer)));
      step.bind(4, s.member).bind(5, s.available_minor).bind(6, s.absorbed_minor).bind(7, s.remaining_after_minor);
      step.run();
    }

    // Contributions applied.
    for (const auto& [member, amount] : d.fund_applied) {
      if (amount <= 0) continue;
      const std::int64_t before = fund_balance_of(member);
      if (amount > before)
        throw input_error("", 0, "fund_applied",
                          "member " + in_quotes(member) + " holds " + format_money(before, d.scale) + " " + d.currency +
                              " in the default fund, less than the " + format_money(amount, d.scale) + " applied");
      move_fund(member, -amount, "applied", d.default_id, now);
    }

    // The defaulter's collateral to the house account.
    for (const std::string& account : accounts) {
      std::vector<std::pair<std::string, std::int64_t>> held;
      {
        SqliteStatement q(*db_, "SELECT asset, amount_minor FROM collateral_balances WHERE account = ? ORDER BY asset");
        q.bind(1, account);
        while (q.step()) held.emplace_back(q.text(0), q.int64(1));
      }
      for (const auto& [asset, amount] : held) {
        if (amount <= 0) continue;
        const std::string ref = "default/" + d.default_id + "/" + account + "/" + asset;
        const CollateralResult out = change_balance({account, asset, amount, ref}, MovementKind::withdrawal, -amount, now);
        const CollateralResult in = change_balance({d.house_account, asset, amount, ref}, MovementKind::deposit, amount, now);
        if (out.outcome != Outcome::recorded || in.outcome != Outcome::recorded)
          throw logic_error("moving " + account + "'s " + asset + " to the house account: " + out.message + in.message);
      }
    }

    // The defaulter's positions to the house account, at the close-out prices.
    owner_of(d.house_account);
    register_account(d.house_account, now);
    SqliteStatement journal(*db_,
                            "INSERT INTO journal(kind, source, trade_id, account, instrument, quantity_units, price, time,"
                            " package_id, signature, reason, recorded_at)"
                            " VALUES ('trade', ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)");
    SqliteStatement trade(*db_, "INSERT INTO trades(source, trade_id, journal_seq, digest) VALUES (?, ?, ?, ?)");
    for (const std::string& account : accounts) {
      std::vector<std::pair<std::string, std::int64_t>> held;
      {
        SqliteStatement q(*db_, "SELECT instrument, quantity_units FROM positions WHERE account = ? ORDER BY instrument");
        q.bind(1, account);
        while (q.step()) held.emplace_back(q.text(0), q.int64(1));
      }
      for (const auto& [instrument, units] : held) {
        const auto price = d.close_out_prices.find(instrument);
        if (price == d.close_out_prices.end())
          throw input_error("", 0, "close_out_prices", "no close-out price for " + in_quotes(instrument) + " held by " + account);
        for (const bool into_house : {false, true}) {
          TradeInput in;
          in.source = kDefaultTransferSource;
          in.trade_id = d.default_id + "/" + account + "/" + instrument + (into_house ? "/in" : "/out");
          in.account = into_house ? d.house_account : account;
          in.instrument = instrument;
          in.quantity_text = quantity_text(into_house ? units : -units);
          in.price_text = price->second;
          in.time = d.declared_at;
          in.package_id = d.default_id;
          Trade t;
          if (auto e = validate_trade(in, t)) throw input_error("", 0, e->field, in.trade_id + ": " + e->what);
          std::int64_t after = 0;
          if (!checked_add(position_of(t.account, t.instrument), t.quantity_units, after))
            throw input_error("", 0, "quantity", "the house account's position in " + instrument + " would overflow");
          journal.bind(1, t.source).bind(2, t.trade_id).bind(3, t.account).bind(4, t.instrument);
          journal.bind(5, t.quantity_units).bind(6, t.price).bind(7, t.time).bind(8, t.package_id).bind(9, now);
          journal.run();
          const std::int64_t seq = sqlite3_last_insert_rowid(db_->handle());
          trade.bind(1, t.source).bind(2, t.trade_id).bind(3, seq).bind(4, trade_digest_hex(t));
          trade.run();
          write_position(t.account, t.instrument, after);
        }
      }
    }
    if (defaulted_) defaulted_->insert(d.member);
    return Outcome::recorded;
  }, [this] { forget_cached_rows(); });
}

std::vector<DefaultSummary> SqliteClearingStore::defaults() const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<DefaultSummary> out;
  SqliteStatement q(*db_,
                    "SELECT default_id, member, reason, declared_at, currency, scale, loss_minor, report_json, house_account,"
                    " (SELECT COUNT(*) / 2 FROM journal j WHERE j.source = ?1 AND j.package_id = d.default_id),"
                    " (SELECT COUNT(*) FROM collateral_movements m WHERE m.kind = 'deposit'"
                    "   AND m.reference LIKE 'default/' || d.default_id || '/%')"
                    " FROM defaults d ORDER BY seq");
  q.bind(1, std::string_view(kDefaultTransferSource));
  SqliteStatement steps(*db_,
                        "SELECT layer, member, available_minor, absorbed_minor, remaining_minor FROM default_steps"
                        " WHERE default_id = ? ORDER BY step");
  while (q.step()) {
    DefaultSummary d;
    d.default_id = q.text(0);
    d.member = q.text(1);
    d.reason = q.text(2);
    d.declared_at = q.text(3);
    d.currency = q.text(4);
    d.scale = static_cast<int>(q.int64(5));
    d.loss_minor = q.int64(6);
    d.report_json = q.text(7);
    d.house_account = q.text(8);
    d.positions_moved = q.int64(9);
    d.collateral_moved = q.int64(10);
    steps.bind(1, d.default_id);
    while (steps.step())
      d.steps.push_back({layer_from(steps.text(0)), steps.text(1), steps.int64(2), steps.int64(3), steps.int64(4)});
    steps.reset();
    out.push_back(std::move(d));
  }
  return out;
}

std::string SqliteClearingStore::default_of(const std::string& member) const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_, "SELECT default_id FROM defaults WHERE member = ?");
  q.bind(1, member);
  return q.step() ? q.text(0) : std::string();
}

std::vector<ReportApplied::MissedPayIn> SqliteClearingStore::unhandled_missed_pay_ins() const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<ReportApplied::MissedPayIn> out;
  SqliteStatement q(*db_,
                    "SELECT a.member, s.account, s.instruction_id, s.amount_minor - s.settled_minor"
                    " FROM sent_instructions s JOIN accounts a ON a.account = s.account"
                    " WHERE s.purpose = 'call' AND s.state = 'defaulted' AND s.settled_minor < s.amount_minor"
                    " AND a.member NOT IN (SELECT member FROM defaults) ORDER BY s.instruction_id");
  while (q.step()) out.push_back({q.text(0), q.text(1), q.text(2), q.int64(3)});
  return out;
}

std::int64_t SqliteClearingStore::skin_in_the_game_used() const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_, "SELECT absorbed_minor FROM default_steps WHERE layer = 'skin_in_the_game'");
  std::int64_t used = 0;
  while (q.step())
    if (!checked_add(used, q.int64(0), used)) throw logic_error("the skin in the game used overflows int64");
  return used;
}

}  // namespace marginet
