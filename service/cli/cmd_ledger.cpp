// `marginet ledger show|verify|head|prove|backup`: inspect and verify the settlement ledger (SPEC §8).
//
//   marginet ledger show   --ledger FILE [--from N] [--to N] [--cycle ID]   entries as csv/json
//   marginet ledger verify --ledger FILE [--pubkey NAME.sign.pub] [--heads FILE]
//                                           recomputes every hash, the chain, each closed
//                                           cycle's Merkle root and each tree head's root
//                                           (heads of the ledger_heads table and of the heads
//                                           file, LEDGER.heads by default); with --pubkey every
//                                           head's signature, and every closed cycle covered by
//                                           a head. Exit 0 "ok: ...", or exit 2 naming the first
//                                           entry or head that does not match
//   marginet ledger head --ledger FILE [--size N]   the latest signed tree head (or that of
//                                           size N) as one JSON line; exit 1 when there is none
//   marginet ledger prove ENTRY --ledger FILE [--head-size N]   the RFC 6962 inclusion proof of
//                                           entry ENTRY in its cycle's tree, and (object "head")
//                                           in the whole ledger's tree under the latest signed
//                                           head covering it (or the head of size N), as JSON;
//                                           check it with scripts/verify_proof.py
//   marginet ledger backup FILE --ledger LEDGER a consistent copy of a ledger (also of a live
//                                           one: SQLite's online backup API, not `cp`, which
//                                           misses what is still in the WAL), then verified;
//                                           FILE must not exist

#include <nlohmann/json.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/state_check.hpp"
#include "service/settlement/signing.hpp"

namespace marginet::cli {

namespace {

struct LedgerOptions {
  std::string ledger;
  std::string backup_file;
  std::int64_t from = 1, to = 0;
  std::string cycle;
  std::int64_t entry = 0;
  std::string pubkey;            // verify: NAME.sign.pub
  std::string heads;             // verify: the heads file ("" = LEDGER.heads when it exists)
  std::int64_t head_size = 0;    // head --size, prove --head-size (0: the latest)
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
  LedgerVerifyOptions vo;
  if (!o.pubkey.empty()) vo.public_key = read_verify_key(o.pubkey);  // before the ledger: a bad key is usage
  vo.heads_file = o.heads;
  auto db = open_ledger(o.ledger);
  Ledger ledger(*db);
  const LedgerVerifyReport rep = ledger.verify(vo);
  if (!rep.ok) {
    const std::string where = rep.first_bad_seq > 0   ? "entry " + std::to_string(rep.first_bad_seq)
                              : rep.bad_head_size > 0 ? "head " + std::to_string(rep.bad_head_size)
                                                      : std::string();
    throw input_error(o.ledger, 0, where, "ledger verification FAILED: " + rep.message);
  }
  // The scheduler's state tables (when the file has them) must be what the ledger says.
  const StateCheckReport state = check_scheduler_state(*db, 50);
  if (!state.ok()) {
    std::string list;
    for (const auto& d : state.differences) list += "\n  " + d;
    throw input_error(o.ledger, 0, "state",
                      "ledger verification FAILED: the scheduler's state tables disagree with the ledger (" +
                          std::to_string(state.differences.size()) + (state.differences.size() >= 50 ? "+" : "") +
                          " difference(s)):" + list);
  }
  OutputSink sink(common.out);
  if (common.format == "json")
    sink.stream() << nlohmann::json({{"ok", true},
                                     {"entries", rep.entries},
                                     {"cycle_roots", rep.cycles_checked},
                                     {"heads", rep.heads},
                                     {"published_heads", rep.published_heads},
                                     {"heads_file", rep.heads_file},
                                     {"signatures_checked", rep.signatures_checked},
                                     {"state_rows_checked", state.rows_checked}})
                         .dump()
                  << "\n";
  else
    sink.stream() << rep.message
                  << (state.checked ? "; scheduler state matches the ledger (" + std::to_string(state.rows_checked) + " rows)"
                                    : std::string())
                  << "\n";
}

/// Exit 1 (not a usage or input error: the ledger is fine, it just has no head yet).
bool run_head(const CommonOptions& common, const LedgerOptions& o) {
  auto db = open_ledger(o.ledger);
  Ledger ledger(*db);
  std::optional<TreeHead> head;
  if (o.head_size > 0) {
    for (TreeHead& h : ledger.heads())
      if (h.size == o.head_size) head = std::move(h);
  } else {
    head = ledger.latest_head();
  }
  if (!head) {
    std::cerr << "marginet: ledger head: " << o.ledger << " has no signed tree head"
              << (o.head_size > 0 ? " of size " + std::to_string(o.head_size)
                                  : std::string(" (heads are signed at cycle closes by a scheduler given a signing key)"))
              << "\n";
    return false;
  }
  OutputSink sink(common.out);
  sink.stream() << tree_head_json(*head) << "\n";
  return true;
}

void run_prove(const CommonOptions& common, const LedgerOptions& o) {
  auto db = open_ledger(o.ledger);
  Ledger ledger(*db);
  const InclusionProof p = ledger.prove(o.entry, o.head_size);
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
  if (p.head) {
    // The same leaf in the whole ledger's tree (leaf seq-1 of head.size leaves), and the signed
    // head whose root the path leads to.
    nlohmann::ordered_json h;
    h["leaf_index"] = p.head->leaf_index;
    h["tree_size"] = p.head->tree_size;
    h["audit_path"] = p.head->audit_path;
    h["tree_head"] = nlohmann::ordered_json::parse(tree_head_json(p.head->head));
    j["head"] = std::move(h);
  }
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
  CLI::App* verify = cmd->add_subcommand(
      "verify", "Recompute the hash chain, the cycle roots and the tree heads; with --pubkey check their signatures");
  verify->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  verify->add_option("--pubkey", o->pubkey, "The CCP's public key (NAME.sign.pub, `marginet keygen --signing`)");
  verify->add_option("--heads", o->heads, "Published heads file (default: LEDGER.heads when it exists)");
  verify->callback([&common, o] { run_verify(common, *o); });
  CLI::App* head = cmd->add_subcommand("head", "The latest signed tree head as JSON (exit 1 when none)");
  head->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  head->add_option("--size", o->head_size, "The head of this size instead of the latest")->check(CLI::PositiveNumber);
  head->callback([&common, o] {
    if (!run_head(common, *o)) {
      std::cout.flush();
      std::exit(1);
    }
  });
  CLI::App* prove = cmd->add_subcommand(
      "prove", "Inclusion proof of an entry in its cycle's Merkle tree and under a signed tree head (JSON)");
  prove->add_option("ENTRY", o->entry, "Entry sequence number")->required();
  prove->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  prove->add_option("--head-size", o->head_size, "Prove under the signed head of this size (default: the latest)")
      ->check(CLI::PositiveNumber);
  prove->callback([&common, o] { run_prove(common, *o); });
  CLI::App* backup = cmd->add_subcommand("backup", "A consistent, verified copy of a ledger (also while the scheduler runs)");
  backup->add_option("FILE", o->backup_file, "The copy (must not exist)")->required();
  backup->add_option("--ledger", o->ledger, "Ledger (SQLite file)")->required();
  backup->callback([&common, o] { run_backup(common, *o); });
}

}  // namespace marginet::cli
