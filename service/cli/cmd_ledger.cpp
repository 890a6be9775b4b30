// `marginet ledger show|verify|prove`: inspect and verify the settlement ledger (SPEC §8).
//
//   marginet ledger show   --ledger FILE [--from N] [--to N] [--cycle ID]   entries as csv/json
//   marginet ledger verify --ledger FILE    recomputes every hash, the chain and each closed
//                                           cycle's Merkle root; exit 0 "ok: ...", or exit 2
//                                           naming the first entry that does not match
//   marginet ledger prove ENTRY --ledger FILE   the RFC 6962 inclusion proof of entry ENTRY in
//                                           its cycle's tree, as JSON; check it with
//                                           scripts/verify_proof.py
//   marginet ledger backup FILE --ledger LEDGER a consistent copy of a ledger (also of a live
//                                           one: SQLite's online backup API, not `cp`, which
//                                           misses what is still in the WAL), then verified;
//                                           FILE must not exist

#include <nlohmann/json.hpp>

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/settlement/ledger.hpp"

namespace marginet::cli {

namespace {

struct LedgerOptions {
  std::string ledger;
  std::string backup_file;
  std::int64_t from = 1, to = 0;
  std::string cycle;
  std::int64_t entry = 0;
};

std::unique_ptr<SqliteDb> open_ledger(const std::string& path) {
  if (path.empty()) throw usage_error("ledger: --ledger FILE is required");
  auto db = std::make_unique<SqliteDb>(path, false);
  SqliteStatement q(*db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_entries'");
  if (!q.step()) throw input_error(path, 0, "", "not a marginet ledger (no ledger_entries table)");
  return db;
}

void run_show(const CommonOptions& common, const LedgerOptions& o) {
  auto db = open_ledger(o.ledger);
  Ledger ledger(*db);
  Table t;
  t.columns = {"seq", "cycle_id", "kind", "at", "body", "prev_hash", "hash"};
  for (const auto& e : ledger.entries(o.from, o.to)) {
    if (!o.cycle.empty() && e.cycle_id != o.cycle) continue;
    t.add_row({e.seq, e.cycle_id, e.kind, e.at, e.body, e.prev_hash, e.hash});
  }
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void run_verify(const CommonOptions& common, const LedgerOptions& o) {
  auto db = open_ledger(o.ledger);
  Ledger ledger(*db);
  const LedgerVerifyReport rep = ledger.verify();
  if (!rep.ok)
    throw input_error(o.ledger, 0, rep.first_bad_seq > 0 ? "entry " + std::to_string(rep.first_bad_seq) : "",
                      "ledger verification FAILED: " + rep.message);
  OutputSink sink(common.out);
  if (common.format == "json")
    sink.stream() << nlohmann::json({{"ok", true}, {"entries", rep.entries}, {"cycle_roots", rep.cycles_checked}}).dump()
                  << "\n";
  else
    sink.stream() << rep.message << "\n";
}

void run_prove(const CommonOptions& common, const LedgerOptions& o) {
  auto db = open_ledger(o.ledger);
  Ledger ledger(*db);
  const InclusionProof p = ledger.prove(o.entry);
  nlohmann::ordered_json j;
  j["entry_seq"] = p.entry.seq;
  j["cycle_id"] = p.entry.cycle_id;
  j["entry"] = p.entry_bytes;
  j["entry_hash"] = p.entry.hash;
  j["leaf_hash"] = p.leaf_hash;
  j["leaf_index"] = p.leaf_index;
  j["tree_size"] = p.tree_size;
  j["audit_path"] = p.audit_path;
  j["root"] = p.root;
  j["cycle_closed"] = p.cycle_closed;
  OutputSink sink(common.out);
  sink.stream() << j.dump(2) << "\n";
}

/// SQLite's online backup, 256 pages a step: a writer (the scheduler) goes on between steps, and
/// a step that meets its write restarts the copy, so the copy is one consistent snapshot.
void run_backup(const CommonOptions& common, const LedgerOptions& o) {
  auto src = open_ledger(o.ledger);
  std::error_code ec;
  if (std::filesystem::exists(o.backup_file, ec))
    throw input_error(o.backup_file, 0, "", "exists already: give a new file for the backup");
  sqlite3* dst = nullptr;
  if (sqlite3_open_v2(o.backup_file.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    const std::string why = dst ? sqlite3_errmsg(dst) : "out of memory";
    sqlite3_close(dst);
    throw input_error(o.backup_file, 0, "", "cannot create the backup: " + why);
  }
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src->handle(), "main");
  if (!b) {
    const std::string why = sqlite3_errmsg(dst);
    sqlite3_close(dst);
    std::filesystem::remove(o.backup_file, ec);
    throw input_error(o.backup_file, 0, "", "cannot start the backup: " + why);
  }
  int rc = SQLITE_OK;
  while ((rc = sqlite3_backup_step(b, 256)) == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
    if (rc != SQLITE_OK) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int pages = sqlite3_backup_pagecount(b);
  sqlite3_backup_finish(b);
  const std::string why = sqlite3_errmsg(dst);
  sqlite3_close(dst);
  if (rc != SQLITE_DONE) {
    std::filesystem::remove(o.backup_file, ec);
    throw std::runtime_error("ledger backup to " + o.backup_file + " failed: " + why);
  }
  // The copy is checked as `ledger verify` checks a ledger.
  SqliteDb copy(o.backup_file, false);
  Ledger ledger(copy);
  const LedgerVerifyReport rep = ledger.verify();
  if (!rep.ok) throw input_error(o.backup_file, 0, "", "the backup does not verify: " + rep.message);
  OutputSink sink(common.out);
  sink.stream() << "backup of " << o.ledger << " in " << o.backup_file << ": " << pages << " pages; " << rep.message
                << "\n";
}

}  // namespace

void add_ledger_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<LedgerOptions>();
  CLI::App* cmd = app.add_subcommand("ledger", "Inspect and verify the settlement ledger");
  cmd->require_subcommand(1);
  CLI::App* show = cmd->add_subcommand("show", "Print ledger entries");
  show->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  show->add_option("--from", o->from, "First entry")->capture_default_str();
  show->add_option("--to", o->to, "Last entry (0: the end)")->capture_default_str();
  show->add_option("--cycle", o->cycle, "Only this cycle's entries");
  show->callback([&common, o] { run_show(common, *o); });
  CLI::App* verify = cmd->add_subcommand("verify", "Recompute the hash chain and the cycle roots");
  verify->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  verify->callback([&common, o] { run_verify(common, *o); });
  CLI::App* prove = cmd->add_subcommand("prove", "Inclusion proof of an entry in its cycle's Merkle tree (JSON)");
  prove->add_option("ENTRY", o->entry, "Entry sequence number")->required();
  prove->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  prove->callback([&common, o] { run_prove(common, *o); });
  CLI::App* backup = cmd->add_subcommand("backup", "A consistent, verified copy of a ledger (also while the scheduler runs)");
  backup->add_option("FILE", o->backup_file, "The copy (must not exist)")->required();
  backup->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  backup->callback([&common, o] { run_backup(common, *o); });
}

}  // namespace marginet::cli
