#pragma once
// The clearing store on one SQLite file (WAL, synchronous=FULL: a committed batch survives a
// power cut). Schema (version 4; docs/clearing.md has the full text):
//
//   members(name PK, pubkey_hex NULL, created_at)           current key of each member
//   member_keys(id PK, member, pubkey_hex NULL, after_seq, set_at)
//                        key history: a key applies to journal entries with seq > after_seq
//   accounts(account PK, member FK -> members, created_at,
//            pretrade_headroom REAL NULL)              v2; NULL = no pre-trade check
//   journal(seq INTEGER PK, kind 'trade'|'cancel', source, trade_id, account FK, instrument,
//           quantity_units, price, time, package_id, signature NULL, reason NULL, recorded_at)
//                        append-only (triggers refuse UPDATE and DELETE)
//   trades(source, trade_id, PK(source, trade_id), journal_seq UNIQUE, digest,
//          cancelled_seq UNIQUE NULL)                     the idempotency keys
//   positions(account, instrument, PK(account, instrument), quantity_units)   non-zero only
// v3 (collateral and calls; this file's functions in sqlite_collateral.cpp):
//   assets(asset PK, scale)                               what collateral may be held in
//   collateral_balances(account, asset, PK, amount_minor) the sum of the movements
//   collateral_movements(seq PK, account, asset, amount_minor signed, kind, reference NULL,
//                        recorded_at, UNIQUE(kind, reference))   append-only
//   call_runs(seq PK, run_id UNIQUE, kind, at, model, asset, scale, units, cycle_id NULL, compute_ms)
//   calls(run_id, account, PK, im, mm, collateral_value, call_minor, instruction_id UNIQUE NULL)
//   outbox(cycle_id PK, kind, cycle_json, state, created_at, attempts, next_attempt_at, message)
//   sent_instructions(instruction_id PK, cycle_id, purpose 'call'|'withdrawal'|'net', account,
//                     asset, amount_minor, state, settled_minor)   every instruction sent
// v4 (default management; sqlite_defaults.cpp):
//   fund_sizings(seq PK, sizing_id UNIQUE, at, currency, scale, fund_minor, art42, cover2,
//                scenario, report_json)
//   fund_balances(member PK, amount_minor)                the sum of the fund movements
//   fund_movements(seq PK, member, amount_minor signed, kind 'contribution'|'applied',
//                  reference, recorded_at, UNIQUE(kind, reference, member))   append-only
//   defaults(seq PK, default_id UNIQUE, member UNIQUE, reason, declared_at, currency, scale,
//            loss_minor, house_account, report_json)
//   default_steps(default_id, step, PK, layer, member, available_minor, absorbed_minor,
//                 remaining_minor)                        append-only
//
// The file carries PRAGMA application_id = 0x4D4E434C ("MNCL") and PRAGMA user_version = the
// schema version. Opening as writer applies the missing migrations in order, in one
// transaction; a file of a newer version, or a SQLite file that is not a clearing store, is
// refused with input_error naming it. Readers need the current version (open once as writer
// to migrate).
//
// The writer keeps the schema's REFERENCES itself (foreign-key checks off on its connection;
// verify_journal() checks them), keeps in memory the account owners and positions it has read
// or written (it is the only writer; cleared on any rollback or member/account change), runs
// every check of a submission before its first write (no savepoint per submission), and
// prepares large batches (fields, digests) on a second thread. Readers open the file with
// SQLITE_OPEN_READONLY (service/db/sqlite.hpp: what a read-only WAL connection needs).

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "service/clearing/clearing_store.hpp"
#include "service/db/sqlite.hpp"
#include "service/db/writer_lock.hpp"

namespace marginet {

/// Now as ISO 8601 UTC with milliseconds (the store's clock).
std::string clearing_now_utc();

/// The schema version this binary writes and reads.
constexpr int kClearingSchemaVersion = 4;
/// PRAGMA application_id of a clearing store file ("MNCL").
constexpr int kClearingApplicationId = 0x4D4E434C;

/// A submission checked as far as it can be without the store (fields, instruments, package
/// shape), with its legs validated and their digests; `refused` set when that already refuses it.
struct PreparedSubmission {
  std::vector<Trade> legs;
  std::vector<std::string> digests;
  std::optional<SubmitResult> refused;
};

class SqliteClearingStore final : public ClearingStore {
 public:
  /// See open_clearing_store(). A writer takes WriterLock(path) before touching the file.
  SqliteClearingStore(const std::string& path, OpenMode mode, ClearingStoreOptions options = {});
  ~SqliteClearingStore() override;

  void add_member(const std::string& name, const std::optional<std::string>& public_key_hex) override;
  void set_member_key(const std::string& name, const std::optional<std::string>& public_key_hex) override;
  void add_account(const std::string& account, const std::string& member) override;
  std::vector<MemberInfo> members() const override;
  std::vector<AccountInfo> accounts() const override;
  void set_pretrade_headroom(const std::string& account, std::optional<double> headroom) override;
  std::optional<double> pretrade_headroom(const std::string& account) const override;

  std::vector<SubmitResult> submit(const std::vector<Submission>& batch) override;
  using ClearingStore::cancel;
  SubmitResult cancel(const CancelRequest& request) override;
  void set_known_instruments(std::optional<std::unordered_set<std::string>> ids) override;

  std::vector<JournalEntry> trades(const JournalFilter& filter) const override;
  std::vector<PositionRow> positions(const std::string& account = "") const override;
  PositionMap rebuild_positions_from_journal() const override;
  JournalVerifyReport verify_journal() const override;
  std::int64_t journal_size() const override;

  std::map<std::string, int> asset_scales() const override;
  void add_asset(const std::string& asset, int scale) override;
  CollateralResult deposit(const CollateralChange& change) override;
  CollateralResult withdraw(const CollateralChange& change, const std::optional<SettlementCycle>& payout) override;
  std::vector<BalanceRow> balances(const std::string& account = "") const override;
  std::vector<Movement> movements(const std::string& account = "", std::int64_t limit = 0) const override;
  CollateralVerifyReport verify_collateral() const override;
  Outcome record_call_run(const CallRun& run, const std::optional<SettlementCycle>& cycle) override;
  std::optional<CallRun> call_run(const std::string& run_id) const override;
  std::vector<std::string> call_run_ids() const override;
  std::map<std::string, std::int64_t> pending_calls(const std::string& asset) const override;
  Outcome outbox_put(const std::string& kind, const SettlementCycle& cycle) override;
  std::vector<OutboxEntry> outbox_due(double now, std::size_t limit) const override;
  std::optional<OutboxEntry> outbox_entry(const std::string& cycle_id) const override;
  void outbox_attempted(const std::string& cycle_id, double next_attempt_at) override;
  void outbox_acked(const std::string& cycle_id, const std::string& status, const std::string& message,
                    double next_attempt_at) override;
  ReportApplied apply_settlement_report(const SettlementReport& report) override;
  OutboxStats outbox_stats() const override;
  Outcome record_fund_sizing(const FundSizingRecord& sizing) override;
  std::optional<FundSizingRecord> fund_sizing(const std::string& sizing_id) const override;
  std::map<std::string, std::int64_t> fund_balances() const override;
  Outcome record_default(const DefaultRecord& record) override;
  std::vector<DefaultSummary> defaults() const override;
  std::string default_of(const std::string& member) const override;
  std::vector<ReportApplied::MissedPayIn> unhandled_missed_pay_ins() const override;
  std::int64_t skin_in_the_game_used() const override;
  int schema_version() const override;
  const std::string& path() const override { return path_; }

 private:
  struct Statements;
  struct AccountOwner {
    std::string member;
    std::optional<std::string> public_key_hex;
    bool registered = false;     // the account row exists
    bool member_exists = false;  // the member row exists
  };

  void require_writer(const char* what) const;
  void migrate();
  void check_file_kind(bool writer);
  SubmitResult submit_one(const Submission& s, PreparedSubmission& p, const std::string& now);
  /// The account's owner and key as recorded, or for an unregistered account the member of the
  /// same name that its first trade will register it under. Reads only.
  const AccountOwner& owner_of(const std::string& account);
  /// Registers an account owner_of() found unregistered (and its member when absent).
  void register_account(const std::string& account, const std::string& now);
  /// The kept position in units (0 when none). Reads only.
  std::int64_t position_of(const std::string& account, const std::string& instrument);
  /// Writes the position (deleting it at 0).
  void write_position(const std::string& account, const std::string& instrument, std::int64_t units);
  std::optional<JournalEntry> journal_entry(std::int64_t seq) const;
  void record_key(const std::string& name, const std::optional<std::string>& key, const std::string& now);
  // sqlite_collateral.cpp, inside a transaction the caller holds:
  CollateralResult change_balance(const CollateralChange& change, MovementKind kind, std::int64_t signed_amount,
                                  const std::string& now);
  void put_outbox(const std::string& kind, const SettlementCycle& cycle);
  // sqlite_defaults.cpp (the last two inside a transaction the caller holds):
  bool member_in_default(const std::string& member);
  std::int64_t fund_balance_of(const std::string& member) const;
  /// A fund movement of `delta` (kind 'contribution' or 'applied') and the balance it changes;
  /// a balance that comes to zero has no row, as with collateral.
  void move_fund(const std::string& member, std::int64_t delta, const char* kind, const std::string& reference,
                 const std::string& now);

  std::string path_;
  OpenMode mode_;
  ClearingStoreOptions options_;
  // Order matters: the lock outlives the connection, the connection outlives the statements.
  std::unique_ptr<WriterLock> lock_;
  std::unique_ptr<SqliteDb> db_;
  std::unique_ptr<Statements> st_;
  // Writer only, rows as this store read or wrote them (it is the one writer of the file):
  // account -> owner and key (owner_of), (account, instrument) -> position units
  // (position_of). Cleared by every rollback and by any change of members or accounts.
  void forget_cached_rows() {
    owners_.clear();
    positions_.clear();
    defaulted_.reset();
  }
  struct PairHash {
    std::size_t operator()(const std::pair<std::string, std::string>& p) const noexcept {
      return std::hash<std::string>()(p.first) * 31 ^ std::hash<std::string>()(p.second);
    }
  };
  static constexpr std::size_t kMaxCachedPositions = 1 << 20;
  std::unordered_map<std::string, AccountOwner> owners_;
  std::unordered_map<std::pair<std::string, std::string>, std::int64_t, PairHash> positions_;
  std::optional<std::unordered_set<std::string>> defaulted_;  // members in default, read once
  mutable std::mutex mutex_;
};

}  // namespace marginet
