#include "service/settlement/ledger.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <map>

#include "models/errors.hpp"

namespace marginet {

namespace {

const std::string kZeroHash(64, '0');

}  // namespace

std::string ledger_entry_bytes(const LedgerEntry& e) {
  std::string out = "marginet-ledger-v1\n";
  out += std::to_string(e.seq);
  out += '\n';
  out += e.cycle_id;
  out += '\n';
  out += e.kind;
  out += '\n';
  out += e.at;
  out += '\n';
  out += e.prev_hash;
  out += '\n';
  out += e.body;
  return out;
}

Ledger::Ledger(SqliteDb& db) : db_(db) {
  if (sodium_init() < 0) MARGINET_FAIL("libsodium failed to initialise");
  db_.exec(
      "CREATE TABLE IF NOT EXISTS ledger_entries ("
      " seq INTEGER PRIMARY KEY, cycle_id TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,"
      " body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS ledger_entries_cycle ON ledger_entries(cycle_id, seq);"
      "CREATE TABLE IF NOT EXISTS ledger_cycle_roots ("
      " cycle_id TEXT PRIMARY KEY, tree_size INTEGER NOT NULL, last_seq INTEGER NOT NULL,"
      " root TEXT NOT NULL);");
  reload();
}

void Ledger::reload() {
  SqliteStatement q(db_, "SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1");
  if (q.step()) {
    last_seq_ = q.int64(0);
    last_hash_ = q.text(1);
  } else {
    last_seq_ = 0;
    last_hash_ = kZeroHash;
  }
}

std::int64_t Ledger::append(std::string_view cycle_id, std::string_view kind, std::string_view at,
                            std::string_view body) {
  MARGINET_EXPECTS(db_.in_transaction(), "ledger appends run inside a transaction");
  LedgerEntry e;
  e.seq = last_seq_ + 1;
  e.cycle_id = cycle_id;
  e.kind = kind;
  e.at = at;
  e.body = body;
  e.prev_hash = last_hash_;
  e.hash = merkle::to_hex(merkle::sha256(ledger_entry_bytes(e)));
  if (!insert_)
    insert_ = std::make_unique<SqliteStatement>(db_,
                                                "INSERT INTO ledger_entries(seq, cycle_id, kind, at, body, prev_hash, hash)"
                                                " VALUES (?,?,?,?,?,?,?)");
  SqliteStatement& ins = *insert_;
  ins.bind(1, e.seq).bind(2, e.cycle_id).bind(3, e.kind).bind(4, e.at).bind(5, e.body);
  ins.bind(6, e.prev_hash).bind(7, e.hash);
  ins.run();
  last_seq_ = e.seq;
  last_hash_ = e.hash;
  return e.seq;
}

std::vector<LedgerEntry> Ledger::cycle_entries(const std::string& cycle_id, std::int64_t upto_seq) const {
  std::vector<LedgerEntry> out;
  SqliteStatement q(db_,
                    "SELECT seq, cycle_id, kind, at, body, prev_hash, hash FROM ledger_entries"
                    " WHERE cycle_id = ? AND seq <= ? ORDER BY seq");
  q.bind(1, cycle_id).bind(2, upto_seq);
  while (q.step())
    out.push_back({q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)});
  return out;
}

std::string Ledger::close_cycle(const std::string& cycle_id, std::string_view at) {
  MARGINET_EXPECTS(!cycle_id.empty(), "a cycle to close");
  const std::vector<LedgerEntry> es = cycle_entries(cycle_id, last_seq_);
  std::vector<merkle::Hash> leaves;
  leaves.reserve(es.size());
  for (const LedgerEntry& e : es) leaves.push_back(merkle::leaf_hash(ledger_entry_bytes(e)));
  const std::string root = merkle::to_hex(merkle::tree_root(leaves));
  const std::int64_t last = es.empty() ? 0 : es.back().seq;
  SqliteStatement ins(db_,
                      "INSERT INTO ledger_cycle_roots(cycle_id, tree_size, last_seq, root) VALUES (?,?,?,?)");
  ins.bind(1, cycle_id).bind(2, static_cast<std::int64_t>(es.size())).bind(3, last).bind(4, root);
  ins.run();
  const nlohmann::json body = {{"cycle_id", cycle_id},
                               {"tree_size", es.size()},
                               {"last_seq", last},
                               {"root", root}};
  append("", "cycle.root", at, body.dump());
  return root;
}

std::int64_t Ledger::size() const {
  SqliteStatement q(db_, "SELECT COUNT(*) FROM ledger_entries");
  q.step();
  return q.int64(0);
}

std::optional<LedgerEntry> Ledger::entry(std::int64_t seq) const {
  auto es = entries(seq, seq);
  if (es.empty()) return std::nullopt;
  return es.front();
}

std::vector<LedgerEntry> Ledger::entries(std::int64_t from, std::int64_t to) const {
  std::vector<LedgerEntry> out;
  SqliteStatement q(db_,
                    "SELECT seq, cycle_id, kind, at, body, prev_hash, hash FROM ledger_entries"
                    " WHERE seq >= ? AND (? = 0 OR seq <= ?) ORDER BY seq");
  q.bind(1, from).bind(2, to).bind(3, to);
  while (q.step())
    out.push_back({q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)});
  return out;
}

std::optional<std::string> Ledger::cycle_root(const std::string& cycle_id) const {
  SqliteStatement q(db_, "SELECT root FROM ledger_cycle_roots WHERE cycle_id = ?");
  q.bind(1, cycle_id);
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

LedgerVerifyReport Ledger::verify() const {
  LedgerVerifyReport rep;
  auto bad = [&rep](std::int64_t seq, const std::string& what) {
    if (!rep.ok) return;
    rep.ok = false;
    rep.first_bad_seq = seq;
    rep.message = seq > 0 ? "entry " + std::to_string(seq) + ": " + what : what;
  };

  // Pass 1: the chain. Collect leaves per cycle as we go.
  std::map<std::string, std::vector<merkle::Hash>> leaves;
  std::map<std::string, std::int64_t> cycle_first_seq;
  std::map<std::string, nlohmann::json> root_entries;  // cycle -> body of its cycle.root entry
  std::map<std::string, std::int64_t> root_entry_seq;
  std::string prev = kZeroHash;
  std::int64_t expect_seq = 1;
  {
    SqliteStatement q(db_,
                      "SELECT seq, cycle_id, kind, at, body, prev_hash, hash FROM ledger_entries ORDER BY seq");
    while (q.step()) {
      LedgerEntry e{q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)};
      ++rep.entries;
      if (e.seq != expect_seq) {
        bad(e.seq, "sequence gap: expected entry " + std::to_string(expect_seq));
        break;
      }
      ++expect_seq;
      const std::string bytes = ledger_entry_bytes(e);
      const std::string h = merkle::to_hex(merkle::sha256(bytes));
      if (h != e.hash) {
        bad(e.seq, "hash does not match the entry's contents (cycle '" + e.cycle_id + "', kind '" +
                       e.kind + "')");
        break;
      }
      if (e.prev_hash != prev) {
        bad(e.seq, "prev_hash does not match the hash of entry " + std::to_string(e.seq - 1));
        break;
      }
      prev = e.hash;
      if (!e.cycle_id.empty()) {
        leaves[e.cycle_id].push_back(merkle::leaf_hash(bytes));
        cycle_first_seq.emplace(e.cycle_id, e.seq);
      } else if (e.kind == "cycle.root") {
        nlohmann::json body = nlohmann::json::parse(e.body, nullptr, false);
        if (body.is_discarded() || !body.contains("cycle_id") || !body["cycle_id"].is_string()) {
          bad(e.seq, "cycle.root entry without a cycle_id");
          break;
        }
        const std::string c = body["cycle_id"].get<std::string>();
        root_entries[c] = body;
        root_entry_seq[c] = e.seq;
      }
    }
  }
  if (!rep.ok) return rep;

  // Pass 2: the roots of closed cycles, from the entries up to the close.
  SqliteStatement q(db_, "SELECT cycle_id, tree_size, last_seq, root FROM ledger_cycle_roots ORDER BY last_seq");
  std::map<std::string, bool> seen;
  while (q.step() && rep.ok) {
    const std::string c = q.text(0);
    const auto size = static_cast<std::size_t>(q.int64(1));
    const std::string stored = q.text(3);
    seen[c] = true;
    auto it = leaves.find(c);
    std::vector<merkle::Hash> l = it == leaves.end() ? std::vector<merkle::Hash>{} : it->second;
    if (l.size() < size) {
      bad(0, "cycle '" + c + "': its recorded tree has " + std::to_string(size) + " entries, the ledger " +
                 std::to_string(l.size()));
      break;
    }
    l.resize(size);
    const std::string root = merkle::to_hex(merkle::tree_root(l));
    auto re = root_entries.find(c);
    if (re == root_entries.end()) {
      bad(0, "cycle '" + c + "' has a recorded root but no cycle.root entry");
      break;
    }
    if (!re->second.contains("root") || re->second["root"] != stored) {
      bad(root_entry_seq[c], "cycle.root entry of cycle '" + c + "' disagrees with the recorded root");
      break;
    }
    if (root != stored) {
      bad(0, "cycle '" + c + "': recomputed Merkle root " + root + " differs from the recorded " + stored);
      break;
    }
    ++rep.cycles_checked;
  }
  for (const auto& [c, body] : root_entries) {
    if (!rep.ok) break;
    if (!seen.count(c)) bad(root_entry_seq[c], "cycle.root entry for cycle '" + c + "' not in the roots table");
  }
  if (rep.ok) rep.message = "ok: " + std::to_string(rep.entries) + " entries, " +
                            std::to_string(rep.cycles_checked) + " cycle roots";
  return rep;
}

InclusionProof Ledger::prove(std::int64_t seq) const {
  const auto e = entry(seq);
  if (!e) throw input_error(db_.path(), 0, "ENTRY", "no ledger entry " + std::to_string(seq));
  if (e->cycle_id.empty())
    throw input_error(db_.path(), 0, "ENTRY",
                      "entry " + std::to_string(seq) + " is a ledger-level entry (" + e->kind +
                          "), in no cycle's tree");
  InclusionProof p;
  p.entry = *e;
  p.entry_bytes = ledger_entry_bytes(*e);
  std::int64_t upto = last_seq_;
  {
    SqliteStatement q(db_, "SELECT last_seq FROM ledger_cycle_roots WHERE cycle_id = ?");
    q.bind(1, e->cycle_id);
    if (q.step()) {
      upto = q.int64(0);
      p.cycle_closed = true;
    } else {
      SqliteStatement m(db_, "SELECT MAX(seq) FROM ledger_entries");
      m.step();
      upto = m.int64(0);
    }
  }
  const auto es = cycle_entries(e->cycle_id, upto);
  std::vector<merkle::Hash> leaves;
  leaves.reserve(es.size());
  for (std::size_t i = 0; i < es.size(); ++i) {
    leaves.push_back(merkle::leaf_hash(ledger_entry_bytes(es[i])));
    if (es[i].seq == seq) p.leaf_index = i;
  }
  p.tree_size = leaves.size();
  p.leaf_hash = merkle::to_hex(leaves[p.leaf_index]);
  for (const auto& h : merkle::audit_path(p.leaf_index, leaves)) p.audit_path.push_back(merkle::to_hex(h));
  // A closed cycle is proven against its recorded root (what was published); an open one
  // against the tree of its entries so far.
  p.root = p.cycle_closed ? cycle_root(e->cycle_id).value_or("") : merkle::to_hex(merkle::tree_root(leaves));
  return p;
}

}  // namespace marginet
