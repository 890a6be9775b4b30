#pragma once
// The settlement ledger (SPEC §8): an append-only, hash-chained log of every state change of
// the settlement scheduler, in SQLite (WAL, synchronous=FULL), with a Merkle root per cycle
// computed as RFC 6962 specifies, and signed tree heads over the whole ledger.
//
// Entry i is the byte string (fields joined by '\n', docs/settlement.md):
//   "marginet-ledger-v1" \n seq \n cycle_id \n kind \n at \n prev_hash \n body
// hash_i = SHA-256(entry_i) (hex); prev_hash of entry 1 is 64 zeros, of entry i the hash of i-1.
// A cycle's Merkle tree has one leaf per entry of that cycle (in seq order), leaf =
// SHA-256(0x00 || entry). When a cycle closes its root is stored (table ledger_cycle_roots) and
// also appended as a ledger-level entry (cycle_id "", kind "cycle.root"), so the chain covers it.
//
// Tree heads. The whole ledger is also one RFC 6962 tree: leaf i-1 = SHA-256(0x00 || entry_i)
// for every entry, ledger-level ones included. A tree head (size, root, at) commits to entries
// 1..size; signed with the CCP's Ed25519 key (signing.hpp) over tree_head_message(), it lets
// anyone holding the public key detect what the hash chain alone cannot: a ledger truncated,
// emptied or rewritten whole (hashes and roots recomputed) by someone who can write the file.
// With a signing key set, close_cycle() signs a head right after the cycle.root entry (table
// ledger_heads, same transaction); publish_heads() then copies the committed heads to the side
// file `<ledger>.heads`, one JSON object per line, which is what verifiers keep copies of.
// The root at a close is computed from a frontier kept in memory (the right edge of the tree,
// O(log n) hashes), not from the entries: O(log n) per close.
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
#include "service/settlement/signing.hpp"

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

/// The right edge of an RFC 6962 tree being appended to: the roots of its perfect subtrees,
/// largest first (one per bit set in size()). Appending is amortised O(1) hashes, the root
/// O(log n); the root equals merkle::tree_root over the same leaves.
class MerkleFrontier {
 public:
  void append(const merkle::Hash& leaf_hash);
  std::uint64_t size() const { return size_; }
  /// MTH over the leaves so far (SHA-256 of nothing when there are none).
  merkle::Hash root() const;

 private:
  std::uint64_t size_ = 0;
  std::vector<merkle::Hash> subtrees_;  // largest first; subtree k has 2^(bit k of size_) leaves
};

/// A tree head: the ledger's entries 1..size have the RFC 6962 root `root` (hex); `at` is the
/// ISO 8601 UTC time of the scheduler's clock at the cycle close that made it. `signature` (128
/// hex) is the Ed25519 signature of tree_head_message() by `public_key` (64 hex).
struct TreeHead {
  std::int64_t size = 0;
  std::string root;
  std::string at;
  std::string signature;
  std::string public_key;
  friend bool operator==(const TreeHead& a, const TreeHead& b) {
    return a.size == b.size && a.root == b.root && a.at == b.at && a.signature == b.signature &&
           a.public_key == b.public_key;
  }
  friend bool operator!=(const TreeHead& a, const TreeHead& b) { return !(a == b); }
};

/// The bytes a head's signature covers: "marginet-tree-head-v1\n" size "\n" root "\n" at.
std::string tree_head_message(std::int64_t size, std::string_view root_hex, std::string_view at);
/// True when the head's signature is valid under `key` (the head's own public_key field is not
/// trusted: a verifier brings the key).
bool verify_tree_head(const TreeHead& head, const VerifyKey& key);
/// One compact JSON object: {"size":..,"root":..,"at":..,"signature":..,"public_key":..}
/// (a line of the heads file, the output of `ledger head`).
std::string tree_head_json(const TreeHead& head);
/// Parses tree_head_json's format; input_error naming `file`, `line` and the field when a
/// field is missing or malformed (size >= 1, root 64 hex, signature 128 hex, public_key 64 hex).
TreeHead parse_tree_head(std::string_view json_text, const std::string& file, long line);

struct LedgerVerifyReport {
  bool ok = true;
  std::int64_t entries = 0;
  std::int64_t cycles_checked = 0;   // closed cycles whose roots were recomputed
  std::int64_t first_bad_seq = 0;    // 0 when ok (or when the problem is not one entry)
  std::string message;               // what failed, naming the entry
  // verify(LedgerVerifyOptions) only:
  std::int64_t heads = 0;            // heads in the ledger_heads table
  std::int64_t published_heads = 0;  // heads read from the heads file
  std::string heads_file;            // the heads file read ("" when none)
  bool signatures_checked = false;   // a public key was given and every signature checked
  std::int64_t bad_head_size = 0;    // the size of the head that failed (0: none, or not a head)
};

struct LedgerVerifyOptions {
  /// The CCP's public key: every head (table and file) must be signed by it, and every closed
  /// cycle must be covered by a head. Without it, signatures are not checked.
  std::optional<VerifyKey> public_key;
  /// The published heads: "" = `<ledger>.heads` when it exists (none otherwise); a file
  /// given here must exist (input_error when it cannot be read).
  std::string heads_file;
};

/// An entry's inclusion in the whole ledger's tree under a signed head (RFC 6962 PATH).
struct HeadInclusionProof {
  std::size_t leaf_index = 0;          // seq - 1
  std::size_t tree_size = 0;           // head.size
  std::vector<std::string> audit_path; // hex, bottom-up
  TreeHead head;
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
  /// Against a signed head covering the entry, when there is one (prove()).
  std::optional<HeadInclusionProof> head;
};

class Ledger {
 public:
  /// Creates the ledger tables when missing.
  explicit Ledger(SqliteDb& db);

  /// Appends one entry; must run inside a transaction of the shared connection.
  std::int64_t append(std::string_view cycle_id, std::string_view kind, std::string_view at,
                      std::string_view body);
  /// Computes the cycle's root over its entries, records it and appends a "cycle.root" entry;
  /// with a signing key, then signs a head over every entry up to that cycle.root entry (table
  /// ledger_heads). Inside a transaction. Returns the cycle's root (hex).
  std::string close_cycle(const std::string& cycle_id, std::string_view at);

  /// The key close_cycle() signs heads with (none: no heads are made).
  void set_signing_key(SigningKey key);

  /// Appends every committed head not yet in the heads file (`<ledger>.heads`), in size order,
  /// one JSON line each, and fsyncs it (and its folder when the file is new); returns how many
  /// lines were written. Outside a transaction (heads are published once committed). Idempotent
  /// and crash-safe: a head committed but not published is published by the next call; an
  /// unterminated last line (a write cut short) is cut off and written again. input_error when
  /// the file holds a head the ledger lacks or contradicts (a ledger truncated, replaced or
  /// rewritten under a published log: nothing is appended to it then); runtime_error when the
  /// file cannot be written.
  std::size_t publish_heads();
  /// `<ledger path>.heads`.
  std::string heads_path() const;
  /// Every head in ledger_heads, by size.
  std::vector<TreeHead> heads() const;
  /// The head of the largest size.
  std::optional<TreeHead> latest_head() const;

  /// Re-reads the chain head (after a rolled-back transaction). The frontier is rebuilt on its
  /// next use, from the last state known committed when the file still holds it (only the
  /// entries after it are read), else from entry 1.
  void reload();

  std::int64_t size() const;  // number of entries
  std::optional<LedgerEntry> entry(std::int64_t seq) const;
  /// Entries with seq in [from, to] (to = 0: until the end).
  std::vector<LedgerEntry> entries(std::int64_t from = 1, std::int64_t to = 0) const;
  /// The recorded root of a closed cycle.
  std::optional<std::string> cycle_root(const std::string& cycle_id) const;
  /// The RFC 6962 root over every entry appended so far (the frontier's, O(log n)), hex.
  std::string tree_root() const;

  /// Recomputes every hash, the chain and every closed cycle's root.
  LedgerVerifyReport verify() const;
  /// verify(), then the tree heads: each head's root recomputed from the ledger's first `size`
  /// entries; heads larger than the ledger (truncated), a heads file with heads while the ledger
  /// is empty (emptied), heads of the file missing from or disagreeing with the table; with a
  /// public key also every signature, and every closed cycle covered by a head. The heads file
  /// is read before the database (in one read transaction), so heads published meanwhile by a
  /// running scheduler are always in what is read.
  LedgerVerifyReport verify(const LedgerVerifyOptions& options) const;
  /// The inclusion proof of entry `seq` in its cycle's tree and, when a signed head covers it,
  /// in the whole ledger's tree under that head: the head of size `head_size`, or (0) the latest
  /// head. input_error when no such entry, the entry is ledger-level, or `head_size` names no
  /// head that covers the entry.
  InclusionProof prove(std::int64_t seq, std::int64_t head_size = 0) const;

 private:
  std::vector<LedgerEntry> cycle_entries(const std::string& cycle_id, std::int64_t upto_seq) const;
  struct ChainScan;
  /// The chain and cycle-root checks of verify(); with `scan`, also the whole-ledger root at
  /// each size `scan` asks for and the seq of each cycle.root entry.
  LedgerVerifyReport verify_chain(ChainScan* scan) const;
  /// Builds the frontier when reload() left it stale: from the committed state below when the
  /// file still holds it, else from entry 1. Readers that never need a root never pay for it.
  void ensure_frontier() const;
  /// The head of size `size` in ledger_heads.
  std::optional<TreeHead> head_of_size(std::int64_t size) const;

  SqliteDb& db_;
  std::unique_ptr<SqliteStatement> insert_;  // prepared once
  std::int64_t last_seq_ = 0;
  std::string last_hash_;
  // The frontier is a cache of what the entries determine, built on first use (hence mutable).
  mutable MerkleFrontier frontier_;          // over every entry up to last_seq_, when current
  mutable bool frontier_current_ = false;
  // A state known to be committed (built outside a transaction, or seen by publish_heads()):
  // the frontier is rebuilt from it after a rollback instead of from entry 1.
  mutable MerkleFrontier committed_frontier_;
  mutable std::int64_t committed_seq_ = 0;
  mutable std::string committed_hash_;       // the hash of entry committed_seq_
  std::optional<SigningKey> signing_key_;
  // publish_heads(): what the heads file held after the last call (scanned again when its
  // length is not what was left).
  bool heads_file_known_ = false;
  std::int64_t published_max_size_ = 0;
  std::uint64_t heads_file_bytes_ = 0;
};

}  // namespace marginet
