#include "service/clearing/sqlite_clearing_store.hpp"

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <set>
#include <thread>
#include <atomic>
#include <unordered_map>

#include "models/errors.hpp"

namespace marginet {

namespace {

// ---- schema --------------------------------------------------------------------------------

struct Migration {
  int version;
  const char* sql;
};

// Version 1: members and accounts, the journal, the idempotency keys, positions.
constexpr const char* kSchemaV1 = R"SQL(
CREATE TABLE members (
  name        TEXT PRIMARY KEY,
  pubkey_hex  TEXT,
  created_at  TEXT NOT NULL
);
CREATE TABLE member_keys (
  id          INTEGER PRIMARY KEY,
  member      TEXT NOT NULL REFERENCES members(name),
  pubkey_hex  TEXT,
  after_seq   INTEGER NOT NULL,
  set_at      TEXT NOT NULL
);
CREATE INDEX member_keys_by_member ON member_keys(member, id);
CREATE TABLE accounts (
  account     TEXT PRIMARY KEY,
  member      TEXT NOT NULL REFERENCES members(name),
  created_at  TEXT NOT NULL
);
CREATE TABLE journal (
  seq             INTEGER PRIMARY KEY,
  kind            TEXT NOT NULL CHECK (kind IN ('trade', 'cancel')),
  source          TEXT NOT NULL,
  trade_id        TEXT NOT NULL,
  account         TEXT NOT NULL REFERENCES accounts(account),
  instrument      TEXT NOT NULL,
  quantity_units  INTEGER NOT NULL,
  price           TEXT NOT NULL,
  time            TEXT NOT NULL,
  package_id      TEXT NOT NULL DEFAULT '',
  signature       TEXT,
  reason          TEXT,
  recorded_at     TEXT NOT NULL
);
CREATE INDEX journal_by_account ON journal(account, seq);
CREATE TRIGGER journal_append_only_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the clearing journal is append-only'); END;
CREATE TRIGGER journal_append_only_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the clearing journal is append-only'); END;
CREATE TABLE trades (
  source         TEXT NOT NULL,
  trade_id       TEXT NOT NULL,
  journal_seq    INTEGER NOT NULL UNIQUE REFERENCES journal(seq),
  digest         TEXT NOT NULL,
  cancelled_seq  INTEGER UNIQUE REFERENCES journal(seq),
  PRIMARY KEY (source, trade_id)
) WITHOUT ROWID;
CREATE TABLE positions (
  account         TEXT NOT NULL,
  instrument      TEXT NOT NULL,
  quantity_units  INTEGER NOT NULL,
  PRIMARY KEY (account, instrument)
) WITHOUT ROWID;
)SQL";

// Version 2: the pre-trade headroom of each account (NULL = no pre-trade check).
constexpr const char* kSchemaV2 = R"SQL(
ALTER TABLE accounts ADD COLUMN pretrade_headroom REAL;
)SQL";

// Version 3: collateral (assets, balances, movements), call runs and their calls, the outbox of
// settlement cycles and the instructions it sent (docs/clearing.md "Collateral and calls").
constexpr const char* kSchemaV3 = R"SQL(
CREATE TABLE assets (
  asset  TEXT PRIMARY KEY,
  scale  INTEGER NOT NULL CHECK (scale BETWEEN 0 AND 18)
) WITHOUT ROWID;
INSERT INTO assets(asset, scale) VALUES ('BTC', 8), ('ETH', 9), ('USD', 2), ('USDC', 6), ('USDT', 6);
CREATE TABLE collateral_balances (
  account       TEXT NOT NULL,
  asset         TEXT NOT NULL,
  amount_minor  INTEGER NOT NULL,
  PRIMARY KEY (account, asset)
) WITHOUT ROWID;
CREATE TABLE collateral_movements (
  seq           INTEGER PRIMARY KEY,
  account       TEXT NOT NULL,
  asset         TEXT NOT NULL,
  amount_minor  INTEGER NOT NULL,
  kind          TEXT NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'call_settled', 'withdrawal_returned')),
  reference     TEXT,
  recorded_at   TEXT NOT NULL,
  UNIQUE (kind, reference)
);
CREATE INDEX collateral_movements_by_account ON collateral_movements(account, seq);
CREATE TRIGGER collateral_movements_append_only_update BEFORE UPDATE ON collateral_movements
BEGIN SELECT RAISE(ABORT, 'collateral movements are append-only'); END;
CREATE TRIGGER collateral_movements_append_only_delete BEFORE DELETE ON collateral_movements
BEGIN SELECT RAISE(ABORT, 'collateral movements are append-only'); END;
CREATE TABLE call_runs (
  seq         INTEGER PRIMARY KEY,
  run_id      TEXT NOT NULL UNIQUE,
  kind        TEXT NOT NULL,
  at          TEXT NOT NULL,
  model       TEXT NOT NULL,
  asset       TEXT NOT NULL,
  scale       INTEGER NOT NULL,
  units       TEXT NOT NULL,
  cycle_id    TEXT,
  compute_ms  REAL NOT NULL
);
CREATE TABLE calls (
  run_id            TEXT NOT NULL,
  account           TEXT NOT NULL,
  im                REAL NOT NULL,
  mm                REAL NOT NULL,
  collateral_value  REAL NOT NULL,
  call_minor        INTEGER NOT NULL,
  instruction_id    TEXT UNIQUE,
  PRIMARY KEY (run_id, account)
) WITHOUT ROWID;
CREATE TABLE outbox (
  cycle_id         TEXT PRIMARY KEY,
  kind             TEXT NOT NULL CHECK (kind IN ('calls', 'net', 'withdrawal')),
  cycle_json       TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('pending', 'recorded', 'settled', 'rejected')),
  created_at       REAL NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  REAL NOT NULL,
  message          TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX outbox_by_state ON outbox(state, next_attempt_at);
CREATE TABLE sent_instructions (
  instruction_id  TEXT PRIMARY KEY,
  cycle_id        TEXT NOT NULL,
  purpose         TEXT NOT NULL CHECK (purpose IN ('call', 'withdrawal', 'net')),
  account         TEXT NOT NULL,
  asset           TEXT NOT NULL,
  amount_minor    INTEGER NOT NULL,
  state           TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'final', 'defaulted', 'rejected')),
  settled_minor   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX sent_instructions_by_cycle ON sent_instructions(cycle_id);
)SQL";

// Version 4: default management: default-fund sizings, contributions and their movements,
// declared defaults and their waterfall steps (docs/default-management.md).
constexpr const char* kSchemaV4 = R"SQL(
CREATE TABLE fund_sizings (
  seq          INTEGER PRIMARY KEY,
  sizing_id    TEXT NOT NULL UNIQUE,
  at           TEXT NOT NULL,
  currency     TEXT NOT NULL,
  scale        INTEGER NOT NULL,
  fund_minor   INTEGER NOT NULL,
  art42        REAL NOT NULL,
  cover2       REAL NOT NULL,
  scenario     TEXT NOT NULL,
  report_json  TEXT NOT NULL
);
CREATE TABLE fund_balances (
  member        TEXT PRIMARY KEY,
  amount_minor  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE fund_movements (
  seq           INTEGER PRIMARY KEY,
  member        TEXT NOT NULL,
  amount_minor  INTEGER NOT NULL,
  kind          TEXT NOT NULL CHECK (kind IN ('contribution', 'applied')),
  reference     TEXT NOT NULL,
  recorded_at   TEXT NOT NULL,
  UNIQUE (kind, reference, member)
);
CREATE TRIGGER fund_movements_append_only_update BEFORE UPDATE ON fund_movements
BEGIN SELECT RAISE(ABORT, 'default-fund movements are append-only'); END;
CREATE TRIGGER fund_movements_append_only_delete BEFORE DELETE ON fund_movements
BEGIN SELECT RAISE(ABORT, 'default-fund movements are append-only'); END;
CREATE TABLE defaults (
  seq            INTEGER PRIMARY KEY,
  default_id     TEXT NOT NULL UNIQUE,
  member         TEXT NOT NULL UNIQUE,
  reason         TEXT NOT NULL,
  declared_at    TEXT NOT NULL,
  currency       TEXT NOT NULL,
  scale          INTEGER NOT NULL,
  loss_minor     INTEGER NOT NULL,
  house_account  TEXT NOT NULL,
  report_json    TEXT NOT NULL
);
CREATE TRIGGER defaults_append_only_update BEFORE UPDATE ON defaults
BEGIN SELECT RAISE(ABORT, 'defaults are append-only'); END;
CREATE TRIGGER defaults_append_only_delete BEFORE DELETE ON defaults
BEGIN SELECT RAISE(ABORT, 'defaults are append-only'); END;
CREATE TABLE default_steps (
  default_id       TEXT NOT NULL,
  step             INTEGER NOT NULL,
  layer            TEXT NOT NULL,
  member           TEXT NOT NULL,
  available_minor  INTEGER NOT NULL,
  absorbed_minor   INTEGER NOT NULL,
  remaining_minor  INTEGER NOT NULL,
  PRIMARY KEY (default_id, step)
) WITHOUT ROWID;
CREATE TRIGGER default_steps_append_only_update BEFORE UPDATE ON default_steps
BEGIN SELECT RAISE(ABORT, 'default steps are append-only'); END;
CREATE TRIGGER default_steps_append_only_delete BEFORE DELETE ON default_steps
BEGIN SELECT RAISE(ABORT, 'default steps are append-only'); END;
)SQL";

// Applied in order; each entry brings the file to `version`. Append, never edit.
const Migration kMigrations[] = {
    {1, kSchemaV1},
    {2, kSchemaV2},
    {3, kSchemaV3},
    {4, kSchemaV4},
};
static_assert(sizeof kMigrations / sizeof kMigrations[0] == kClearingSchemaVersion,
              "one migration per schema version");

constexpr const char* kJournalColumns =
    "seq, kind, source, trade_id, account, instrument, quantity_units, price, time, package_id,"
    " signature, reason, recorded_at";

JournalEntry read_journal_row(const SqliteStatement& q) {
  JournalEntry e;
  e.seq = q.int64(0);
  e.kind = q.text(1) == "cancel" ? JournalKind::cancel : JournalKind::trade;
  e.source = q.text(2);
  e.trade_id = q.text(3);
  e.account = q.text(4);
  e.instrument = q.text(5);
  e.quantity_units = q.int64(6);
  e.price = q.text(7);
  e.time = q.text(8);
  e.package_id = q.text(9);
  e.signature_hex = q.text(10);
  e.reason = q.text(11);
  e.recorded_at = q.text(12);
  return e;
}

/// The trade a journal row of kind `trade` records (for its digest and signature).
Trade trade_of(const JournalEntry& e) {
  Trade t;
  t.source = e.source;
  t.trade_id = e.trade_id;
  t.account = e.account;
  t.instrument = e.instrument;
  t.quantity_units = e.quantity_units;
  t.price = e.price;
  t.time = e.time;
  t.package_id = e.package_id;
  t.signature_hex = e.signature_hex;
  return t;
}

}  // namespace

/// Now as ISO 8601 UTC with milliseconds: 2024-06-28T08:00:00.123Z.
std::string clearing_now_utc() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler imagines
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

namespace {

std::string now_utc() { return clearing_now_utc(); }

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

/// What identifies a clearing store file.
struct FileKind {
  std::int64_t application_id = 0;
  std::int64_t user_version = 0;
  std::int64_t objects = 0;  // rows of sqlite_master
};

/// input_error unless `k` is a clearing store this binary can open (or, for a writer, an empty
/// database to create one in).
void check_kind(const std::string& path, const FileKind& k, bool writer) {
  const bool fresh = k.application_id == 0 && k.user_version == 0 && k.objects == 0;
  if (fresh && writer) return;
  if (fresh) throw input_error(path, 0, "", "empty database: not a clearing store (open it as writer first)");
  if (k.application_id != kClearingApplicationId)
    throw input_error(path, 0, "",
                      "a SQLite database but not a marginet clearing store (application_id " +
                          std::to_string(k.application_id) + ")");
  if (k.user_version > kClearingSchemaVersion)
    throw input_error(path, 0, "",
                      "clearing store schema version " + std::to_string(k.user_version) +
                          " is newer than this marginet knows (" + std::to_string(kClearingSchemaVersion) +
                          "): use a newer marginet");
  if (!writer && k.user_version < kClearingSchemaVersion)
    throw input_error(path, 0, "",
                      "clearing store schema version " + std::to_string(k.user_version) +
                          " needs migrating to " + std::to_string(kClearingSchemaVersion) +
                          ": open it once as writer");
}

/// Looks at an existing, non-empty file through a read-only connection of its own, so that a
/// file that is not ours is refused before anything (SqliteDb's switch to WAL) changes it.
void probe_file(const std::string& path, bool writer) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) || std::filesystem::file_size(path, ec) == 0) return;
  sqlite3* db = nullptr;
  FileKind k;
  std::string error;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    error = db ? sqlite3_errmsg(db) : "out of memory";
  } else {
    sqlite3_busy_timeout(db, 10000);
    const char* queries[] = {"PRAGMA application_id", "PRAGMA user_version", "SELECT COUNT(*) FROM sqlite_master"};
    std::int64_t* outs[] = {&k.application_id, &k.user_version, &k.objects};
    for (int i = 0; i < 3 && error.empty(); ++i) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, queries[i], -1, &st, nullptr) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        error = sqlite3_errmsg(db);
      else
        *outs[i] = sqlite3_column_int64(st, 0);
      sqlite3_finalize(st);
    }
  }
  sqlite3_close(db);
  if (!error.empty()) throw input_error(path, 0, "", "not a readable SQLite database: " + error);
  check_kind(path, k, writer);
}


/// Resets a statement when leaving the scope, whatever happens.
struct ResetOnExit {
  SqliteStatement& s;
  ~ResetOnExit() { s.reset(); }
};

SubmitResult make_result(Outcome o, std::string message, int leg = -1) {
  SubmitResult r;
  r.outcome = o;
  r.message = std::move(message);
  r.bad_leg = leg;
  return r;
}

/// "trade 'T-1'" for a single trade, "leg 2 (trade 'T-3')" for a package leg.
std::string leg_label(const Submission& s, std::size_t i) {
  const std::string id = in_quotes(s.legs[i].trade_id);
  return s.legs.size() == 1 ? "trade " + id : "leg " + std::to_string(i) + " (trade " + id + ")";
}

}  // namespace

// ---- prepared statements of the writer -----------------------------------------------------

struct SqliteClearingStore::Statements {
  explicit Statements(const SqliteDb& db)
      : find_trade(db, "SELECT journal_seq, digest, cancelled_seq FROM trades WHERE source = ? AND trade_id = ?"),
        journal_row(db, std::string("SELECT ") + kJournalColumns + " FROM journal WHERE seq = ?"),
        account_owner(db,
                      "SELECT a.member, m.pubkey_hex FROM accounts a JOIN members m ON m.name = a.member"
                      " WHERE a.account = ?"),
        member_key(db, "SELECT pubkey_hex FROM members WHERE name = ?"),
        insert_member(db, "INSERT INTO members(name, pubkey_hex, created_at) VALUES (?, ?, ?)"),
        insert_account(db, "INSERT INTO accounts(account, member, created_at) VALUES (?, ?, ?)"),
        insert_journal(db,
                       "INSERT INTO journal(kind, source, trade_id, account, instrument, quantity_units,"
                       " price, time, package_id, signature, reason, recorded_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        insert_trade(db, "INSERT INTO trades(source, trade_id, journal_seq, digest) VALUES (?, ?, ?, ?)"),
        mark_cancelled(db, "UPDATE trades SET cancelled_seq = ? WHERE source = ? AND trade_id = ?"),
        get_position(db, "SELECT quantity_units FROM positions WHERE account = ? AND instrument = ?"),
        // position_of() knows whether the row exists: an INSERT or an UPDATE, one b-tree descent
        // each (an upsert costs two when the row exists).
        insert_position(db, "INSERT INTO positions(account, instrument, quantity_units) VALUES (?, ?, ?)"),
        update_position(db, "UPDATE positions SET quantity_units = ?3 WHERE account = ?1 AND instrument = ?2"),
        delete_position(db, "DELETE FROM positions WHERE account = ? AND instrument = ?") {}

  SqliteStatement find_trade, journal_row, account_owner, member_key, insert_member, insert_account,
      insert_journal, insert_trade, mark_cancelled, get_position, insert_position, update_position, delete_position;
};

// ---- open, schema, migrations --------------------------------------------------------------

SqliteClearingStore::SqliteClearingStore(const std::string& path, OpenMode mode, ClearingStoreOptions options)
    : path_(path), mode_(mode), options_(std::move(options)) {
  if (mode == OpenMode::writer) {
    lock_ = std::make_unique<WriterLock>(path, "clearing store");
    probe_file(path, true);  // before SqliteDb switches a foreign file to WAL
    // No connection mutex: every use of the connection is serialised by mutex_.
    db_ = std::make_unique<SqliteDb>(path, SqliteOptions{SqliteAccess::read_write_create, false});
    migrate();
    // The schema's REFERENCES are kept by this code rather than by SQLite's foreign-key checks
    // (an index probe per reference, about 5% of a captured trade): a journal entry's account is
    // registered before the entry (register_account), an account's member before the account
    // (register_account, add_account), a trade row takes the seq of the journal entry just
    // written, a key history row the member just checked or created. verify_journal() checks
    // every one of these references.
    db_->exec("PRAGMA foreign_keys = OFF");
    st_ = std::make_unique<Statements>(*db_);
  } else {
    probe_file(path, false);
    // SQLITE_OPEN_READONLY: the reader writes nothing, not even the switch to WAL (a writer made
    // the file WAL); see service/db/sqlite.hpp for what a read-only WAL connection needs.
    db_ = std::make_unique<SqliteDb>(path, SqliteOptions{SqliteAccess::read_only, false});
    check_file_kind(false);
  }
}

SqliteClearingStore::~SqliteClearingStore() = default;

void SqliteClearingStore::check_file_kind(bool writer) {
  auto pragma = [this](const char* sql) {
    SqliteStatement q(*db_, sql);
    q.step();
    return q.int64(0);
  };
  FileKind k;
  try {
    k.application_id = pragma("PRAGMA application_id");
    k.user_version = pragma("PRAGMA user_version");
    k.objects = pragma("SELECT COUNT(*) FROM sqlite_master");
  } catch (const logic_error& e) {
    throw input_error(path_, 0, "", std::string("not a readable SQLite database: ") + e.what());
  }
  check_kind(path_, k, writer);
}

void SqliteClearingStore::migrate() {
  db_->begin();
  try {
    check_file_kind(true);
    SqliteStatement q(*db_, "PRAGMA user_version");
    q.step();
    const int version = static_cast<int>(q.int64(0));
    q.reset();
    for (const Migration& m : kMigrations) {
      if (m.version <= version) continue;
      db_->exec(m.sql);
      db_->exec("PRAGMA user_version = " + std::to_string(m.version));
    }
    db_->exec("PRAGMA application_id = " + std::to_string(kClearingApplicationId));
    db_->commit();
  } catch (...) {
    db_->rollback();
    throw;
  }
}

int SqliteClearingStore::schema_version() const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_, "PRAGMA user_version");
  q.step();
  return static_cast<int>(q.int64(0));
}

void SqliteClearingStore::require_writer(const char* what) const {
  if (mode_ != OpenMode::writer)
    throw usage_error(std::string(what) + ": clearing store " + path_ + " is open read-only");
}

// ---- members and accounts ------------------------------------------------------------------

void SqliteClearingStore::record_key(const std::string& name, const std::optional<std::string>& key,
                                     const std::string& now) {
  std::int64_t last_seq = 0;
  {
    SqliteStatement q(*db_, "SELECT COALESCE(MAX(seq), 0) FROM journal");
    q.step();
    last_seq = q.int64(0);
  }
  SqliteStatement ins(*db_, "INSERT INTO member_keys(member, pubkey_hex, after_seq, set_at) VALUES (?, ?, ?, ?)");
  ins.bind(1, name);
  if (key) ins.bind(2, *key); else ins.bind_null(2);
  ins.bind(3, last_seq).bind(4, now);
  ins.run();
}

namespace {

std::optional<std::string> normalised_key(const std::string& member, const std::optional<std::string>& key) {
  if (!key) return std::nullopt;
  if (!is_valid_public_key_hex(*key))
    throw input_error("", 0, "public_key",
                      "member '" + member + "': an Ed25519 public key is 64 hex digits");
  std::string k = *key;
  for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return k;
}

}  // namespace

void SqliteClearingStore::add_member(const std::string& name, const std::optional<std::string>& public_key_hex) {
  require_writer("add_member");
  std::lock_guard<std::mutex> lk(mutex_);
  if (auto p = identifier_problem(name)) throw input_error("", 0, "member", in_quotes(name) + ": " + *p);
  const std::optional<std::string> key = normalised_key(name, public_key_hex);
  const std::string now = now_utc();
  forget_cached_rows();  // an unregistered account of this name now has a member (with this key)
  db_->begin();
  try {
    {
      SqliteStatement& q = st_->member_key;
      ResetOnExit r{q};
      q.bind(1, name);
      if (q.step()) throw input_error("", 0, "member", "member " + in_quotes(name) + " exists already");
    }
    SqliteStatement& ins = st_->insert_member;
    ins.bind(1, name);
    if (key) ins.bind(2, *key); else ins.bind_null(2);
    ins.bind(3, now);
    ins.run();
    if (key) record_key(name, key, now);
    db_->commit();
  } catch (...) {
    db_->rollback();
    throw;
  }
}

void SqliteClearingStore::set_member_key(const std::string& name, const std::optional<std::string>& public_key_hex) {
  require_writer("set_member_key");
  std::lock_guard<std::mutex> lk(mutex_);
  const std::optional<std::string> key = normalised_key(name, public_key_hex);
  const std::string now = now_utc();
  db_->begin();
  try {
    {
      SqliteStatement& q = st_->member_key;
      ResetOnExit r{q};
      q.bind(1, name);
      if (!q.step()) throw input_error("", 0, "member", "unknown member " + in_quotes(name));
    }
    forget_cached_rows();  // cached accounts of this member carry its old key
    SqliteStatement up(*db_, "UPDATE members SET pubkey_hex = ? WHERE name = ?");
    if (key) up.bind(1, *key); else up.bind_null(1);
    up.bind(2, name);
    up.run();
    record_key(name, key, now);
    db_->commit();
  } catch (...) {
    db_->rollback();
    throw;
  }
}

void SqliteClearingStore::add_account(const std::string& account, const std::string& member) {
  require_writer("add_account");
  std::lock_guard<std::mutex> lk(mutex_);
  if (auto p = identifier_problem(account)) throw input_error("", 0, "account", in_quotes(account) + ": " + *p);
  forget_cached_rows();  // the account may be cached as unregistered
  db_->begin();
  try {
    {
      SqliteStatement& q = st_->member_key;
      ResetOnExit r{q};
      q.bind(1, member);
      if (!q.step()) throw input_error("", 0, "member", "unknown member " + in_quotes(member));
    }
    {
      SqliteStatement& q = st_->account_owner;
      ResetOnExit r{q};
      q.bind(1, account);
      if (q.step())
        throw input_error("", 0, "account",
                          "account " + in_quotes(account) + " exists already (member " + in_quotes(q.text(0)) + ")");
    }
    st_->insert_account.bind(1, account).bind(2, member).bind(3, now_utc());
    st_->insert_account.run();
    db_->commit();
  } catch (...) {
    db_->rollback();
    throw;
  }
}

std::vector<MemberInfo> SqliteClearingStore::members() const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<MemberInfo> out;
  SqliteStatement q(*db_, "SELECT name, pubkey_hex, created_at FROM members ORDER BY name");
  while (q.step()) {
    MemberInfo m;
    m.name = q.text(0);
    if (!q.is_null(1)) m.public_key_hex = q.text(1);
    m.created_at = q.text(2);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<AccountInfo> SqliteClearingStore::accounts() const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<AccountInfo> out;
  SqliteStatement q(*db_, "SELECT account, member, pretrade_headroom FROM accounts ORDER BY account");
  while (q.step()) {
    AccountInfo a{q.text(0), q.text(1), std::nullopt};
    if (!q.is_null(2)) a.pretrade_headroom = q.real(2);
    out.push_back(std::move(a));
  }
  return out;
}

void SqliteClearingStore::set_pretrade_headroom(const std::string& account, std::optional<double> headroom) {
  require_writer("set_pretrade_headroom");
  if (headroom && (!std::isfinite(*headroom) || *headroom < 0))
    throw input_error("", 0, "pretrade_headroom",
                      "account " + in_quotes(account) + ": the pre-trade headroom must be a finite number >= 0");
  std::lock_guard<std::mutex> lk(mutex_);
  db_->begin();
  try {
    SqliteStatement up(*db_, "UPDATE accounts SET pretrade_headroom = ? WHERE account = ?");
    if (headroom) up.bind(1, *headroom); else up.bind_null(1);
    up.bind(2, account);
    up.run();
    if (sqlite3_changes(db_->handle()) == 0)
      throw input_error("", 0, "account", "unknown account " + in_quotes(account));
    db_->commit();
  } catch (...) {
    db_->rollback();
    throw;
  }
}

std::optional<double> SqliteClearingStore::pretrade_headroom(const std::string& account) const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_, "SELECT pretrade_headroom FROM accounts WHERE account = ?");
  q.bind(1, account);
  if (!q.step() || q.is_null(0)) return std::nullopt;
  return q.real(0);
}

void SqliteClearingStore::set_known_instruments(std::optional<std::unordered_set<std::string>> ids) {
  std::lock_guard<std::mutex> lk(mutex_);
  options_.instruments = std::move(ids);
}

// ---- trade capture -------------------------------------------------------------------------

const SqliteClearingStore::AccountOwner& SqliteClearingStore::owner_of(const std::string& account) {
  // The writer is the only one changing accounts and keys: what it read or wrote stays true
  // until it changes members or keys or rolls back, which clear the cache.
  if (const auto it = owners_.find(account); it != owners_.end()) return it->second;
  AccountOwner o;
  {
    SqliteStatement& q = st_->account_owner;
    ResetOnExit r{q};
    q.bind_static(1, account);
    if (q.step()) {
      o.member = q.text(0);
      if (!q.is_null(1)) o.public_key_hex = q.text(1);
      o.registered = o.member_exists = true;
      return owners_.emplace(account, std::move(o)).first->second;
    }
  }
  // Not registered: its first trade registers it, owned by the member of the same name (created
  // without a key when there is none).
  o.member = account;
  SqliteStatement& q = st_->member_key;
  ResetOnExit r{q};
  q.bind_static(1, account);
  if (q.step()) {
    o.member_exists = true;
    if (!q.is_null(0)) o.public_key_hex = q.text(0);
  }
  return owners_.emplace(account, std::move(o)).first->second;
}

void SqliteClearingStore::register_account(const std::string& account, const std::string& now) {
  AccountOwner& o = owners_.at(account);
  if (o.registered) return;
  if (!o.member_exists) {
    st_->insert_member.bind_static(1, account).bind_null(2).bind_static(3, now);
    st_->insert_member.run();
  }
  st_->insert_account.bind_static(1, account).bind_static(2, account).bind_static(3, now);
  st_->insert_account.run();
  o.registered = o.member_exists = true;
}

std::int64_t SqliteClearingStore::position_of(const std::string& account, const std::string& instrument) {
  // The writer's copy of the positions it has read or written (it is the only writer): each
  // row is read once, then every change is one statement.
  if (positions_.size() > kMaxCachedPositions) positions_.clear();
  const auto [it, fresh] = positions_.try_emplace(std::make_pair(account, instrument), 0);
  if (fresh) {
    SqliteStatement& q = st_->get_position;
    ResetOnExit r{q};
    q.bind_static(1, account).bind_static(2, instrument);
    if (q.step()) it->second = q.int64(0);
  }
  return it->second;
}

void SqliteClearingStore::write_position(const std::string& account, const std::string& instrument,
                                         std::int64_t units) {
  const std::int64_t before = position_of(account, instrument);  // cached: no read
  if (units == before) return;
  if (units == 0) {  // positions that come back to zero are not kept
    st_->delete_position.bind_static(1, account).bind_static(2, instrument);
    st_->delete_position.run();
  } else {
    SqliteStatement& q = before == 0 ? st_->insert_position : st_->update_position;
    q.bind_static(1, account).bind_static(2, instrument).bind(3, units);
    q.run();
    if (sqlite3_changes(db_->handle()) != 1)
      MARGINET_FAIL("position of account '" + account + "' in '" + instrument + "' was not where the writer had it");
  }
  positions_[std::make_pair(account, instrument)] = units;
}

std::optional<JournalEntry> SqliteClearingStore::journal_entry(std::int64_t seq) const {
  SqliteStatement& q = st_->journal_row;
  ResetOnExit r{q};
  q.bind(1, seq);
  if (!q.step()) return std::nullopt;
  return read_journal_row(q);
}

namespace {

/// Steps 1 and 2 of a submission, and its digests: everything that needs no store, so that a
/// large batch does it on two threads.
void prepare_submission(const Submission& s, const std::optional<std::unordered_set<std::string>>& instruments,
                        PreparedSubmission& p) {
  const std::size_t n = s.legs.size();
  if (n == 0) return void(p.refused = make_result(Outcome::rejected, "empty submission: no legs"));
  if (n > 100000)
    return void(p.refused = make_result(Outcome::rejected, "package of " + std::to_string(n) + " legs: too many"));

  // 1. Each leg's fields, then the known instruments.
  std::vector<Trade>& legs = p.legs;
  legs.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (auto e = validate_trade(s.legs[i], legs[i]))
      return void(p.refused = make_result(Outcome::rejected, leg_label(s, i) + ": " + e->field + " " + e->what,
                                          static_cast<int>(i)));
    if (legs[i].source == kDefaultTransferSource)
      return void(p.refused = make_result(Outcome::rejected,
                                          leg_label(s, i) + ": source " + in_quotes(legs[i].source) +
                                              " is reserved for the CCP's transfers of a defaulter's positions",
                                          static_cast<int>(i)));
    if (instruments && instruments->count(legs[i].instrument) == 0)
      return void(p.refused = make_result(Outcome::unknown_instrument,
                                          leg_label(s, i) + ": unknown instrument " + in_quotes(legs[i].instrument),
                                          static_cast<int>(i)));
  }

  // 2. The package's shape: one non-empty package_id, distinct trade ids.
  if (n > 1) {
    if (legs[0].package_id.empty())
      return void(p.refused = make_result(Outcome::rejected, leg_label(s, 0) + ": a package's legs need a package_id", 0));
    std::set<std::pair<std::string, std::string>> keys;
    for (std::size_t i = 0; i < n; ++i) {
      if (legs[i].package_id != legs[0].package_id)
        return void(p.refused = make_result(Outcome::rejected,
                                            leg_label(s, i) + ": package_id " + in_quotes(legs[i].package_id) +
                                                " differs from the package's " + in_quotes(legs[0].package_id),
                                            static_cast<int>(i)));
      if (!keys.emplace(legs[i].source, legs[i].trade_id).second)
        return void(p.refused = make_result(Outcome::rejected,
                                            leg_label(s, i) + ": trade id repeated within the package (source " +
                                                in_quotes(legs[i].source) + ")",
                                            static_cast<int>(i)));
    }
  }
  // The digest of each leg, computed once: idempotency compares it and the trade row keeps it.
  p.digests.resize(n);
  for (std::size_t i = 0; i < n; ++i) p.digests[i] = trade_digest_hex(legs[i]);
}

/// Below this many legs in a batch, preparing on a second thread costs more than it saves.
constexpr std::size_t kParallelPrepareLegs = 256;

}  // namespace

SubmitResult SqliteClearingStore::submit_one(const Submission& s, PreparedSubmission& p, const std::string& now) {
  if (p.refused) return std::move(*p.refused);
  const std::size_t n = s.legs.size();
  const std::vector<Trade>& legs = p.legs;
  const std::vector<std::string>& digests = p.digests;

  // 3. Idempotency: all new, or all the same as recorded (duplicate); anything else is a conflict.
  std::vector<std::int64_t> recorded_seqs(n, 0);  // 0 = new
  for (std::size_t i = 0; i < n; ++i) {
    std::string recorded_digest;
    {
      SqliteStatement& q = st_->find_trade;
      ResetOnExit r{q};
      q.bind_static(1, legs[i].source).bind_static(2, legs[i].trade_id);
      if (!q.step()) continue;
      recorded_seqs[i] = q.int64(0);
      recorded_digest = q.text(1);
    }
    if (recorded_digest == digests[i]) continue;
    // Name what differs.
    std::string diff;
    if (const auto e = journal_entry(recorded_seqs[i])) {
      const Trade was = trade_of(*e);
      auto cmp = [&diff](const char* field, const std::string& now, const std::string& before) {
        if (now == before) return;
        if (!diff.empty()) diff += ", ";
        diff += std::string(field) + " " + in_quotes(now) + " (recorded " + in_quotes(before) + ")";
      };
      cmp("account", legs[i].account, was.account);
      cmp("instrument", legs[i].instrument, was.instrument);
      cmp("quantity", legs[i].quantity(), was.quantity());
      cmp("price", legs[i].price, was.price);
      cmp("time", legs[i].time, was.time);
      cmp("package_id", legs[i].package_id, was.package_id);
    }
    return make_result(Outcome::conflict,
                       leg_label(s, i) + " of source " + in_quotes(legs[i].source) +
                           " was recorded with other contents: " + (diff.empty() ? "digest differs" : diff),
                       static_cast<int>(i));
  }
  std::size_t recorded = 0;
  for (std::int64_t seq : recorded_seqs) recorded += seq != 0;
  if (recorded == n) {
    SubmitResult r = make_result(Outcome::duplicate, n == 1 ? "recorded before" : "package recorded before");
    r.journal_seqs = recorded_seqs;
    return r;
  }
  if (recorded > 0) {
    std::size_t old_leg = 0, new_leg = 0;
    for (std::size_t i = 0; i < n; ++i) (recorded_seqs[i] != 0 ? old_leg : new_leg) = i;
    return make_result(Outcome::conflict,
                       "package " + in_quotes(legs[0].package_id) + " partly recorded: " + leg_label(s, old_leg) +
                           " is recorded, " + leg_label(s, new_leg) + " is new",
                       static_cast<int>(new_leg));
  }

  // 4. Every check that needs the store, leg by leg in order, before anything is written (so
  // that a refused submission leaves no trace without a savepoint to roll back): the account's
  // owner and key, the signature, the position each leg brings (legs of one package may add to
  // the same position) and its overflow.
  std::vector<std::int64_t> new_units(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Trade& t = legs[i];
    const AccountOwner& owner = owner_of(t.account);
    if (member_in_default(owner.member))
      return make_result(Outcome::rejected,
                         leg_label(s, i) + ": member " + in_quotes(owner.member) + " of account " + in_quotes(t.account) +
                             " is in default: it captures no more trades",
                         static_cast<int>(i));
    if (owner.public_key_hex) {
      std::string why;
      if (t.signature_hex.empty())
        why = "member " + in_quotes(owner.member) + " has a public key: the trade must be signed";
      else if (!verify_trade_signature(t, *owner.public_key_hex))
        why = "the signature does not verify with member " + in_quotes(owner.member) + "'s key";
      if (!why.empty()) return make_result(Outcome::bad_signature, leg_label(s, i) + ": " + why, static_cast<int>(i));
    }
    std::int64_t before = 0;
    std::size_t j = i;
    while (j-- > 0)
      if (legs[j].account == t.account && legs[j].instrument == t.instrument) break;
    before = j < i ? new_units[j] : position_of(t.account, t.instrument);
    if (!checked_add(before, t.quantity_units, new_units[i]))
      return make_result(Outcome::rejected,
                         leg_label(s, i) + ": the position of account " + in_quotes(t.account) + " in " +
                             in_quotes(t.instrument) + " would overflow",
                         static_cast<int>(i));
  }

  // 5. Record: accounts, journal, idempotency keys, positions. Nothing here refuses the
  // submission; an exception is a failure of the store and rolls the whole batch back.
  SubmitResult result = make_result(Outcome::recorded, "");
  result.journal_seqs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Trade& t = legs[i];
    register_account(t.account, now);
    // Texts bound in place (bind_static): `legs`, `digests` and `now` outlive each run().
    SqliteStatement& ins = st_->insert_journal;
    ins.bind_static(1, std::string_view("trade")).bind_static(2, t.source).bind_static(3, t.trade_id);
    ins.bind_static(4, t.account).bind_static(5, t.instrument).bind(6, t.quantity_units);
    ins.bind_static(7, t.price).bind_static(8, t.time).bind_static(9, t.package_id);
    if (t.signature_hex.empty()) ins.bind_null(10); else ins.bind_static(10, t.signature_hex);
    ins.bind_null(11).bind_static(12, now);
    ins.run();
    const std::int64_t seq = sqlite3_last_insert_rowid(db_->handle());
    st_->insert_trade.bind_static(1, t.source).bind_static(2, t.trade_id).bind(3, seq).bind_static(4, digests[i]);
    st_->insert_trade.run();
    write_position(t.account, t.instrument, new_units[i]);
    result.journal_seqs.push_back(seq);
  }
  return result;
}

std::vector<SubmitResult> SqliteClearingStore::submit(const std::vector<Submission>& batch) {
  require_writer("submit");
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<SubmitResult> results;
  results.reserve(batch.size());
  if (batch.empty()) return results;
  // Steps 1-2 and the digests need no store: for a large batch a second thread prepares the
  // submissions in order while this one records those already prepared (a pipeline).
  std::vector<PreparedSubmission> prepared(batch.size());
  std::size_t legs = 0;
  for (const Submission& s : batch) legs += s.legs.size();
  std::atomic<std::size_t> ready{0};  // submissions [0, ready) are prepared
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::thread helper;
  if (legs >= kParallelPrepareLegs && batch.size() >= 2) {
    helper = std::thread([&] {
      try {
        for (std::size_t i = 0; i < batch.size() && !stop.load(std::memory_order_relaxed); ++i) {
          prepare_submission(batch[i], options_.instruments, prepared[i]);
          ready.store(i + 1, std::memory_order_release);
        }
      } catch (...) {
        failure = std::current_exception();
        ready.store(batch.size() + 1, std::memory_order_release);  // wakes the recorder: it rethrows
      }
    });
  } else {
    for (std::size_t i = 0; i < batch.size(); ++i) prepare_submission(batch[i], options_.instruments, prepared[i]);
    ready.store(batch.size(), std::memory_order_release);
  }
  struct JoinOnExit {
    std::thread& t;
    std::atomic<bool>& stop;
    ~JoinOnExit() {
      stop.store(true, std::memory_order_relaxed);
      if (t.joinable()) t.join();
    }
  } join_on_exit{helper, stop};
  const std::string now = now_utc();
  db_->begin();
  try {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      std::size_t r = ready.load(std::memory_order_acquire);
      while (r <= i) {
        std::this_thread::yield();
        r = ready.load(std::memory_order_acquire);
      }
      if (r > batch.size()) std::rethrow_exception(failure);
      results.push_back(submit_one(batch[i], prepared[i], now));
    }
    db_->commit();
  } catch (...) {
    db_->rollback();
    forget_cached_rows();
    throw;
  }
  return results;
}

SubmitResult SqliteClearingStore::cancel(const CancelRequest& req) {
  require_writer("cancel");
  std::lock_guard<std::mutex> lk(mutex_);
  const std::string label = "trade " + in_quotes(req.trade_id) + " of source " + in_quotes(req.source);
  if (identifier_problem(req.source) || identifier_problem(req.trade_id))
    return make_result(Outcome::not_found, label + ": no such trade");
  if (!req.reason.empty())
    if (auto p = identifier_problem(req.reason, 1024)) return make_result(Outcome::rejected, label + ": reason " + *p);
  const std::string now = now_utc();
  const std::string time = req.time.empty() ? now : req.time;
  if (!is_valid_utc_time(time))
    return make_result(Outcome::rejected, label + ": time " + in_quotes(time) + " is not an ISO 8601 UTC time");

  db_->begin();
  try {
    std::int64_t trade_seq = 0;
    std::optional<std::int64_t> cancelled;
    {
      SqliteStatement& q = st_->find_trade;
      ResetOnExit r{q};
      q.bind(1, req.source).bind(2, req.trade_id);
      if (q.step()) {
        trade_seq = q.int64(0);
        if (!q.is_null(2)) cancelled = q.int64(2);
      }
    }
    SubmitResult result;
    const std::optional<JournalEntry> e = trade_seq ? journal_entry(trade_seq) : std::nullopt;
    std::int64_t reversal = 0;
    if (trade_seq == 0) {
      result = make_result(Outcome::not_found, label + ": no such trade");
    } else if (cancelled) {
      result = make_result(Outcome::duplicate, label + ": cancelled before");
      result.journal_seqs = {*cancelled};
    } else if (!e) {
      MARGINET_FAIL("trade row of " + label + " points to missing journal entry " + std::to_string(trade_seq));
    } else if (std::int64_t units = 0; !checked_sub(0, e->quantity_units, reversal) ||
                                        !checked_add(position_of(e->account, e->instrument), reversal, units)) {
      db_->rollback();
      forget_cached_rows();
      return make_result(Outcome::rejected, label + ": the position of account " + in_quotes(e->account) + " in " +
                                                in_quotes(e->instrument) + " would overflow");
    } else {
      SqliteStatement& ins = st_->insert_journal;
      ins.bind(1, std::string_view("cancel")).bind(2, e->source).bind(3, e->trade_id).bind(4, e->account);
      ins.bind(5, e->instrument).bind(6, reversal).bind(7, e->price).bind(8, time);
      ins.bind(9, e->package_id).bind_null(10).bind(11, req.reason).bind(12, now);
      ins.run();
      const std::int64_t seq = sqlite3_last_insert_rowid(db_->handle());
      st_->mark_cancelled.bind(1, seq).bind(2, req.source).bind(3, req.trade_id);
      st_->mark_cancelled.run();
      write_position(e->account, e->instrument, units);  // `units`: the position after the reversal
      result = make_result(Outcome::recorded, "");
      result.journal_seqs = {seq};
    }
    db_->commit();
    return result;
  } catch (...) {
    db_->rollback();
    forget_cached_rows();
    throw;
  }
}

// ---- queries -------------------------------------------------------------------------------

std::vector<JournalEntry> SqliteClearingStore::trades(const JournalFilter& f) const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::string sql = std::string("SELECT ") + kJournalColumns + " FROM journal WHERE seq > ?";
  if (!f.account.empty()) sql += " AND account = ?";
  if (!f.instrument.empty()) sql += " AND instrument = ?";
  sql += " ORDER BY seq";
  if (f.limit > 0) sql += " LIMIT ?";
  SqliteStatement q(*db_, sql);
  int i = 1;
  q.bind(i++, f.after_seq);
  if (!f.account.empty()) q.bind(i++, f.account);
  if (!f.instrument.empty()) q.bind(i++, f.instrument);
  if (f.limit > 0) q.bind(i++, f.limit);
  std::vector<JournalEntry> out;
  while (q.step()) out.push_back(read_journal_row(q));
  return out;
}

std::vector<PositionRow> SqliteClearingStore::positions(const std::string& account) const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::string sql = "SELECT account, instrument, quantity_units FROM positions";
  if (!account.empty()) sql += " WHERE account = ?";
  sql += " ORDER BY account, instrument";
  SqliteStatement q(*db_, sql);
  if (!account.empty()) q.bind(1, account);
  std::vector<PositionRow> out;
  while (q.step()) out.push_back({q.text(0), q.text(1), q.int64(2)});
  return out;
}

PositionMap SqliteClearingStore::rebuild_positions_from_journal() const {
  std::lock_guard<std::mutex> lk(mutex_);
  PositionMap sums;
  SqliteStatement q(*db_, "SELECT seq, account, instrument, quantity_units FROM journal ORDER BY seq");
  while (q.step()) {
    std::int64_t& p = sums[{q.text(1), q.text(2)}];
    if (!checked_add(p, q.int64(3), p))
      throw input_error(path_, 0, "", "journal entry " + std::to_string(q.int64(0)) + " overflows its position");
  }
  for (auto it = sums.begin(); it != sums.end();) it = it->second == 0 ? sums.erase(it) : std::next(it);
  return sums;
}

std::int64_t SqliteClearingStore::journal_size() const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_, "SELECT COUNT(*) FROM journal");
  q.step();
  return q.int64(0);
}

JournalVerifyReport SqliteClearingStore::verify_journal() const {
  std::lock_guard<std::mutex> lk(mutex_);
  JournalVerifyReport rep;
  auto problem = [&rep](std::string what) {
    rep.ok = false;
    ++rep.problem_count;
    if (rep.problems.size() < 100) rep.problems.push_back(std::move(what));
  };

  // Key history per member: (after_seq, key) in the order set.
  std::unordered_map<std::string, std::vector<std::pair<std::int64_t, std::optional<std::string>>>> keys;
  {
    SqliteStatement q(*db_, "SELECT member, pubkey_hex, after_seq FROM member_keys ORDER BY id");
    while (q.step()) {
      std::optional<std::string> k;
      if (!q.is_null(1)) k = q.text(1);
      keys[q.text(0)].emplace_back(q.int64(2), k);
    }
  }
  {
    SqliteStatement q(*db_, "SELECT name, pubkey_hex FROM members");
    while (q.step()) {
      const auto it = keys.find(q.text(0));
      const std::optional<std::string> last =
          it == keys.end() || it->second.empty() ? std::nullopt : it->second.back().second;
      const std::optional<std::string> now = q.is_null(1) ? std::nullopt : std::optional<std::string>(q.text(1));
      if (last != now) problem("member " + in_quotes(q.text(0)) + ": current key differs from its key history");
    }
  }
  std::unordered_map<std::string, std::string> owner;
  {
    SqliteStatement q(*db_, "SELECT account, member FROM accounts");
    while (q.step()) owner.emplace(q.text(0), q.text(1));
  }
  // References the writer keeps (the schema's REFERENCES; SQLite's checks are off).
  {
    SqliteStatement q(*db_,
                      "SELECT 'account ' || quote(account), member FROM accounts"
                      " WHERE member NOT IN (SELECT name FROM members)"
                      " UNION ALL SELECT 'key history row ' || id, member FROM member_keys"
                      " WHERE member NOT IN (SELECT name FROM members)");
    while (q.step()) problem(q.text(0) + ": member " + in_quotes(q.text(1)) + " does not exist");
  }
  struct TradeRow {
    std::int64_t journal_seq;
    std::string digest;
    std::optional<std::int64_t> cancelled_seq;
    bool trade_seen = false, cancel_seen = false;
    std::int64_t quantity_units = 0;
    std::string account, instrument;
  };
  std::map<std::pair<std::string, std::string>, TradeRow> rows;
  {
    SqliteStatement q(*db_, "SELECT source, trade_id, journal_seq, digest, cancelled_seq FROM trades");
    while (q.step()) {
      TradeRow r;
      r.journal_seq = q.int64(2);
      r.digest = q.text(3);
      if (!q.is_null(4)) r.cancelled_seq = q.int64(4);
      rows.emplace(std::make_pair(q.text(0), q.text(1)), std::move(r));
    }
  }
  rep.trades = static_cast<std::int64_t>(rows.size());
  std::set<std::string> default_ids;
  {
    SqliteStatement q(*db_, "SELECT default_id FROM defaults");
    while (q.step()) default_ids.insert(q.text(0));
  }

  PositionMap sums;
  std::int64_t expect = 1;
  SqliteStatement q(*db_, std::string("SELECT ") + kJournalColumns + " FROM journal ORDER BY seq");
  while (q.step()) {
    const JournalEntry e = read_journal_row(q);
    const std::string at = "journal entry " + std::to_string(e.seq);
    ++rep.journal_entries;
    if (e.seq != expect) problem(at + ": expected entry " + std::to_string(expect) + " (entries missing)");
    expect = e.seq + 1;
    std::int64_t& p = sums[{e.account, e.instrument}];
    if (!checked_add(p, e.quantity_units, p)) problem(at + ": position overflows");
    const auto it = rows.find({e.source, e.trade_id});
    const std::string trade = "trade " + in_quotes(e.trade_id) + " of source " + in_quotes(e.source);
    if (it == rows.end()) {
      problem(at + ": no trade row for " + trade);
      continue;
    }
    TradeRow& r = it->second;
    if (e.kind == JournalKind::trade) {
      if (r.journal_seq != e.seq || r.trade_seen) {
        problem(at + ": " + trade + " is recorded by entry " + std::to_string(r.journal_seq));
        continue;
      }
      r.trade_seen = true;
      r.quantity_units = e.quantity_units;
      r.account = e.account;
      r.instrument = e.instrument;
      const Trade t = trade_of(e);
      if (e.quantity_units == 0) problem(at + ": zero quantity");
      if (trade_digest_hex(t) != r.digest) problem(at + ": contents of " + trade + " do not match its digest");
      // The key the account's member had when the entry was recorded.
      const auto o = owner.find(e.account);
      if (o == owner.end()) {
        problem(at + ": account " + in_quotes(e.account) + " is not registered");
        continue;
      }
      if (e.source == kDefaultTransferSource) {
        // The CCP's transfer of a defaulter's positions: unsigned, and only for a recorded default.
        if (default_ids.count(e.package_id) == 0)
          problem(at + ": " + trade + " moves positions for default " + in_quotes(e.package_id) + ", which is not recorded");
        continue;
      }
      std::optional<std::string> key;
      if (const auto k = keys.find(o->second); k != keys.end())
        for (const auto& [after_seq, pk] : k->second)
          if (after_seq < e.seq) key = pk;
      if (key) {
        ++rep.signatures_checked;
        if (e.signature_hex.empty())
          problem(at + ": " + trade + " has no signature but member " + in_quotes(o->second) + " had a key");
        else if (!verify_trade_signature(t, *key))
          problem(at + ": the signature of " + trade + " does not verify with member " + in_quotes(o->second) + "'s key");
      }
    } else {
      if (!r.cancelled_seq || *r.cancelled_seq != e.seq || r.cancel_seen) {
        problem(at + ": cancel of " + trade + " is not the one its trade row names");
        continue;
      }
      r.cancel_seen = true;
      if (!r.trade_seen || e.account != r.account || e.instrument != r.instrument ||
          e.quantity_units != -r.quantity_units)
        problem(at + ": cancel of " + trade + " does not reverse the trade");
    }
  }
  for (const auto& [key, r] : rows) {
    const std::string trade = "trade " + in_quotes(key.second) + " of source " + in_quotes(key.first);
    if (!r.trade_seen) problem(trade + ": its journal entry " + std::to_string(r.journal_seq) + " is missing");
    if (r.cancelled_seq && !r.cancel_seen)
      problem(trade + ": its cancel entry " + std::to_string(*r.cancelled_seq) + " is missing");
  }

  // Kept positions against the sums of the journal.
  for (auto it = sums.begin(); it != sums.end();) it = it->second == 0 ? sums.erase(it) : std::next(it);
  PositionMap kept;
  {
    SqliteStatement pq(*db_, "SELECT account, instrument, quantity_units FROM positions");
    while (pq.step()) kept[{pq.text(0), pq.text(1)}] = pq.int64(2);
  }
  for (const auto& [k, v] : kept) {
    const auto s = sums.find(k);
    const std::int64_t want = s == sums.end() ? 0 : s->second;
    if (v != want)
      problem("position of account " + in_quotes(k.first) + " in " + in_quotes(k.second) + ": kept " +
              quantity_text(v) + ", the journal sums to " + quantity_text(want));
  }
  for (const auto& [k, v] : sums)
    if (kept.count(k) == 0)
      problem("position of account " + in_quotes(k.first) + " in " + in_quotes(k.second) +
              ": not kept, the journal sums to " + quantity_text(v));
  return rep;
}

std::unique_ptr<ClearingStore> open_clearing_store(const std::string& path, OpenMode mode,
                                                   ClearingStoreOptions options) {
  return std::make_unique<SqliteClearingStore>(path, mode, std::move(options));
}

}  // namespace marginet
