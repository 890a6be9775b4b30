#pragma once
// The settlement ledger (SPEC §8): an append-only, hash-chained log of every state change of
// the settlement scheduler, in SQLite (WAL, synchronous=FULL), with a Merkle root per cycle
// computed as RFC 6962 specifies.
//
// Entry i is the byte string (fields joined by '\n', docs/settlement.md):
//   "marginet-ledger-v1" \n seq \n cycle_id \n kind \n at \n prev_hash \n body
// hash_i = SHA-256(entry_i) (hex); prev_hash of entry 1 is 64 zeros, of entry i the hash of i-1.
// A cycle's Merkle tree has one leaf per entry of that cycle (in seq order), leaf =
// SHA-256(0x00 || entry). When a cycle closes its root is stored (table ledger_cycle_roots) and
// also appended as a ledger-level entry (cycle_id "", kind "cycle.root"), so the chain covers it.
//
// The ledger shares its SQLite connection with the scheduler's state tables, so one
// transaction records a batch of state changes and their entries together (durable or absent).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "service/db/sqlite.hpp"
#include "service/settlement/merkle.hpp"

namespace marginet {

struct LedgerEntry {
  std::int64_t seq = 0;
  std::string cycle_id;  // "" for ledger-level entries (cycle.root)
  std::string kind;      // e.g. "cycle.received", "instruction.state", "cycle.closed", "cycle.root"
  std::string at;        // ISO 8601 UTC time of the scheduler's clock
  std::string body;      // compact JSON
  std::string prev_hash; // hex
  std::string hash;      // hex, SHA-256 of entry_bytes()
};

/// The byte string that is hashed (chain) and Merkle-leafed (cycle tree).
std::string ledger_entry_bytes(const LedgerEntry& e);

struct LedgerVerifyReport {
  bool ok = true;
  std::int64_t entries = 0;
  std::int64_t cycles_checked = 0;   // closed cycles whose roots were recomputed
  std::int64_t first_bad_seq = 0;    // 0 when ok (or when the problem is not one entry)
  std::string message;               // what failed, naming the entry
};

struct InclusionProof {
  LedgerEntry entry;
  std::string entry_bytes;
  std::string leaf_hash;             // hex
  std::size_t leaf_index = 0;        // within the cycle's tree
  std::size_t tree_size = 0;
  std::vector<std::string> audit_path;  // hex, bottom-up
  std::string root;                  // hex
  bool cycle_closed = false;         // root is the cycle's recorded root (else: of its entries so far)
};

class Ledger {
 public:
  /// Creates the ledger tables when missing.
  explicit Ledger(SqliteDb& db);

  /// Appends one entry; must run inside a transaction of the shared connection.
  std::int64_t append(std::string_view cycle_id, std::string_view kind, std::string_view at,
                      std::string_view body);
  /// Computes the cycle's root over its entries, records it and appends a "cycle.root" entry.
  /// Inside a transaction. Returns the root (hex).
  std::string close_cycle(const std::string& cycle_id, std::string_view at);

  /// Re-reads the chain head (after a rolled-back transaction).
  void reload();

  std::int64_t size() const;  // number of entries
  std::optional<LedgerEntry> entry(std::int64_t seq) const;
  /// Entries with seq in [from, to] (to = 0: until the end).
  std::vector<LedgerEntry> entries(std::int64_t from = 1, std::int64_t to = 0) const;
  /// The recorded root of a closed cycle.
  std::optional<std::string> cycle_root(const std::string& cycle_id) const;

  /// Recomputes every hash, the chain and every closed cycle's root.
  LedgerVerifyReport verify() const;
  /// The inclusion proof of entry `seq` in its cycle's tree. input_error when no such entry
  /// or the entry is ledger-level.
  InclusionProof prove(std::int64_t seq) const;

 private:
  std::vector<LedgerEntry> cycle_entries(const std::string& cycle_id, std::int64_t upto_seq) const;

  SqliteDb& db_;
  std::unique_ptr<SqliteStatement> insert_;  // prepared once
  std::int64_t last_seq_ = 0;
  std::string last_hash_;
};

}  // namespace marginet
