#include "service/settlement/ledger.hpp"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <stdexcept>

#include "models/errors.hpp"

namespace marginet {

namespace {

const std::string kZeroHash(64, '0');

constexpr const char* kHeadsTable =
    "CREATE TABLE IF NOT EXISTS ledger_heads ("
    " size INTEGER PRIMARY KEY, root TEXT NOT NULL, at TEXT NOT NULL, signature TEXT NOT NULL,"
    " public_key TEXT NOT NULL);";

bool is_lower_hex(std::string_view s, std::size_t digits) {
  if (s.size() != digits) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

TreeHead read_head(SqliteStatement& q) {
  return TreeHead{q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4)};
}

/// The first field in which two heads of the same size differ ("" when equal).
std::string differing_field(const TreeHead& a, const TreeHead& b) {
  if (a.root != b.root) return "root";
  if (a.at != b.at) return "at";
  if (a.signature != b.signature) return "signature";
  if (a.public_key != b.public_key) return "public_key";
  return "";
}

/// Writes all of `text` to `fd`; false on an error.
bool write_all(int fd, std::string_view text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<std::size_t>(w);
  }
  return true;
}

[[noreturn]] void io_failure(const std::string& path, const std::string& what) {
  throw std::runtime_error("heads file " + path + ": " + what + ": " + std::strerror(errno));
}

/// fsyncs the folder holding `path`, so that a file just created there survives a power cut.
void sync_parent_folder(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_failure(path, "cannot open its folder");
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) io_failure(path, "cannot sync its folder");
}

/// The whole file; nullopt when it does not exist.
std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    throw input_error(path, 0, "", "cannot open the heads file");
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw input_error(path, 0, "", "cannot read the heads file");
  return text;
}

/// A heads file: its complete lines as heads (line number, head). A last line without its
/// newline is a write cut short: it is not a head (`torn` says so). `problem` gets the first
/// malformed complete line's message (a damaged file; parsing stops there).
struct HeadsFile {
  std::vector<std::pair<long, TreeHead>> heads;
  std::size_t complete_bytes = 0;  // up to and including the last newline
  bool torn = false;
  std::string problem;
};

HeadsFile parse_heads_file(const std::string& path, const std::string& text) {
  HeadsFile f;
  const auto last_nl = text.rfind('\n');
  f.complete_bytes = last_nl == std::string::npos ? 0 : last_nl + 1;
  f.torn = f.complete_bytes < text.size();
  long n = 0;
  std::size_t pos = 0;
  while (pos < f.complete_bytes) {
    const std::size_t nl = text.find('\n', pos);
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    try {
      f.heads.emplace_back(n, parse_tree_head(line, path, n));
    } catch (const input_error& e) {
      f.problem = e.what();
      break;
    }
  }
  return f;
}

/// Where a head was read, for messages.
std::string head_source(long file_line) {
  return file_line > 0 ? "heads file line " + std::to_string(file_line) : "ledger_heads";
}

/// A read transaction around verify(opts) when the caller has none: one snapshot of the file.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(SqliteDb& db) : db_(db), own_(!db.in_transaction()) {
    if (own_) db_.exec("BEGIN DEFERRED");
  }
  ~ReadSnapshot() {
    if (own_) db_.rollback();  // it wrote nothing: ending it is all there is to do
  }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

 private:
  SqliteDb& db_;
  bool own_;
};

}  // namespace

void MerkleFrontier::append(const merkle::Hash& leaf_hash) {
  subtrees_.push_back(leaf_hash);
  // Each trailing one bit of the old size is a perfect subtree of the new leaf's size that now
  // has a right sibling: merge them (a binary counter's carry).
  for (std::uint64_t n = size_; (n & 1) == 1; n >>= 1) {
    const merkle::Hash right = subtrees_.back();
    subtrees_.pop_back();
    subtrees_.back() = merkle::node_hash(subtrees_.back(), right);
  }
  ++size_;
}

merkle::Hash MerkleFrontier::root() const {
  if (subtrees_.empty()) return merkle::sha256({});
  // RFC 6962 splits at the largest power of two below n: the largest subtree is the left
  // child, the rest of the tree (folded from the smallest) the right one.
  merkle::Hash r = subtrees_.back();
  for (std::size_t i = subtrees_.size() - 1; i-- > 0;) r = merkle::node_hash(subtrees_[i], r);
  return r;
}

std::string tree_head_message(std::int64_t size, std::string_view root_hex, std::string_view at) {
  std::string m = "marginet-tree-head-v1\n";
  m += std::to_string(size);
  m += '\n';
  m += root_hex;
  m += '\n';
  m += at;
  return m;
}

bool verify_tree_head(const TreeHead& head, const VerifyKey& key) {
  return verify_message_hex(key, tree_head_message(head.size, head.root, head.at), head.signature);
}

std::string tree_head_json(const TreeHead& head) {
  nlohmann::ordered_json j;
  j["size"] = head.size;
  j["root"] = head.root;
  j["at"] = head.at;
  j["signature"] = head.signature;
  j["public_key"] = head.public_key;
  return j.dump();
}

TreeHead parse_tree_head(std::string_view json_text, const std::string& file, long line) {
  const nlohmann::json j = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw input_error(file, line, "", "not a tree head (a JSON object)");
  auto text = [&](const char* field, std::size_t hex_digits) {
    const auto it = j.find(field);
    if (it == j.end() || !it->is_string()) throw input_error(file, line, field, "missing (a string)");
    std::string v = it->get<std::string>();
    if (hex_digits > 0 && !is_lower_hex(v, hex_digits))
      throw input_error(file, line, field, "expected " + std::to_string(hex_digits) + " lower-case hex digits");
    if (hex_digits == 0 && v.empty()) throw input_error(file, line, field, "empty");
    return v;
  };
  TreeHead h;
  const auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() ||
      (size->is_number_unsigned() ? size->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)
                                  : size->get<std::int64_t>() < 1))
    throw input_error(file, line, "size", "expected an integer >= 1");
  h.size = size->get<std::int64_t>();
  if (h.size < 1) throw input_error(file, line, "size", "expected an integer >= 1");
  h.root = text("root", 64);
  h.at = text("at", 0);
  h.signature = text("signature", 128);
  h.public_key = text("public_key", 64);
  return h;
}

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
  db_.exec(kHeadsTable);
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
  frontier_current_ = false;
}

void Ledger::ensure_frontier() const {
  if (frontier_current_) return;
  MerkleFrontier f;
  std::int64_t after = 0;
  if (committed_seq_ > 0) {
    // The committed state still holds when its last entry is still there, unchanged.
    SqliteStatement q(db_, "SELECT hash FROM ledger_entries WHERE seq = ?");
    q.bind(1, committed_seq_);
    if (q.step() && q.text(0) == committed_hash_) {
      f = committed_frontier_;
      after = committed_seq_;
    }
  }
  SqliteStatement q(db_,
                    "SELECT seq, cycle_id, kind, at, body, prev_hash, hash FROM ledger_entries"
                    " WHERE seq > ? ORDER BY seq");
  q.bind(1, after);
  std::int64_t seq = after;
  std::string hash = after > 0 ? committed_hash_ : kZeroHash;
  while (q.step()) {
    const LedgerEntry e{q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)};
    f.append(merkle::leaf_hash(ledger_entry_bytes(e)));
    seq = e.seq;
    hash = e.hash;
  }
  frontier_ = std::move(f);
  frontier_current_ = true;
  // Outside a transaction what was read is committed: a later rebuild may start from it.
  if (!db_.in_transaction()) {
    committed_frontier_ = frontier_;
    committed_seq_ = seq;
    committed_hash_ = hash;
  }
}

std::int64_t Ledger::append(std::string_view cycle_id, std::string_view kind, std::string_view at,
                            std::string_view body) {
  MARGINET_EXPECTS(db_.in_transaction(), "ledger appends run inside a transaction");
  ensure_frontier();
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
  frontier_.append(merkle::leaf_hash(ledger_entry_bytes(e)));
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
  if (signing_key_) {
    // A head says "entries 1..size have this root": with rows missing or misnumbered the
    // frontier's size and the last seq disagree, and no head is signed over such a ledger.
    if (frontier_.size() != static_cast<std::uint64_t>(last_seq_))
      throw input_error(db_.path(), 0, "ledger_entries",
                        "the entries are not numbered 1.." + std::to_string(last_seq_) + " (" +
                            std::to_string(frontier_.size()) +
                            " rows): no tree head is signed over a damaged ledger; run `marginet ledger verify`");
    TreeHead h;
    h.size = last_seq_;
    h.root = merkle::to_hex(frontier_.root());
    h.at = std::string(at);
    h.public_key = signing_key_->public_key.hex();
    h.signature = sign_message_hex(*signing_key_, tree_head_message(h.size, h.root, h.at));
    SqliteStatement hi(db_, "INSERT INTO ledger_heads(size, root, at, signature, public_key) VALUES (?,?,?,?,?)");
    hi.bind(1, h.size).bind(2, h.root).bind(3, h.at).bind(4, h.signature).bind(5, h.public_key);
    hi.run();
  }
  return root;
}

void Ledger::set_signing_key(SigningKey key) { signing_key_ = std::move(key); }

std::string Ledger::tree_root() const {
  ensure_frontier();
  return merkle::to_hex(frontier_.root());
}

std::string Ledger::heads_path() const { return db_.path() + ".heads"; }

std::vector<TreeHead> Ledger::heads() const {
  std::vector<TreeHead> out;
  SqliteStatement q(db_, "SELECT size, root, at, signature, public_key FROM ledger_heads ORDER BY size");
  while (q.step()) out.push_back(read_head(q));
  return out;
}

std::optional<TreeHead> Ledger::latest_head() const {
  SqliteStatement q(db_, "SELECT size, root, at, signature, public_key FROM ledger_heads ORDER BY size DESC LIMIT 1");
  if (!q.step()) return std::nullopt;
  return read_head(q);
}

std::optional<TreeHead> Ledger::head_of_size(std::int64_t size) const {
  SqliteStatement q(db_, "SELECT size, root, at, signature, public_key FROM ledger_heads WHERE size = ?");
  q.bind(1, size);
  if (!q.step()) return std::nullopt;
  return read_head(q);
}

std::size_t Ledger::publish_heads() {
  MARGINET_EXPECTS(!db_.in_transaction(), "heads are published once their transaction committed");
  // What the connection sees now is committed: a rebuild after a later rollback starts here.
  if (frontier_current_) {
    committed_frontier_ = frontier_;
    committed_seq_ = last_seq_;
    committed_hash_ = last_hash_;
  }
  const std::string path = heads_path();
  struct stat st {};
  const bool existed = ::stat(path.c_str(), &st) == 0;
  if (!existed && errno != ENOENT) io_failure(path, "cannot stat");
  const std::uint64_t bytes = existed ? static_cast<std::uint64_t>(st.st_size) : 0;

  std::vector<TreeHead> todo;
  if (heads_file_known_ && bytes == heads_file_bytes_) {
    // The file is as the last call left it: only heads larger than what it holds are new.
    SqliteStatement q(db_,
                      "SELECT size, root, at, signature, public_key FROM ledger_heads WHERE size > ? ORDER BY size");
    q.bind(1, published_max_size_);
    while (q.step()) todo.push_back(read_head(q));
  } else {
    // First call, or the file changed under us: read it all, against the table.
    heads_file_known_ = false;
    std::string text = read_file(path).value_or("");
    HeadsFile f = parse_heads_file(path, text);
    if (!f.problem.empty())
      throw input_error("the heads file is damaged, not publishing over it: " + f.problem);
    if (f.torn) {
      // A write cut short (the process died in it): cut the partial line off; its head, not
      // in the file yet, is written again below.
      const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) io_failure(path, "cannot open to repair its last line");
      const bool ok = ::ftruncate(fd, static_cast<off_t>(f.complete_bytes)) == 0 && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) io_failure(path, "cannot cut off its unterminated last line");
    }
    std::map<std::int64_t, TreeHead> table;
    for (TreeHead& h : heads()) {
      const std::int64_t size = h.size;
      table.emplace(size, std::move(h));
    }
    std::set<std::int64_t> published;
    std::int64_t max_size = 0;
    for (const auto& [line, h] : f.heads) {
      const auto it = table.find(h.size);
      // A published head is a promise to everyone holding a copy: never append heads that
      // contradict it (that would be the CCP signing two histories).
      if (it == table.end())
        throw input_error(path, line, "size",
                          "head of size " + std::to_string(h.size) + " is not in the ledger " + db_.path() +
                              ": the ledger was truncated or replaced; not publishing over this heads file");
      if (it->second != h)
        throw input_error(path, line, differing_field(it->second, h),
                          "head of size " + std::to_string(h.size) + " differs from the ledger's (" + db_.path() +
                              "): the ledger was rewritten or replaced; not publishing over this heads file");
      published.insert(h.size);
      max_size = std::max(max_size, h.size);
    }
    for (auto& [size, h] : table)
      if (!published.count(size)) todo.push_back(std::move(h));
    published_max_size_ = max_size;
    heads_file_bytes_ = f.complete_bytes;
    heads_file_known_ = true;
  }
  if (todo.empty()) return 0;

  std::string text;
  for (const TreeHead& h : todo) text += tree_head_json(h) + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) io_failure(path, "cannot open for appending");
  const bool ok = write_all(fd, text) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    heads_file_known_ = false;  // what is in it now is read again by the next call
    io_failure(path, "cannot append");
  }
  if (!existed) sync_parent_folder(path);
  heads_file_bytes_ += text.size();
  for (const TreeHead& h : todo) published_max_size_ = std::max(published_max_size_, h.size);
  return todo.size();
}

std::int64_t Ledger::size() const {
  SqliteStatement q(db_, "SELECT COUNT(*) FROM ledger_entries");
  q.step();
  return q.int64(0);
}

std::optional<LedgerEntry> Ledger::entry(std::int64_t seq) const {
  if (seq < 1) return std::nullopt;  // entries(0, 0) would mean "from 0, no end": entry 1
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

struct Ledger::ChainScan {
  std::map<std::int64_t, std::string> roots_at;          // size -> whole-ledger root (hex), asked for
  std::map<std::int64_t, std::string> cycle_root_entries; // seq of each cycle.root entry -> its cycle
};

LedgerVerifyReport Ledger::verify() const { return verify_chain(nullptr); }

LedgerVerifyReport Ledger::verify_chain(ChainScan* scan) const {
  LedgerVerifyReport rep;
  MerkleFrontier whole;  // the whole ledger's tree, for the roots `scan` asks for
  auto bad = [&rep](std::int64_t seq, const std::string& what) {
    if (!rep.ok) return;
    rep.ok = false;
    rep.first_bad_seq = seq;
    rep.message = seq > 0 ? "entry " + std::to_string(seq) + ": " + what : what;
  };

  // Pass 1: the chain. Collect leaves per cycle as we go.
  std::map<std::string, std::vector<merkle::Hash>> leaves;
  std::map<std::string, std::vector<std::int64_t>> leaf_seqs;  // the seq of each leaf, per cycle
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
      const merkle::Hash leaf = merkle::leaf_hash(bytes);
      if (scan) {
        whole.append(leaf);
        const auto at = scan->roots_at.find(e.seq);
        if (at != scan->roots_at.end()) at->second = merkle::to_hex(whole.root());
      }
      if (!e.cycle_id.empty()) {
        leaves[e.cycle_id].push_back(leaf);
        leaf_seqs[e.cycle_id].push_back(e.seq);
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
        if (scan) scan->cycle_root_entries[e.seq] = c;
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
    // The tree's extent as recorded (proofs are built up to last_seq): the seq of its last leaf,
    // and what the cycle.root entry says.
    const std::int64_t last_seq = q.int64(2);
    const std::int64_t expect_last = size == 0 ? 0 : leaf_seqs[c][size - 1];
    if (last_seq != expect_last || re->second.value("last_seq", std::int64_t{-1}) != last_seq ||
        re->second.value("tree_size", std::int64_t{-1}) != static_cast<std::int64_t>(size)) {
      bad(root_entry_seq[c], "cycle '" + c + "': the recorded tree ends at entry " + std::to_string(last_seq) +
                                 " with " + std::to_string(size) + " entries; the ledger and its cycle.root entry say entry " +
                                 std::to_string(expect_last));
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

LedgerVerifyReport Ledger::verify(const LedgerVerifyOptions& options) const {
  // The heads file first, then the database: the publisher appends only committed heads, so
  // every head read from the file is in the snapshot taken after it (no false "truncated"
  // while a scheduler runs).
  std::string file = options.heads_file;
  std::optional<std::string> text;
  if (!file.empty()) {
    text = read_file(file);
    if (!text) throw input_error(file, 0, "", "cannot open the heads file");
  } else {
    text = read_file(heads_path());
    if (text) file = heads_path();
  }
  const HeadsFile published = text ? parse_heads_file(file, *text) : HeadsFile{};

  ReadSnapshot snapshot(db_);
  const std::vector<TreeHead> table = heads();
  ChainScan scan;
  for (const TreeHead& h : table) scan.roots_at.emplace(h.size, "");
  for (const auto& [line, h] : published.heads) scan.roots_at.emplace(h.size, "");
  LedgerVerifyReport rep = verify_chain(&scan);
  rep.heads = static_cast<std::int64_t>(table.size());
  rep.published_heads = static_cast<std::int64_t>(published.heads.size());
  rep.heads_file = file;
  if (!rep.ok) return rep;
  auto fail = [&rep](std::int64_t head_size, std::int64_t seq, const std::string& what) {
    rep.ok = false;
    rep.bad_head_size = head_size;
    rep.first_bad_seq = seq;
    rep.message = what;
    return rep;
  };
  auto head_name = [](const TreeHead& h, long file_line) {
    return "head " + std::to_string(h.size) + " (" + head_source(file_line) + ")";
  };
  if (!published.problem.empty()) return fail(0, 0, "the heads file is damaged: " + published.problem);

  // Every head, the table's (line 0) and the file's, by size.
  std::vector<std::pair<long, const TreeHead*>> all;
  for (const TreeHead& h : table) all.emplace_back(0, &h);
  for (const auto& [line, h] : published.heads) all.emplace_back(line, &h);
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second->size < b.second->size; });

  for (const auto& [line, h] : all)
    if (h->size < 1) return fail(0, 0, head_name(*h, line) + ": a head covers at least one entry");
  // Signatures first: a forged head says nothing about the ledger.
  if (options.public_key) {
    const std::string key_hex = options.public_key->hex();
    for (const auto& [line, h] : all) {
      if (h->public_key != key_hex)
        return fail(h->size, 0, head_name(*h, line) + " names another signer (public key " + h->public_key +
                                    "), not " + key_hex);
      if (!verify_tree_head(*h, *options.public_key))
        return fail(h->size, 0, head_name(*h, line) + ": the signature is not valid under public key " + key_hex +
                                    ": a forged or altered head");
    }
  }
  if (rep.entries == 0 && !published.heads.empty()) {
    const TreeHead& last = *all.back().second;
    return fail(last.size, 0, "the ledger is empty but the heads file " + file + " holds " +
                                  std::to_string(published.heads.size()) + " heads (the largest of size " +
                                  std::to_string(last.size) + "): the ledger was emptied");
  }
  for (const auto& [line, h] : all)
    if (h->size > rep.entries)
      return fail(h->size, 0, head_name(*h, line) + " covers " + std::to_string(h->size) + " entries, the ledger has " +
                                  std::to_string(rep.entries) + ": the ledger was truncated");
  for (const auto& [line, h] : all) {
    const std::string& recomputed = scan.roots_at.at(h->size);
    if (recomputed != h->root)
      return fail(h->size, 0, head_name(*h, line) + ": its root " + h->root + " differs from the root " + recomputed +
                                  " of the ledger's first " + std::to_string(h->size) +
                                  " entries: the ledger was rewritten");
  }
  std::map<std::int64_t, const TreeHead*> by_size;
  for (const TreeHead& h : table) by_size[h.size] = &h;
  for (const auto& [line, h] : published.heads) {
    const auto it = by_size.find(h.size);
    if (it == by_size.end())
      return fail(h.size, 0, head_name(h, line) + " is not in the ledger's heads table: rows of ledger_heads were removed");
    if (*it->second != h)
      return fail(h.size, 0, "head " + std::to_string(h.size) + " differs between ledger_heads and heads file line " +
                                 std::to_string(line) + " (field '" + differing_field(*it->second, h) + "')");
  }
  const std::int64_t covered = table.empty() ? 0 : table.back().size;
  if (options.public_key) {
    // Every close signs a head right after its cycle.root entry: a closed cycle beyond the last
    // head was closed by someone without the key (or its head was removed).
    const auto after = scan.cycle_root_entries.upper_bound(covered);
    if (after != scan.cycle_root_entries.end())
      return fail(0, after->first, "entry " + std::to_string(after->first) + ": cycle '" + after->second +
                                       "' was closed after the last signed head (" +
                                       (covered > 0 ? "size " + std::to_string(covered) : std::string("none")) +
                                       "): no signed head covers it");
  }

  std::set<std::int64_t> in_file;
  for (const auto& [line, h] : published.heads) in_file.insert(h.size);
  std::string m = rep.message + "; " + std::to_string(rep.heads) + " tree heads";
  if (options.public_key)
    m += ", every signature valid under public key " + options.public_key->hex();
  else
    m += ", signatures not checked (no public key given)";
  if (rep.heads > 0)
    m += "; the latest covers entries 1.." + std::to_string(covered) + " of " + std::to_string(rep.entries);
  if (!file.empty()) {
    m += "; " + std::to_string(in_file.size()) + " published in " + file;
    const std::size_t unpublished = table.size() - std::min(table.size(), in_file.size());
    if (unpublished > 0) m += " (" + std::to_string(unpublished) + " not yet)";
    if (published.torn) m += " (an unterminated last line ignored)";
  } else if (rep.heads > 0) {
    m += "; no heads file";
  }
  rep.message = m;
  rep.signatures_checked = options.public_key.has_value();
  return rep;
}

InclusionProof Ledger::prove(std::int64_t seq, std::int64_t head_size) const {
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

  // The whole ledger's tree under a signed head: what a holder of the CCP's public key can check
  // without trusting any root published by other means.
  std::optional<TreeHead> head = head_size > 0 ? head_of_size(head_size) : latest_head();
  if (head_size > 0 && !head)
    throw input_error(db_.path(), 0, "head", "no signed tree head of size " + std::to_string(head_size));
  if (head && head->size < seq) {
    if (head_size > 0)
      throw input_error(db_.path(), 0, "head",
                        "the head of size " + std::to_string(head_size) + " does not cover entry " + std::to_string(seq));
    head.reset();  // the entry came after the latest head: no head covers it yet
  }
  if (head) {
    std::vector<merkle::Hash> all;
    all.reserve(static_cast<std::size_t>(head->size));
    SqliteStatement q(db_,
                      "SELECT seq, cycle_id, kind, at, body, prev_hash, hash FROM ledger_entries"
                      " WHERE seq <= ? ORDER BY seq");
    q.bind(1, head->size);
    while (q.step()) {
      const LedgerEntry x{q.int64(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)};
      if (x.seq != static_cast<std::int64_t>(all.size()) + 1) break;
      all.push_back(merkle::leaf_hash(ledger_entry_bytes(x)));
    }
    // A proof under a head the entries do not match would only fail at the checker.
    if (all.size() != static_cast<std::size_t>(head->size) || merkle::to_hex(merkle::tree_root(all)) != head->root)
      throw input_error(db_.path(), 0, "head",
                        "the ledger's first " + std::to_string(head->size) +
                            " entries do not match the signed head of that size: run `marginet ledger verify`");
    HeadInclusionProof hp;
    hp.leaf_index = static_cast<std::size_t>(seq - 1);
    hp.tree_size = all.size();
    for (const auto& h : merkle::audit_path(hp.leaf_index, all)) hp.audit_path.push_back(merkle::to_hex(h));
    hp.head = std::move(*head);
    p.head = std::move(hp);
  }
  return p;
}

}  // namespace marginet
