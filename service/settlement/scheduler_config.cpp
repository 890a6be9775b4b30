#include "service/settlement/scheduler_config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <cctype>
#include <set>
#include <sstream>

#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Names and small helpers

const char* instruction_state_name(InstructionState s) {
  switch (s) {
    case InstructionState::instructed: return "instructed";
    case InstructionState::submitted: return "submitted";
    case InstructionState::confirmed: return "confirmed";
    case InstructionState::final: return "final";
    case InstructionState::failed: return "failed";
    case InstructionState::rolled: return "rolled";
    case InstructionState::defaulted: return "defaulted";
    case InstructionState::expired: return "expired";
  }
  return "?";
}

std::optional<InstructionState> parse_instruction_state(std::string_view s) {
  for (auto st : {InstructionState::instructed, InstructionState::submitted, InstructionState::confirmed,
                  InstructionState::final, InstructionState::failed, InstructionState::rolled,
                  InstructionState::defaulted, InstructionState::expired})
    if (s == instruction_state_name(st)) return st;
  return std::nullopt;
}

bool is_terminal(InstructionState s) {
  return s == InstructionState::final || s == InstructionState::rolled || s == InstructionState::defaulted ||
         s == InstructionState::expired;
}

// ---------------------------------------------------------------------------------------------
// Exact amounts in the chains file and the status

std::optional<std::int64_t> parse_minor_units(std::string_view text, int scale) {
  if (scale < 0 || scale > 18) return std::nullopt;
  std::size_t i = 0;
  bool neg = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) neg = text[i++] == '-';
  __int128 v = 0;
  int digits = 0, decimals = 0;
  bool dot = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.') {
      if (dot) return std::nullopt;
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    if (dot && ++decimals > scale) {
      if (c != '0') return std::nullopt;  // more precision than the asset has
      continue;
    }
    v = v * 10 + (c - '0');
    ++digits;
    if (v > static_cast<__int128>(INT64_MAX)) return std::nullopt;
  }
  if (digits == 0) return std::nullopt;
  for (int d = std::min(decimals, scale); d < scale; ++d) {
    v *= 10;
    if (v > static_cast<__int128>(INT64_MAX)) return std::nullopt;
  }
  return static_cast<std::int64_t>(neg ? -v : v);
}

std::string format_minor_units(std::int64_t minor, int scale) {
  const bool neg = minor < 0;
  const std::uint64_t magnitude = neg ? 0 - static_cast<std::uint64_t>(minor) : static_cast<std::uint64_t>(minor);
  std::string digits = std::to_string(magnitude);
  if (scale > 0) {
    if (static_cast<int>(digits.size()) <= scale) digits.insert(0, static_cast<std::size_t>(scale) + 1 - digits.size(), '0');
    digits.insert(digits.size() - static_cast<std::size_t>(scale), ".");
  }
  return neg ? "-" + digits : digits;
}

// ---------------------------------------------------------------------------------------------
// Config

namespace {

using FailFn = std::function<void(const std::string& field, const std::string& what)>;

EvmChainConfig parse_evm_chain(const json& c, const std::string& name, const std::vector<std::string>& assets,
                               const std::string& where, const FailFn& fail) {
  static const std::set<std::string> kKeys = {"name", "adapter", "assets", "rpc_url", "finality_depth", "ccp_account",
                                              "dvp_contract", "tokens", "members", "max_legs_per_batch", "dev_mine",
                                              "rpc_timeout_seconds", "chain_id", "htlc_contract", "contracts"};
  for (const auto& [k, v] : c.items())
    if (!kKeys.count(k)) fail(where + "." + k, "not a setting of an evm chain");
  EvmChainConfig ec;
  ec.name = name;
  ec.assets = assets;
  auto text = [&](const char* key) {
    if (!c.contains(key) || !c[key].is_string() || c[key].get<std::string>().empty())
      fail(where + "." + key, "required (text)");
    return c[key].get<std::string>();
  };
  ec.rpc_url = text("rpc_url");
  if (ec.rpc_url.rfind("http://", 0) != 0 && ec.rpc_url.rfind("https://", 0) != 0)
    fail(where + ".rpc_url", "must be an http:// or https:// URL, not '" + ec.rpc_url + "'");
  ec.ccp_account = text("ccp_account");
  ec.dvp_contract = text("dvp_contract");
  ec.finality_depth = c.value("finality_depth", 1u);
  if (ec.finality_depth < 1 || ec.finality_depth > 1000) fail(where + ".finality_depth", "must be in 1..1000");
  const auto legs = c.value("max_legs_per_batch", std::int64_t{100});
  if (legs < 1 || legs > 400) fail(where + ".max_legs_per_batch", "must be in 1..400 (a block's gas)");
  ec.max_legs_per_batch = static_cast<std::size_t>(legs);
  ec.dev_mine = c.value("dev_mine", false);
  ec.contracts_file = c.value("contracts", std::string());
  ec.htlc_contract = c.value("htlc_contract", std::string());
  ec.rpc_timeout_seconds = c.value("rpc_timeout_seconds", 10.0);
  if (!(ec.rpc_timeout_seconds > 0 && ec.rpc_timeout_seconds <= 600)) fail(where + ".rpc_timeout_seconds", "must be in (0, 600]");
  if (!c.contains("tokens") || !c["tokens"].is_object()) fail(where + ".tokens", "an object asset -> token address is required");
  for (const auto& [asset, t] : c["tokens"].items()) ec.tokens[asset] = t.get<std::string>();
  for (const auto& a : assets)
    if (!ec.tokens.count(a)) fail(where + ".tokens", "asset " + a + " has no token address");
  if (c.contains("members")) {
    if (!c["members"].is_object()) fail(where + ".members", "an object member -> address");
    for (const auto& [m, a] : c["members"].items()) ec.members[m] = a.get<std::string>();
  }
  auto check_address = [&](const std::string& field, const std::string& a) {
    bool ok = a.size() == 42 && a[0] == '0' && (a[1] == 'x' || a[1] == 'X');
    for (std::size_t i = 2; ok && i < a.size(); ++i) ok = std::isxdigit(static_cast<unsigned char>(a[i])) != 0;
    if (!ok) fail(field, "not an address (0x + 40 hex digits): '" + a + "'");
  };
  check_address(where + ".ccp_account", ec.ccp_account);
  check_address(where + ".dvp_contract", ec.dvp_contract);
  if (!ec.htlc_contract.empty()) check_address(where + ".htlc_contract", ec.htlc_contract);
  for (const auto& [a, t] : ec.tokens) check_address(where + ".tokens." + a, t);
  for (const auto& [m, a] : ec.members) check_address(where + ".members." + m, a);
  return ec;
}

}  // namespace

SchedulerConfig parse_scheduler_config(const std::string& text, const std::string& name) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw input_error(name, 0, "", "not a JSON object");
  SchedulerConfig cfg;
  auto fail = [&name](const std::string& field, const std::string& what) -> void {
    throw input_error(name, 0, field, what);
  };
  try {
    if (j.contains("ccp_address")) cfg.ccp_address = j.at("ccp_address").get<std::string>();
    if (j.contains("on_missed_deadline")) {
      const std::string a = j.at("on_missed_deadline").get<std::string>();
      if (a == "roll") cfg.on_missed_deadline = MissedDeadlineAction::roll;
      else if (a == "default_management") cfg.on_missed_deadline = MissedDeadlineAction::default_management;
      else fail("on_missed_deadline", "must be \"roll\" or \"default_management\", not \"" + a + "\"");
    }
    if (j.contains("max_payout_attempts")) {
      cfg.max_payout_attempts = j.at("max_payout_attempts").get<int>();
      if (cfg.max_payout_attempts < 1) fail("max_payout_attempts", "must be at least 1");
    }
    if (j.contains("grace_seconds")) {
      cfg.grace_seconds = j.at("grace_seconds").get<double>();
      if (!(cfg.grace_seconds >= 0 && cfg.grace_seconds <= 7 * 86400.0)) fail("grace_seconds", "must be in 0..604800");
    }
    if (j.contains("max_instructions_per_cycle")) {
      const auto n = j.at("max_instructions_per_cycle").get<std::int64_t>();
      if (n < 1 || n > 10'000'000) fail("max_instructions_per_cycle", "must be in 1..10000000");
      cfg.max_instructions_per_cycle = static_cast<std::size_t>(n);
    }
    if (!j.contains("assets") || !j["assets"].is_object()) fail("assets", "an object of assets is required");
    for (const auto& [asset, a] : j["assets"].items()) {
      SettlementAssetConfig ac;
      if (!a.contains("scale")) fail("assets." + asset + ".scale", "required");
      ac.scale = a.at("scale").get<int>();
      if (ac.scale < 0 || ac.scale > 18) fail("assets." + asset + ".scale", "must be in 0..18");
      if (a.contains("ccp_liquidity")) {
        const std::string t = a["ccp_liquidity"].is_string() ? a["ccp_liquidity"].get<std::string>()
                                                             : a["ccp_liquidity"].dump();
        auto v = parse_minor_units(t, ac.scale);
        if (!v || *v < 0) fail("assets." + asset + ".ccp_liquidity", "not a non-negative amount at scale " +
                                                                       std::to_string(ac.scale) + ": " + t);
        ac.ccp_liquidity = *v;
      }
      cfg.assets[asset] = ac;
    }
    if (!j.contains("chains") || !j["chains"].is_array() || j["chains"].empty())
      fail("chains", "a non-empty array of chains is required");
    std::set<std::string> names, served;
    for (const auto& c : j["chains"]) {
      SimChainConfig sc;
      sc.name = c.value("name", "");
      const std::string where = "chains[" + sc.name + "]";
      if (sc.name.empty() || !names.insert(sc.name).second) fail("chains.name", "missing or repeated chain name");
      const std::string adapter = c.value("adapter", "sim");
      if (adapter != "sim" && adapter != "evm")
        fail(where + ".adapter", "unknown adapter '" + adapter + "' (this build has: sim, evm)");
      sc.ccp_address = cfg.ccp_address;
      sc.assets = c.at("assets").get<std::vector<std::string>>();
      for (const auto& a : sc.assets) {
        if (!cfg.assets.count(a)) fail(where + ".assets", "asset " + a + " is not in \"assets\"");
        if (!served.insert(a).second) fail(where + ".assets", "asset " + a + " is served by two chains");
        sc.ccp_funding[a] = cfg.assets[a].ccp_liquidity;
      }
      if (adapter == "evm") {
        cfg.evm_chains.push_back(parse_evm_chain(c, sc.name, sc.assets, where, fail));
        continue;
      }
      sc.block_time = c.value("block_time", 0.0);
      sc.finality_depth = c.value("finality_depth", 1u);
      sc.seed = c.value("seed", std::uint64_t{1});
      sc.failure_rate = c.value("failure_rate", 0.0);
      sc.reorg_probability = c.value("reorg_probability", 0.0);
      sc.reorg_depth = c.value("reorg_depth", 0u);
      sc.max_transfers_per_block = c.value("max_transfers_per_block", std::size_t{0});
      sc.failing_members = c.value("failing_members", std::vector<std::string>{});
      if (c.contains("member_funding")) {
        for (const auto& [asset, v] : c["member_funding"].items()) {
          if (!cfg.assets.count(asset)) fail(where + ".member_funding", "unknown asset " + asset);
          const std::string t = v.is_string() ? v.get<std::string>() : v.dump();
          auto m = parse_minor_units(t, cfg.assets[asset].scale);
          if (!m || *m < 0) fail(where + ".member_funding." + asset, "not a non-negative amount: " + t);
          sc.member_funding[asset] = *m;
        }
      }
      cfg.sim_chains.push_back(std::move(sc));
    }
    for (const auto& [asset, a] : cfg.assets)
      if (!served.count(asset)) fail("assets." + asset, "no chain settles this asset");
  } catch (const json::exception& e) {
    throw input_error(name, 0, "", std::string("bad chains file: ") + e.what());
  }
  return cfg;
}

SchedulerConfig load_scheduler_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_scheduler_config(ss.str(), path);
}

// ---------------------------------------------------------------------------------------------
// Status

SchedulerStatus read_scheduler_status(SqliteDb& db) {
  SchedulerStatus s;
  auto has_table = [&db](const char* t) {
    SqliteStatement q(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?");
    q.bind(1, std::string_view(t));
    return q.step();
  };
  if (!has_table("sched_cycles")) throw input_error(db.path(), 0, "", "not a settlement scheduler database");
  {
    SqliteStatement q(db, "SELECT state, COUNT(*) FROM sched_cycles GROUP BY state");
    while (q.step()) {
      const std::string st = q.text(0);
      if (st == "open") s.cycles_open = q.int64(1);
      else if (st == "queued") s.cycles_queued = q.int64(1);
      else if (st == "closed") s.cycles_closed = q.int64(1);
    }
  }
  {
    SqliteStatement q(db, "SELECT cycle_id, deadline FROM sched_cycles WHERE state='open'");
    if (q.step()) {
      s.open_cycle = q.text(0);
      s.open_deadline = format_iso8601_utc(q.real(1));
    }
  }
  if (!s.open_cycle.empty()) {
    // Who keeps the open cycle open: each member's instructions not terminal yet.
    SqliteStatement q(db,
                      "SELECT i.member, i.asset, i.leg, i.amount, i.state, a.scale FROM sched_instructions i"
                      " LEFT JOIN sched_assets a ON a.asset = i.asset WHERE i.cycle_id = ?"
                      " AND i.state NOT IN ('final','rolled','defaulted','expired') ORDER BY i.rowid");
    q.bind(1, s.open_cycle);
    while (q.step()) {
      std::string& what = s.blocking[q.text(0)];
      if (what.size() > 200) continue;  // enough to name the member
      if (!what.empty()) what += "; ";
      const std::string leg = q.text(2) == "pay_in" ? "pay-in" : "pay-out";
      what += leg + " " + q.text(1) + " " + format_minor_units(q.int64(3), static_cast<int>(q.int64(5))) + " " + q.text(4);
    }
  }
  if (has_table("sched_watch")) {
    SqliteStatement q(db, "SELECT COUNT(*) FROM sched_watch");
    q.step();
    s.transfers_watched = q.int64(0);
  }
  {
    SqliteStatement q(db, "SELECT state, COUNT(*) FROM sched_instructions GROUP BY state");
    while (q.step()) s.instructions_per_state[q.text(0)] = q.int64(1);
  }
  // Sums in C++, saturating at the int64 range: SQLite's SUM() fails on overflow, which would
  // leave the status unreadable for good (each amount is bounded, their sum need not be).
  auto add_saturating = [](std::int64_t& into, std::int64_t v) {
    if (__builtin_add_overflow(into, v, &into)) into = v > 0 ? INT64_MAX : INT64_MIN;
  };
  {
    SqliteStatement q(db,
                      "SELECT asset, settle FROM sched_instructions"
                      " WHERE state NOT IN ('final','rolled','defaulted','expired')");
    while (q.step()) add_saturating(s.value_pending[q.text(0)], q.int64(1));
  }
  {
    SqliteStatement q(db, "SELECT asset, why, amount FROM sched_carried");
    while (q.step()) {
      add_saturating(s.carried[q.text(0)], q.int64(2));
      if (q.text(1) == "held") add_saturating(s.shortfall[q.text(0)], q.int64(2));
    }
  }
  {
    SqliteStatement q(db, "SELECT asset, available FROM sched_liquidity");
    while (q.step()) s.liquidity[q.text(0)] = q.int64(1);
  }
  {
    SqliteStatement q(db, "SELECT asset, scale FROM sched_assets");
    while (q.step()) s.scales[q.text(0)] = static_cast<int>(q.int64(1));
  }
  if (has_table("ledger_entries")) {
    SqliteStatement q(db, "SELECT COUNT(*) FROM ledger_entries");
    q.step();
    s.ledger_entries = q.int64(0);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Settlement report (the answer to settlement.query)

namespace {

bool has_sched_tables(SqliteDb& db) {
  SqliteStatement q(db, "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN"
                        " ('sched_cycles','sched_instructions','sched_carried')");
  q.step();
  return q.int64(0) == 3;
}

// A read transaction (one snapshot) unless the caller is inside one already.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(SqliteDb& db) : db_(db), own_(!db.in_transaction()) {
    if (own_) db_.exec("BEGIN");
  }
  ~ReadSnapshot() {
    if (own_) db_.rollback();  // nothing was written: ending it either way is the same
  }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

 private:
  SqliteDb& db_;
  bool own_;
};

}  // namespace

SettlementReport read_settlement_report(SqliteDb& db, const std::string& cycle_id) {
  if (!has_sched_tables(db)) throw input_error(db.path(), 0, "", "not a settlement scheduler database");
  ReadSnapshot snapshot(db);
  SettlementReport r;
  r.cycle_id = cycle_id;
  r.cycle_state = "unknown";
  {
    SqliteStatement q(db, "SELECT state FROM sched_cycles WHERE cycle_id = ?");
    q.bind(1, cycle_id);
    if (!q.step()) return r;
    r.cycle_state = q.text(0);
  }
  if (r.cycle_state != "queued" && r.cycle_state != "open" && r.cycle_state != "closed")
    throw input_error(db.path(), 0, "sched_cycles.state",
                      "cycle " + cycle_id + " has an unknown state '" + r.cycle_state + "'");
  // The obligations waiting for the next cycle (few: only those not yet in a cycle).
  std::set<std::string> carried;
  {
    SqliteStatement q(db, "SELECT origin FROM sched_carried");
    while (q.step()) carried.insert(q.text(0));
  }
  // The chain of X: X itself, then every instruction carried in from a member of the chain
  // (ids "X@C2", "X@C2@C3", ...: the id of a carried-in instruction is its origin's id + "@" +
  // the cycle it joined). A range on the primary key finds the candidates (not LIKE: ids may
  // hold % or _); the origin link decides (an instruction received as "X@y" is not X's).
  SqliteStatement chain(db,
                        "SELECT instruction_id, origin, state, settle FROM sched_instructions"
                        " WHERE instruction_id >= ? AND instruction_id < ? AND origin != ''");
  struct Row {
    std::string id, origin, state;
    std::int64_t settle;
  };
  SqliteStatement own(db,
                      "SELECT instruction_id, amount, state, settle FROM sched_instructions"
                      " WHERE cycle_id = ? AND origin = '' ORDER BY rowid");
  own.bind(1, cycle_id);
  bool any_pending = false;
  while (own.step()) {
    InstructionOutcome out;
    out.instruction_id = own.text(0);
    out.amount = own.int64(1);
    std::vector<Row> rows{{out.instruction_id, "", own.text(2), own.int64(3)}};
    chain.bind(1, out.instruction_id + "@").bind(2, out.instruction_id + "A");  // '@' + 1 == 'A'
    std::vector<Row> candidates;
    while (chain.step()) candidates.push_back({chain.text(0), chain.text(1), chain.text(2), chain.int64(3)});
    chain.reset();
    // An origin is always a strict prefix of its successor's id: shorter ids first.
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Row& a, const Row& b) { return a.id.size() < b.id.size(); });
    std::set<std::string> members{out.instruction_id};
    for (Row& c : candidates)
      if (members.count(c.origin)) {
        members.insert(c.id);
        rows.push_back(std::move(c));
      }
    bool pending = false, defaulted = false;
    for (const Row& row : rows) {
      const auto st = parse_instruction_state(row.state);
      if (!st) throw input_error(db.path(), 0, "sched_instructions.state",
                                 "instruction " + row.id + " has an unknown state '" + row.state + "'");
      if (*st == InstructionState::final) out.settled += row.settle;
      if (!is_terminal(*st) || *st == InstructionState::expired) pending = true;  // expired: still watched
      if (*st == InstructionState::defaulted) defaulted = true;
    }
    for (const auto& id : members)
      if (carried.count(id)) pending = true;  // waiting for the next cycle
    out.state = pending ? "pending" : defaulted ? "defaulted" : "final";
    any_pending = any_pending || pending;
    r.instructions.push_back(std::move(out));
  }
  r.complete = r.cycle_state == "closed" && !any_pending;
  return r;
}

}  // namespace marginet
