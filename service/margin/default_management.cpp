#include "service/margin/default_management.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "host/collateral.hpp"
#include "host/greeks_engine.hpp"
#include "host/margin_engine.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"
#include "service/margin/call_run.hpp"

namespace marginet {

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string utc_now_text() {
  const std::string stamp = utc_id_stamp(unix_time_now());  // 20261206T140000Z
  return stamp.substr(0, 4) + "-" + stamp.substr(4, 2) + "-" + stamp.substr(6, 2) + "T" + stamp.substr(9, 2) + ":" +
         stamp.substr(11, 2) + ":" + stamp.substr(13, 2) + "Z";
}

/// A risk figure as money held: rounded down to the minor unit (a resource is never overstated).
std::int64_t money_down(double value, int scale, const std::string& what) {
  const double minor = std::floor(value * static_cast<double>(pow10_i64(scale)));
  if (!std::isfinite(minor) || minor < 0 || minor >= 9.2e18)
    throw input_error(what + " (" + std::to_string(value) + ") is not an amount of money");
  return static_cast<std::int64_t>(minor);
}

std::int64_t money_up(double value, int scale, const std::string& what) {
  std::int64_t out = 0;
  if (margin_call_minor_units(std::max(0.0, value), scale, out) != MoneyStatus::ok)
    throw input_error(what + " (" + std::to_string(value) + ") is not an amount of money");
  return out;
}

/// Per member group and asset, the largest two obligations against the resources.
std::vector<LiquidityCover> liquidity_cover2(const FundSizing& s, const DefaultFundConfig& fund,
                                             const std::map<std::pair<std::string, std::string>, double>& pay_ins) {
  // group -> asset -> obligation (units of the asset)
  std::map<std::string, std::map<std::string, double>> owed;
  for (const GroupStressResult& g : s.groups) {
    double vm = 0;  // the variation margin it would pay in its worst scenario
    for (double l : g.loss) vm = std::max(vm, l);
    owed[g.group][fund.currency] += vm;
  }
  for (const auto& [key, amount] : pay_ins) owed[fund.group(key.first)][key.second] += amount;
  std::map<std::string, std::vector<std::pair<double, std::string>>> by_asset;
  for (const auto& [group, assets] : owed)
    for (const auto& [asset, amount] : assets) by_asset[asset].emplace_back(amount, group);
  for (const auto& [asset, text] : fund.liquid_resources) (void)by_asset[asset];
  std::vector<LiquidityCover> out;
  for (auto& [asset, list] : by_asset) {
    std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    LiquidityCover c;
    c.asset = asset;
    for (std::size_t k = 0; k < 2 && k < list.size(); ++k) {
      c.need += list[k].first;
      c.groups.push_back(list[k].second);
    }
    if (const auto r = fund.liquid_resources.find(asset); r != fund.liquid_resources.end())
      c.resources = std::stod(r->second);
    c.shortfall = std::max(0.0, c.need - c.resources);
    out.push_back(std::move(c));
  }
  return out;
}

/// The store's accounts -> members, with the house account and members in default left out.
std::map<std::string, std::string> live_accounts(const ClearingStore& store, const DefaultFundConfig& fund) {
  std::set<std::string> excluded;
  for (const DefaultSummary& d : store.defaults()) excluded.insert(d.member);
  std::map<std::string, std::string> member_of;
  for (const AccountInfo& a : store.accounts()) {
    if (a.account == fund.house_account || a.member == fund.house_account) {
      excluded.insert(a.member);
      continue;
    }
    if (!excluded.count(a.member)) member_of[a.account] = a.member;
  }
  return member_of;
}

}  // namespace

FundSizingRun size_fund(const InstrumentTable& instruments, const MarketSnapshot& market, const Methodology& method,
                        const DefaultFundConfig& fund, const std::vector<Position>& book,
                        const std::map<std::string, std::string>& member_of, Backend backend,
                        const std::map<std::pair<std::string, std::string>, double>& pay_ins) {
  const auto t0 = Clock::now();
  FundSizingRun out;
  out.positions = book.size();
  auto member = [&](const std::string& account) {
    const auto it = member_of.find(account);
    return it == member_of.end() ? account : it->second;
  };
  // IM per account under the clearing methodology, summed per member.
  std::map<std::string, double> im;
  for (const auto& [account, m] : member_of) (void)im[m];
  if (!book.empty()) {
    MarginEngine engine(instruments, market, method, backend);
    const MarginRun run = engine.run(book);
    out.margin_seconds = run.times.total_s;
    out.accounts = run.accounts.size();
    for (const AccountMargin& a : run.accounts) {
      if (!std::isfinite(a.im)) throw input_error("account '" + a.account + "': IM is not a finite number");
      im[member(a.account)] += a.im;
    }
  }
  // Stress P&L with each member's accounts as one portfolio.
  std::vector<Position> by_member = book;
  for (Position& p : by_member) p.account = member(p.account);
  const auto t1 = Clock::now();
  MemberStressRun stress = run_member_stress(instruments, market, fund, by_member, im, backend);
  out.stress_seconds = seconds_since(t1);
  out.sizing = size_default_fund(stress.members, stress.scenarios, fund);
  out.liquidity = liquidity_cover2(out.sizing, fund, pay_ins);
  out.total_seconds = seconds_since(t0);
  return out;
}

FundSizingRun size_fund_from_store(const DefaultInputs& in) {
  const std::map<std::string, std::string> member_of = live_accounts(in.store, in.fund);
  std::vector<Position> book;
  for (const Position& p : kept_positions(in.store, in.ref.instruments, in.instruments_source))
    if (member_of.count(p.account)) book.push_back(p);
  // Payments due in cycles the scheduler has not settled yet.
  std::map<std::pair<std::string, std::string>, double> pay_ins;
  for (const OutboxEntry& e : in.store.outbox_due(std::numeric_limits<double>::max(), 1'000'000)) {
    std::map<std::string, int> scales;
    for (const AssetScale& a : e.cycle.assets) scales[a.asset] = a.scale;
    for (const SettlementInstruction& i : e.cycle.instructions) {
      if (i.leg != Leg::pay_in || !member_of.count(i.member)) continue;
      pay_ins[{member_of.at(i.member), i.asset}] +=
          static_cast<double>(i.amount) / static_cast<double>(pow10_i64(scales[i.asset]));
    }
  }
  return size_fund(in.ref.instruments, in.ref.market, in.method, in.fund, book, member_of, in.backend, pay_ins);
}

Outcome record_fund_sizing(ClearingStore& store, const FundSizingRun& run, const DefaultFundConfig& fund,
                           const std::string& sizing_id) {
  FundSizingRecord r;
  r.sizing_id = sizing_id;
  r.at = utc_now_text();
  r.currency = fund.currency;
  r.scale = fund.scale;
  r.fund_minor = run.sizing.fund_minor;
  r.art42 = run.sizing.art42;
  r.cover2 = run.sizing.cover2;
  if (run.sizing.art42_scenario >= 0) r.scenario = run.sizing.scenarios[static_cast<std::size_t>(run.sizing.art42_scenario)];
  for (const MemberContribution& m : run.sizing.members) r.contributions.push_back({m.member, m.contribution_minor});
  r.report_json = fund_sizing_json(run, fund);
  return store.record_fund_sizing(r);
}

DefaultReport declare_default(const DefaultInputs& in, const DefaultDeclaration& d) {
  DefaultReport r;
  r.member = d.member;
  r.reason = d.reason.empty() ? "declared by the operator" : d.reason;
  r.currency = in.fund.currency;
  r.scale = in.fund.scale;
  r.house_account = in.fund.house_account;
  if (d.member == in.fund.house_account) throw input_error("", 0, "member", "the CCP's house account cannot default");
  bool known = false;
  for (const MemberInfo& m : in.store.members()) known = known || m.name == d.member;
  if (!known) throw input_error("", 0, "member", "no member '" + d.member + "' in " + in.store.path());
  if (const std::string existing = in.store.default_of(d.member); !existing.empty()) {
    r.outcome = Outcome::duplicate;
    r.default_id = existing;
    for (const DefaultSummary& s : in.store.defaults())
      if (s.default_id == existing) {
        r.declared_at = s.declared_at;
        r.reason = s.reason;
        r.currency = s.currency;
        r.scale = s.scale;
        r.inputs.loss_minor = s.loss_minor;
        r.positions = static_cast<std::size_t>(s.positions_moved);
        r.waterfall.steps = s.steps;
        for (const WaterfallStep& step : s.steps)
          if (step.layer == WaterfallLayer::uncovered) r.waterfall.uncovered_minor = step.absorbed_minor;
        r.waterfall.covered_minor = s.loss_minor - r.waterfall.uncovered_minor;
      }
    return r;
  }
  const double now = unix_time_now();
  r.default_id = d.default_id.empty() ? "default-" + d.member + "-" + utc_id_stamp(now) : d.default_id;
  r.declared_at = utc_now_text();

  // The defaulter's book and collateral.
  std::vector<BalanceRow> balances;
  for (const AccountInfo& a : in.store.accounts())
    if (a.member == d.member) {
      r.accounts.push_back(a.account);
      for (const BalanceRow& b : in.store.balances(a.account)) balances.push_back(b);
    }
  std::vector<Position> book;
  std::set<std::string> held;
  for (const Position& p : kept_positions(in.store, in.ref.instruments, in.instruments_source))
    if (std::find(r.accounts.begin(), r.accounts.end(), p.account) != r.accounts.end()) {
      book.push_back(Position{d.member, p.instrument, p.quantity});
      held.insert(in.ref.instruments[p.instrument].id);
    }
  r.positions = book.size();

  // Close-out: the largest loss of the book over the default scenarios and the holding period.
  for (const DefaultScenario& s : in.fund.scenarios) r.scenarios.push_back(s.name);
  r.scenario_losses.assign(r.scenarios.size(), 0.0);
  if (!book.empty()) {
    const MemberStressRun stress = run_member_stress(in.ref.instruments, in.ref.market, in.fund, book, {}, in.backend);
    r.scenario_losses = stress.members.at(0).loss;
  }
  for (std::size_t s = 0; s < r.scenario_losses.size(); ++s)
    if (r.scenario_losses[s] > r.close_out_loss || r.close_out_scenario.empty()) {
      r.close_out_loss = std::max(0.0, r.scenario_losses[s]);
      r.close_out_scenario = r.scenarios[s];
    }
  const auto values = collateral_values(collateral_holdings(balances), in.ref.market, in.method);
  for (const auto& [account, v] : values) r.margin_value += v;

  // The money the waterfall starts from.
  WaterfallInputs& w = r.inputs;
  w.loss_minor = money_up(r.close_out_loss, r.scale, "the close-out loss");
  w.margin_minor = money_down(r.margin_value, r.scale, "the defaulter's collateral value");
  const std::map<std::string, std::int64_t> fund_balances = in.store.fund_balances();
  if (const auto it = fund_balances.find(d.member); it != fund_balances.end()) w.contribution_minor = it->second;
  w.skin_in_the_game_minor = std::max<std::int64_t>(0, in.fund.skin_in_the_game_minor() - in.store.skin_in_the_game_used());
  for (const auto& [member, amount] : fund_balances)
    if (member != d.member && amount > 0) w.survivors.push_back({member, amount});
  w.assessment_cap_ppm = in.fund.assessment_cap_ppm;
  r.waterfall = run_waterfall(w);

  // Close-out prices: each held instrument at its model value in the current market.
  InstrumentTable held_table;
  for (const std::string& id : held) held_table.add(in.ref.instruments.at(id));
  DefaultRecord rec;
  if (!held_table.empty()) {
    const GreeksTable g = compute_greeks(in.backend, held_table, in.ref.market);
    for (std::size_t i = 0; i < held_table.size(); ++i) {
      if (!std::isfinite(g.price[i]) || g.price[i] < 0)
        throw input_error("", 0, "price", "no close-out price for " + held_table[i].id + " in the current market");
      char text[64];
      std::snprintf(text, sizeof text, "%.8f", g.price[i]);
      rec.close_out_prices[held_table[i].id] = text;
    }
  }
  rec.default_id = r.default_id;
  rec.member = d.member;
  rec.reason = r.reason;
  rec.declared_at = r.declared_at;
  rec.currency = r.currency;
  rec.scale = r.scale;
  rec.loss_minor = w.loss_minor;
  rec.steps = r.waterfall.steps;
  if (const auto& layers = r.waterfall.layers; layers.size() > 1 && layers[1].absorbed_minor > 0)
    rec.fund_applied[d.member] = layers[1].absorbed_minor;
  for (const auto& [member, used] : r.waterfall.contribution_used) rec.fund_applied[member] += used;
  rec.house_account = in.fund.house_account;
  rec.report_json = default_report_json(r);
  r.outcome = in.store.record_default(rec);
  return r;
}

StoreNetwork store_network(const DefaultInputs& in, const std::string& scenario) {
  const std::map<std::string, std::string> member_of = live_accounts(in.store, in.fund);
  std::vector<Position> book;
  std::map<std::string, double> margin;  // member -> collateral value after haircuts
  for (const auto& [account, member] : member_of) (void)margin[member];
  for (const Position& p : kept_positions(in.store, in.ref.instruments, in.instruments_source))
    if (const auto m = member_of.find(p.account); m != member_of.end()) book.push_back({m->second, p.instrument, p.quantity});
  for (const auto& [account, value] : collateral_values(collateral_holdings(in.store.balances()), in.ref.market, in.method))
    if (const auto m = member_of.find(account); m != member_of.end()) margin[m->second] += value;
  const MemberStressRun stress = run_member_stress(in.ref.instruments, in.ref.market, in.fund, book, {}, in.backend);

  // The scenario: named, or the one with the largest total loss.
  std::size_t s = 0;
  if (scenario.empty()) {
    double worst = -1;
    for (std::size_t k = 0; k < stress.scenarios.size(); ++k) {
      double total = 0;
      for (const MemberStress& m : stress.members) total += std::max(0.0, m.loss[k]);
      if (total > worst) worst = total, s = k;
    }
  } else {
    const auto it = std::find(stress.scenarios.begin(), stress.scenarios.end(), scenario);
    if (it == stress.scenarios.end()) {
      std::string names;
      for (const std::string& n : stress.scenarios) names += (names.empty() ? "'" : ", '") + n + "'";
      throw input_error("", 0, "scenario", "no default scenario '" + scenario + "' (the configuration has " + names + ")");
    }
    s = static_cast<std::size_t>(it - stress.scenarios.begin());
  }

  StoreNetwork out;
  out.scenario = stress.scenarios[s];
  Network& net = out.network;
  net.currency = in.fund.currency;
  double ccp_assets = static_cast<double>(std::max<std::int64_t>(0, in.fund.skin_in_the_game_minor() - in.store.skin_in_the_game_used()));
  for (const auto& [member, amount] : in.store.fund_balances()) ccp_assets += static_cast<double>(amount);
  net.add_node("CCP", ccp_assets / static_cast<double>(pow10_i64(in.fund.scale)));
  std::map<std::string, double> loss;
  for (const MemberStress& m : stress.members) loss[m.member] = m.loss[s];
  for (const auto& [member, value] : margin) {
    if (!net.add_node(member, 0.0)) throw input_error("", 0, "member", "a member is named 'CCP', the network's CCP node");
    const double l = loss.count(member) ? loss.at(member) : 0.0;
    const auto i = *net.find(member);
    if (l > 0) {
      net.liabilities.push_back({i, 0, l, std::min(l, value)});
      out.losses += l;
    } else if (l < 0) {
      net.liabilities.push_back({0, i, -l, 0.0});
      out.gains += -l;
    }
  }
  return out;
}

// ---- reports --------------------------------------------------------------------------------

std::string default_report_json(const DefaultReport& r) {
  auto money = [&](std::int64_t minor) { return format_money(minor, r.scale); };
  json j;
  j["default_id"] = r.default_id;
  j["member"] = r.member;
  j["outcome"] = to_string(r.outcome);
  j["reason"] = r.reason;
  j["declared_at"] = r.declared_at;
  j["currency"] = r.currency;
  j["accounts"] = r.accounts;
  j["positions_closed_out"] = r.positions;
  j["house_account"] = r.house_account;
  json losses = json::object();
  for (std::size_t s = 0; s < r.scenarios.size() && s < r.scenario_losses.size(); ++s) losses[r.scenarios[s]] = r.scenario_losses[s];
  j["close_out"] = {{"loss", r.close_out_loss}, {"scenario", r.close_out_scenario}, {"loss_by_scenario", losses}};
  j["collateral_value"] = r.margin_value;
  j["loss"] = money(r.inputs.loss_minor);
  json layers = json::array();
  for (const LayerTotal& l : r.waterfall.layers)
    layers.push_back({{"layer", to_string(l.layer)}, {"available", money(l.available_minor)}, {"absorbed", money(l.absorbed_minor)}});
  j["layers"] = layers;
  json steps = json::array();
  for (const WaterfallStep& s : r.waterfall.steps)
    steps.push_back({{"layer", to_string(s.layer)}, {"member", s.member}, {"available", money(s.available_minor)},
                     {"absorbed", money(s.absorbed_minor)}, {"remaining", money(s.remaining_after_minor)}});
  j["steps"] = steps;
  j["covered"] = money(r.waterfall.covered_minor);
  j["uncovered"] = money(r.waterfall.uncovered_minor);
  j["margin_surplus"] = money(r.waterfall.margin_surplus_minor);
  json replenish = json::object();
  for (const auto& [m, used] : r.waterfall.contribution_used) replenish[m]["contribution_used"] = money(used);
  for (const auto& [m, due] : r.waterfall.assessed) replenish[m]["assessment_due"] = money(due);
  j["replenish"] = replenish;
  j["units"] = {{"amounts", r.currency}, {"close_out", r.currency}, {"collateral_value", r.currency}};
  return j.dump();
}

protocol::DefaultResultText default_result_text(const DefaultReport& r) {
  auto money = [&](std::int64_t minor) { return format_money(minor, r.scale); };
  protocol::DefaultResultText t;
  t.default_id = r.default_id;
  t.member = r.member;
  t.outcome = to_string(r.outcome);
  t.reason = r.reason;
  t.declared_at = r.declared_at;
  t.currency = r.currency;
  t.loss = money(r.inputs.loss_minor);
  t.covered = money(r.waterfall.covered_minor);
  t.uncovered = money(r.waterfall.uncovered_minor);
  t.close_out_loss = r.close_out_loss;
  t.close_out_scenario = r.close_out_scenario;
  t.positions = static_cast<std::int64_t>(r.positions);
  for (const WaterfallStep& s : r.waterfall.steps)
    t.steps.push_back({to_string(s.layer), s.member, money(s.available_minor), money(s.absorbed_minor),
                       money(s.remaining_after_minor)});
  return t;
}

std::string fund_sizing_json(const FundSizingRun& run, const DefaultFundConfig& fund) {
  const FundSizing& s = run.sizing;
  auto scenario = [&](std::int32_t i) { return i < 0 ? std::string() : s.scenarios[static_cast<std::size_t>(i)]; };
  json j;
  j["currency"] = fund.currency;
  j["fund"] = format_money(s.fund_minor, fund.scale);
  j["art42"] = {{"amount", s.art42}, {"scenario", scenario(s.art42_scenario)}, {"groups", s.art42_groups}};
  j["cover2"] = {{"amount", s.cover2}, {"scenario", scenario(s.cover2_scenario)}, {"groups", s.cover2_groups}};
  j["contributions_total"] = format_money(s.contributions_minor, fund.scale);
  json groups = json::array();
  for (const GroupStressResult& g : s.groups)
    groups.push_back({{"group", g.group}, {"members", g.members}, {"im", g.im}, {"worst_uncovered", g.worst_uncovered},
                      {"worst_scenario", scenario(g.worst_scenario)}});
  j["groups"] = groups;
  json members = json::array();
  for (const MemberContribution& m : s.members)
    members.push_back({{"member", m.member}, {"group", m.group}, {"im", m.im}, {"exposure", m.exposure},
                       {"exposure_scenario", scenario(m.exposure_scenario)},
                       {"contribution", format_money(m.contribution_minor, fund.scale)}});
  j["members"] = members;
  json liquidity = json::array();
  for (const LiquidityCover& l : run.liquidity)
    liquidity.push_back({{"asset", l.asset}, {"need", l.need}, {"groups", l.groups}, {"resources", l.resources},
                         {"shortfall", l.shortfall}});
  j["liquidity_cover2"] = liquidity;
  j["scenarios"] = s.scenarios;
  j["units"] = {{"im", fund.currency}, {"exposure", fund.currency}, {"art42", fund.currency}, {"cover2", fund.currency},
                {"fund", fund.currency}, {"contribution", fund.currency}, {"liquidity", "units of each asset"}};
  return j.dump();
}

}  // namespace marginet
