#include "service/db/sqlite.hpp"

#include <chrono>
#include <thread>

#include "models/errors.hpp"

namespace marginet {

namespace {

[[noreturn]] void sqlite_fail(sqlite3* db, const std::string& what) {
  MARGINET_FAIL("sqlite: " + what + ": " + (db ? sqlite3_errmsg(db) : "no connection"));
}

}  // namespace

SqliteDb::SqliteDb(const std::string& path, bool create)
    : SqliteDb(path, SqliteOptions{create ? SqliteAccess::read_write_create : SqliteAccess::read_write, true}) {}

SqliteDb::SqliteDb(const std::string& path, const SqliteOptions& options)
    : path_(path), read_only_(options.access == SqliteAccess::read_only) {
  // Memory statistics off, once, before SQLite initialises (later calls are refused: harmless).
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus_off;
  int flags = options.connection_mutex ? SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_NOMUTEX;
  switch (options.access) {
    case SqliteAccess::read_write_create: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
    case SqliteAccess::read_write: flags |= SQLITE_OPEN_READWRITE; break;
    case SqliteAccess::read_only: flags |= SQLITE_OPEN_READONLY; break;
  }
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw input_error(path, 0, "", "cannot open SQLite database: " + msg);
  }
  sqlite3_busy_timeout(db_, 10000);
  if (read_only_) {
    // Nothing to switch: a read-only connection reads the file in whatever journal mode it has.
    // Read the schema now so that a file that is not a database fails here, naming it.
    try {
      SqliteStatement probe(*this, "SELECT COUNT(*) FROM sqlite_master");
      probe.step();
    } catch (const std::exception& e) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw input_error(path, 0, "", std::string("not a readable SQLite database: ") + e.what());
    }
    return;
  }
  try {
    // Switching to WAL takes an exclusive lock and SQLite does not wait on the busy handler
    // for it: retry while another connection (a reader, `ledger verify`) holds the file.
    for (int attempt = 0;; ++attempt) {
      SqliteStatement mode(*this, "PRAGMA journal_mode");
      if (mode.step() && mode.text(0) == "wal") break;
      mode.reset();
      char* err = nullptr;
      const int rc = sqlite3_exec(db_, "PRAGMA journal_mode=WAL", nullptr, nullptr, &err);
      sqlite3_free(err);
      if (rc == SQLITE_OK) continue;  // re-check
      if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < 500) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      exec("PRAGMA journal_mode=WAL");  // throws with the reason
    }
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
  } catch (const std::exception& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw input_error(path, 0, "", std::string("not a usable SQLite database: ") + e.what());
  }
}

SqliteDb::~SqliteDb() {
  if (db_) sqlite3_close(db_);
}

void SqliteDb::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    MARGINET_FAIL("sqlite: " + sql.substr(0, 60) + ": " + msg);
  }
}

void SqliteDb::rollback() noexcept {
  if (in_transaction()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

SqliteStatement::SqliteStatement(const SqliteDb& db, const std::string& sql) : db_(db.handle()) {
  if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr) != SQLITE_OK)
    sqlite_fail(db_, "prepare " + sql.substr(0, 60));
}

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

SqliteStatement& SqliteStatement::bind(int i, std::int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) sqlite_fail(db_, "bind");
  return *this;
}
SqliteStatement& SqliteStatement::bind(int i, double v) {
  if (sqlite3_bind_double(stmt_, i, v) != SQLITE_OK) sqlite_fail(db_, "bind");
  return *this;
}
SqliteStatement& SqliteStatement::bind(int i, std::string_view v) {
  if (sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK)
    sqlite_fail(db_, "bind");
  return *this;
}
SqliteStatement& SqliteStatement::bind_static(int i, std::string_view v) {
  if (sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC) != SQLITE_OK)
    sqlite_fail(db_, "bind");
  return *this;
}
SqliteStatement& SqliteStatement::bind_null(int i) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) sqlite_fail(db_, "bind");
  return *this;
}

bool SqliteStatement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite_fail(db_, "step");
}

void SqliteStatement::run() {
  while (step()) {
  }
  reset();
}

void SqliteStatement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::int64_t SqliteStatement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double SqliteStatement::real(int col) const { return sqlite3_column_double(stmt_, col); }
std::string SqliteStatement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}
bool SqliteStatement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int SqliteStatement::column_type(int col) const { return sqlite3_column_type(stmt_, col); }
int SqliteStatement::columns() const { return sqlite3_column_count(stmt_); }

}  // namespace marginet
