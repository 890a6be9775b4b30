#pragma once
// SQLite connection and statement wrappers, shared by the clearing store and the settlement
// ledger: one connection in WAL mode with synchronous=FULL (a committed transaction survives a
// power cut), a busy timeout, and prepared statements bound by index. Errors throw
// marginet::logic_error naming the statement and SQLite's message; a file that cannot be
// opened (or is not a database) throws input_error naming it.
//
// Read-only connections (SqliteAccess::read_only, SQLITE_OPEN_READONLY) change nothing: no
// switch to WAL, no pragmas that write. They read a WAL database (see the SQLite docs, "WAL
// mode: read-only databases", SQLite >= 3.22) as long as its -shm file exists (a writer has the
// file open, or left it) or can be created (the directory is writable): the reader then takes
// part in the WAL index like any connection and sees every committed transaction. A WAL
// database in a read-only directory with no -shm file cannot be opened read-only while its -wal
// holds transactions (open it once read-write to checkpoint it). A database in rollback-journal
// mode opens read-only anywhere it can be read.
//
// The process turns off SQLite's memory statistics (SQLITE_CONFIG_MEMSTATUS) before its first
// connection: they take a global mutex on every allocation and nothing here reads them.

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace marginet {

/// How a connection opens its file.
enum class SqliteAccess : std::uint8_t {
  read_write_create,  // read-write, the file created when absent; switched to WAL
  read_write,         // read-write, the file must exist; switched to WAL
  read_only,          // SQLITE_OPEN_READONLY: the file must exist; nothing is written (header above)
};

struct SqliteOptions {
  SqliteAccess access = SqliteAccess::read_write_create;
  /// true: SQLITE_OPEN_FULLMUTEX, the connection may be used by several threads at once.
  /// false: SQLITE_OPEN_NOMUTEX, for an owner that serialises every use of the connection and
  /// of its statements itself (the clearing store does, under its own mutex): saves a mutex
  /// round trip per SQLite call.
  bool connection_mutex = true;
};

/// A thin RAII wrapper over one sqlite3 connection (WAL, synchronous=FULL, busy timeout).
class SqliteDb {
 public:
  /// Opens (creating when allowed) the database file read-write. input_error when it cannot be
  /// opened. Same as SqliteDb(path, {create ? read_write_create : read_write}).
  explicit SqliteDb(const std::string& path, bool create = true);
  /// Opens the file as `options` say. input_error when it cannot be opened.
  SqliteDb(const std::string& path, const SqliteOptions& options);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  void exec(const std::string& sql);
  void begin() { exec("BEGIN IMMEDIATE"); }
  void commit() { exec("COMMIT"); }
  void rollback() noexcept;
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  bool read_only() const { return read_only_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  bool read_only_ = false;
};

/// A prepared statement; bind by 1-based index, step, read columns by 0-based index.
class SqliteStatement {
 public:
  SqliteStatement(const SqliteDb& db, const std::string& sql);
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  SqliteStatement& bind(int i, std::int64_t v);
  SqliteStatement& bind(int i, double v);
  SqliteStatement& bind(int i, std::string_view v);  // copied: `v` may go away after the call
  /// Binds text without copying it (SQLITE_STATIC): `v` must stay alive and unchanged until the
  /// statement is reset (run(), reset()), which clears the binding. For hot paths.
  SqliteStatement& bind_static(int i, std::string_view v);
  SqliteStatement& bind_null(int i);
  /// true while a row is available; false when done. Throws on error.
  bool step();
  /// step() once and reset; for statements without a result.
  void run();
  void reset();

  std::int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  bool is_null(int col) const;
  /// SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL.
  int column_type(int col) const;
  /// Columns of the result.
  int columns() const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// Runs `body` in one IMMEDIATE transaction of `db`: committed when it returns, rolled back
/// (and `on_rollback` called) when it throws.
template <class Body, class OnRollback>
auto transact(SqliteDb& db, Body&& body, OnRollback&& on_rollback) {
  db.begin();
  try {
    auto result = body();
    db.commit();
    return result;
  } catch (...) {
    db.rollback();
    on_rollback();
    throw;
  }
}

}  // namespace marginet
