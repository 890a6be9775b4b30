// The tamper suite (issue 15): a settlement ledger with signed tree heads and the scheduler's
// state tables in one SQLite file is changed one row at a time — every column of every row
// changed, every row deleted, a row inserted, rows reordered, the ledger truncated — and each
// change must be detected and named by `ledger verify` with the CCP's public key and the
// published heads, or by the state check a scheduler runs before it starts. Then 1,000 random
// single-byte flips of the file: each is detected (SQLite's own integrity errors included) or
// leaves every row's content unchanged (a byte of free space, a page header field SQLite does
// not need); the test counts which.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "service/db/sqlite.hpp"
#include "service/settlement/chains/sim_chain.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/scheduler.hpp"
#include "service/settlement/signing.hpp"
#include "service/settlement/state_check.hpp"

namespace {

using namespace marginet;
namespace fs = std::filesystem;

constexpr double kT0 = 1719561600;  // 2024-06-28T08:00:00Z
constexpr std::int64_t kBtc = 100000000;

SettlementInstruction ins(const std::string& id, const std::string& member, Leg leg, std::int64_t amount,
                          ObligationKind kind = ObligationKind::net) {
  SettlementInstruction i;
  i.instruction_id = id;
  i.member = member;
  i.asset = "BTC";
  i.leg = leg;
  i.kind = kind;
  i.amount = amount;
  return i;
}

// The pristine file: three closed cycles (a member that cannot pay is rolled twice: carried
// obligations, a shortfall), every head signed and published, and a fourth cycle queued, so
// that every state table but sched_watch has rows (sched_watch: InsertedRowsAreDetected).
struct Pristine {
  fs::path dir;
  fs::path db_path, heads_path;
  VerifyKey public_key;
  std::string bytes;

  Pristine() {
    dir = fs::temp_directory_path() / ("marginet_tamper_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    db_path = dir / "ledger.sqlite";
    const SigningKey key = generate_signing_key();
    public_key = key.public_key;
    {
      SchedulerConfig cfg;
      cfg.assets["BTC"] = {8, kBtc};
      cfg.grace_seconds = 30;
      SimChainConfig chain;
      chain.name = "bitcoin-sim";
      chain.assets = {"BTC"};
      chain.finality_depth = 2;
      chain.seed = 3;
      chain.member_funding["BTC"] = 100 * kBtc;
      chain.ccp_funding["BTC"] = kBtc;
      chain.failing_members = {"M4"};
      cfg.sim_chains = {chain};
      SqliteDb db(db_path.string());
      SimChain sim(cfg.sim_chains[0], nullptr);
      SettlementScheduler sched(db, cfg, {&sim});
      sched.ledger().set_signing_key(key);
      double now = kT0;
      auto cycle = [&](const std::string& id, std::vector<SettlementInstruction> list) {
        SettlementCycle c;
        c.cycle_id = id;
        c.deadline = now + 20;
        c.assets = {{"BTC", 8}};
        c.instructions = std::move(list);
        return c;
      };
      sched.receive(cycle("c1", {ins("c1/M1/in", "M1", Leg::pay_in, 2 * kBtc), ins("c1/M2/out", "M2", Leg::pay_out, kBtc),
                                 ins("c1/M3/out", "M3", Leg::pay_out, kBtc)}),
                    now);
      // M4 cannot pay: rolled, and M5's pay-out is paid from liquidity / held.
      sched.receive(cycle("c2", {ins("c2/M4/in", "M4", Leg::pay_in, 3 * kBtc), ins("c2/M5/out", "M5", Leg::pay_out, 3 * kBtc),
                                 ins("c2/M1/call", "M1", Leg::pay_in, kBtc / 2, ObligationKind::margin_call)}),
                    now);
      for (int i = 0; i < 200 && !sched.idle(); ++i) sched.tick(now += 1);
      // M4's rolled pay-in fails again in c3: carried out, waiting for the next cycle.
      sched.receive(cycle("c3", {ins("c3/M2/in", "M2", Leg::pay_in, kBtc), ins("c3/M3/out", "M3", Leg::pay_out, kBtc)}), now);
      for (int i = 0; i < 200 && !sched.idle(); ++i) sched.tick(now += 1);
      // A queued cycle (received, not opened: the carried rows stay).
      sched.receive(cycle("c4", {ins("c4/M1/in", "M1", Leg::pay_in, kBtc), ins("c4/M2/out", "M2", Leg::pay_out, kBtc)}), now);
      sched.ledger().publish_heads();
      heads_path = sched.ledger().heads_path();
    }
    std::ifstream in(db_path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ~Pristine() { fs::remove_all(dir); }
};

Pristine& pristine() {
  static Pristine p;
  return p;
}

// A fresh copy of the pristine file to change.
fs::path fresh_copy(const std::string& name, const std::string& bytes) {
  const fs::path p = pristine().dir / (name + ".sqlite");
  fs::remove(p);
  fs::remove(fs::path(p.string() + "-wal"));
  fs::remove(fs::path(p.string() + "-shm"));
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

// What a verifier and a starting scheduler find: "" when nothing, else what was named.
std::string findings(const fs::path& file) {
  try {
    SqliteDb db(file.string());
    Ledger ledger(db);
    LedgerVerifyOptions opt;
    opt.public_key = pristine().public_key;
    opt.heads_file = pristine().heads_path.string();  // the published heads, kept elsewhere
    const LedgerVerifyReport rep = ledger.verify(opt);
    if (!rep.ok) return "ledger: " + rep.message;
    const StateCheckReport st = check_scheduler_state(db, 1);
    if (!st.ok()) return "state: " + st.differences.front();
    if (!st.checked) return "state: the scheduler's tables are gone";
    return "";
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();  // SQLite refused the file, or a row broke a reader
  }
}

// Every value of every table, as text, in rowid order: what "content unchanged" means.
std::string content_of(const fs::path& file) {
  SqliteDb db(file.string());
  std::string out;
  SqliteStatement tables(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name");
  std::vector<std::string> names;
  while (tables.step()) names.push_back(tables.text(0));
  for (const auto& t : names) {
    SqliteStatement q(db, "SELECT * FROM " + t + " ORDER BY rowid");
    out += "#" + t + "\n";
    while (q.step()) {
      for (int c = 0; c < q.columns(); ++c) out += q.text(c) + "|";
      out += "\n";
    }
  }
  return out;
}

struct Column {
  std::string name, type;
};

std::vector<Column> columns_of(SqliteDb& db, const std::string& table) {
  std::vector<Column> out;
  SqliteStatement q(db, "SELECT name, type FROM pragma_table_info(?)");
  q.bind(1, table);
  while (q.step()) out.push_back({q.text(0), q.text(1)});
  return out;
}

std::vector<std::int64_t> rowids_of(SqliteDb& db, const std::string& table) {
  std::vector<std::int64_t> out;
  SqliteStatement q(db, "SELECT rowid FROM " + table + " ORDER BY rowid");
  while (q.step()) out.push_back(q.int64(0));
  return out;
}

const std::vector<std::string> kTables = {"ledger_entries", "ledger_cycle_roots", "ledger_heads",    "sched_cycles",
                                          "sched_instructions", "sched_carried", "sched_liquidity", "sched_assets",
                                          "sched_watch"};

// Applies `sql` to a fresh copy; the finding (must not be empty).
std::string after(const std::string& sql) {
  const fs::path p = fresh_copy("t", pristine().bytes);
  {
    SqliteDb db(p.string());
    db.exec(sql);
  }
  return findings(p);
}

TEST(LedgerTamper, ThePristineFileVerifiesAndEveryTableHasRows) {
  const fs::path p = fresh_copy("pristine", pristine().bytes);
  EXPECT_EQ(findings(p), "");
  SqliteDb db(p.string());
  for (const auto& t : kTables) {
    if (t == "sched_watch") continue;  // only after a transfer outlives its cycle
    EXPECT_FALSE(rowids_of(db, t).empty()) << t;
  }
}

TEST(LedgerTamper, EveryChangeOfEveryColumnOfEveryRowIsDetectedAndNamed) {
  std::size_t changes = 0;
  std::vector<std::string> missed;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> rows;
  std::map<std::string, std::vector<Column>> cols;
  {
    const fs::path p = fresh_copy("list", pristine().bytes);
    SqliteDb db(p.string());
    for (const auto& t : kTables) {
      rows.emplace_back(t, rowids_of(db, t));
      cols[t] = columns_of(db, t);
    }
  }
  for (const auto& [t, ids] : rows)
    for (const std::int64_t id : ids)
      for (const Column& c : cols[t]) {
        // A different value of the same type: integers, reals +1.5, texts with a byte more.
        // (Integers + 1,000,003 rather than + 1: a key must not collide with its neighbour's.)
        const std::string set = c.type == "INTEGER" ? c.name + " = " + c.name + " + 1000003"
                                : c.type == "REAL"  ? c.name + " = " + c.name + " + 1.5"
                                                    : c.name + " = " + c.name + " || 'x'";
        const std::string f = after("UPDATE " + t + " SET " + set + " WHERE rowid = " + std::to_string(id));
        ++changes;
        if (f.empty()) missed.push_back(t + " rowid " + std::to_string(id) + " column " + c.name);
      }
  std::cout << changes << " single-column changes\n";
  EXPECT_GT(changes, 500u);
  std::string list;
  for (const auto& m : missed) list += "\n  " + m;
  EXPECT_TRUE(missed.empty()) << missed.size() << " changes went unseen:" << list;
}

TEST(LedgerTamper, EveryDeletedRowIsDetected) {
  std::vector<std::pair<std::string, std::int64_t>> rows;
  {
    const fs::path p = fresh_copy("list", pristine().bytes);
    SqliteDb db(p.string());
    for (const auto& t : kTables)
      for (const auto id : rowids_of(db, t)) rows.emplace_back(t, id);
  }
  std::vector<std::string> missed;
  for (const auto& [t, id] : rows)
    if (after("DELETE FROM " + t + " WHERE rowid = " + std::to_string(id)).empty())
      missed.push_back(t + " rowid " + std::to_string(id));
  EXPECT_GT(rows.size(), 80u);
  std::string list;
  for (const auto& m : missed) list += "\n  " + m;
  EXPECT_TRUE(missed.empty()) << list;
}

TEST(LedgerTamper, InsertedRowsAreDetected) {
  // A copy of a row under a new key, in every table; and an entry forged at the end of the chain.
  const std::map<std::string, std::string> inserts = {
      {"ledger_entries", "INSERT INTO ledger_entries SELECT seq + 1000, cycle_id, kind, at, body, prev_hash, hash FROM ledger_entries WHERE seq = 5"},
      {"ledger_cycle_roots", "INSERT INTO ledger_cycle_roots SELECT cycle_id || 'x', tree_size, last_seq, root FROM ledger_cycle_roots LIMIT 1"},
      {"ledger_heads", "INSERT INTO ledger_heads SELECT size + 1, root, at, signature, public_key FROM ledger_heads LIMIT 1"},
      {"sched_cycles", "INSERT INTO sched_cycles SELECT cycle_id || 'x', arrival + 10, deadline, state, digest, received_at, deadline_done FROM sched_cycles LIMIT 1"},
      {"sched_instructions", "INSERT INTO sched_instructions SELECT instruction_id || 'x', cycle_id, member, asset, leg, kind, amount, settle, state, attempt, height, origin, reason FROM sched_instructions WHERE cycle_id = 'c3' LIMIT 1"},
      {"sched_carried", "INSERT INTO sched_carried VALUES ('forged:rolled', 'forged', 'M9', 'BTC', 'pay_out', 'net', 100, 'rolled', 99)"},
      {"sched_liquidity", "INSERT INTO sched_liquidity VALUES ('ETH', 1000)"},
      {"sched_assets", "INSERT INTO sched_assets VALUES ('ETH', 9)"},
      {"sched_watch", "INSERT INTO sched_watch VALUES ('k#1', 'c4/M2/out', 'M2', 'BTC', 'pay_out', 'net', 5)"},
  };
  for (const auto& [t, sql] : inserts) EXPECT_NE(after(sql), "") << t;
}

TEST(LedgerTamper, ReorderedRowsAreDetected) {
  // Entries: two adjacent entries' contents swapped (their seq kept). Instructions: the rows of
  // a cycle in reverse (the order its pay-ins are submitted in). The other state tables are
  // keyed sets whose row order means nothing, so there is nothing to reorder in them.
  EXPECT_NE(after("UPDATE ledger_entries SET seq = -1 WHERE seq = 7; UPDATE ledger_entries SET seq = 7 WHERE seq = 8;"
                  " UPDATE ledger_entries SET seq = 8 WHERE seq = -1"),
            "");
  const std::string f = after(
      "CREATE TEMP TABLE t AS SELECT * FROM sched_instructions WHERE cycle_id = 'c3' ORDER BY rowid DESC;"
      " DELETE FROM sched_instructions WHERE cycle_id = 'c3'; INSERT INTO sched_instructions SELECT * FROM t;");
  EXPECT_NE(f.find("another order"), std::string::npos) << f;
}

TEST(LedgerTamper, TruncationEmptyingAndAFullRewriteAreDetected) {
  std::int64_t n = 0;
  {
    const fs::path p = fresh_copy("count", pristine().bytes);
    SqliteDb db(p.string());
    SqliteStatement q(db, "SELECT MAX(seq) FROM ledger_entries");
    q.step();
    n = q.int64(0);
  }
  ASSERT_GT(n, 20);
  // Every tail, with or without the rows that would make it consistent.
  for (std::int64_t keep = 0; keep < n; keep += 3) {
    const std::string k = std::to_string(keep);
    EXPECT_NE(after("DELETE FROM ledger_entries WHERE seq > " + k), "") << "kept " << keep;
    EXPECT_NE(after("DELETE FROM ledger_entries WHERE seq > " + k + "; DELETE FROM ledger_heads WHERE size > " + k +
                    "; DELETE FROM ledger_cycle_roots WHERE last_seq > " + k),
              "")
        << "kept " << keep << ", heads and roots cut to match";
  }
  const std::string emptied = after(
      "DELETE FROM ledger_entries; DELETE FROM ledger_heads; DELETE FROM ledger_cycle_roots; DELETE FROM sched_cycles;"
      " DELETE FROM sched_instructions; DELETE FROM sched_carried; DELETE FROM sched_liquidity; DELETE FROM sched_assets;"
      " DELETE FROM sched_watch");
  EXPECT_NE(emptied, "");
  std::cout << "emptied: " << emptied << "\n";
  // A full rewrite: the whole file replaced by a ledger of the same shape signed by another key.
  // (Anyone can build a consistent ledger; only the CCP's key signs its heads.)
  EXPECT_NE(after("UPDATE ledger_heads SET signature = substr(signature, 3) || substr(signature, 1, 2)"), "");
}

TEST(LedgerTamper, AThousandRandomByteFlipsAreEachDetectedOrChangeNoRow) {
  const std::string& good = pristine().bytes;
  const std::string reference = content_of(fresh_copy("ref", good));
  std::mt19937_64 rng(20261206);
  std::uniform_int_distribution<std::size_t> where(0, good.size() - 1);
  std::uniform_int_distribution<int> bit(0, 7);
  int detected = 0, unchanged = 0;
  std::vector<std::string> missed;
  for (int i = 0; i < 1000; ++i) {
    std::string bytes = good;
    const std::size_t at = where(rng);
    bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit(rng)));
    const fs::path p = fresh_copy("flip", bytes);
    if (!findings(p).empty()) {
      ++detected;
      continue;
    }
    std::string content;
    try {
      content = content_of(p);
    } catch (const std::exception&) {
      content = "(unreadable)";
    }
    if (content == reference) {
      ++unchanged;
      continue;
    }
    // Name the first row that differs.
    std::size_t k = 0;
    while (k < content.size() && k < reference.size() && content[k] == reference[k]) ++k;
    const std::size_t line = reference.rfind('\n', k) == std::string::npos ? 0 : reference.rfind('\n', k) + 1;
    missed.push_back("offset " + std::to_string(at) + ": " + reference.substr(line, reference.find('\n', k) - line) +
                     " became " + content.substr(line, content.find('\n', k) - line));
  }
  std::cout << "1000 byte flips: " << detected << " detected, " << unchanged
            << " changed no row's content (free space or page fields SQLite does not read), " << missed.size()
            << " changed a row unseen\n";
  std::string list;
  for (const auto& m : missed) list += "\n  " + m;
  EXPECT_TRUE(missed.empty()) << list;
  EXPECT_GT(detected, 0);
}

}  // namespace
