#pragma once
// The durable clearing store (SPEC §9): members and their accounts, the trade journal, positions
// kept from it, collateral balances and their movements, call runs and their calls, and the
// outbox of settlement cycles for the scheduler. This header is the interface; SqliteClearingStore
// (sqlite_clearing_store.hpp) implements it on one SQLite file, and a server database could
// implement it later (docs/clearing.md). No networking here: the protocol handlers
// (trade.submit, trade.cancel) and the CLI (`marginet trades import`) call this API.
//
//   auto store = open_clearing_store("clearing.sqlite", OpenMode::writer);
//   std::vector<SubmitResult> r = store->submit({Submission::trade(in1), Submission::package({l1, l2})});
//   // r[0].outcome == Outcome::recorded, r[0].journal_seqs == {1}, ...
//
// Rules (every implementation keeps them):
//   * The journal is append-only. A trade is one journal entry of kind `trade`; a cancel is a
//     new entry of kind `cancel` holding the negated quantity. Nothing is updated or deleted.
//   * Idempotency by (source, trade_id): the same contents again (equal digest of
//     canonical_trade_bytes(), the signature does not count) is `duplicate`, no change; other
//     contents under the same key are a `conflict`, no change, and the message names the fields
//     that differ.
//   * A Submission (one trade, or the legs of one package) is recorded all or nothing. A batch
//     of submissions is one transaction (one durable commit), each submission inside it all or
//     nothing: a bad submission does not stop the others. A package whose legs are all recorded
//     already is a duplicate; one with some legs recorded and some new is a conflict.
//   * Positions (account, instrument) are the sum of the quantity_units of the journal, kept in
//     the same transaction as the entries; rebuilding them from the journal gives the same
//     positions to the unit. A position whose update would overflow int64 makes the submission
//     `rejected`. Positions that come back to zero are not listed.
//   * Accounts: an account that is not registered is registered on first use by a trade, owned
//     by a member of the same name (created without a key when there is none). Register
//     accounts under other members with add_account() before their first trade.
//   * Signatures: when the account's member has an Ed25519 public key, each new trade must carry
//     a valid signature over canonical_trade_bytes() (else `bad_signature`); it is stored with
//     the trade and checked again by verify_journal() against the key the member had when the
//     trade was recorded. A signature on a trade of a member without a key is stored, unchecked.
//   * One writer: a store opened as OpenMode::writer holds an exclusive lock (WriterLock) until
//     it is destroyed; readers take no lock and see committed state.
//   * Not thread-safe beyond this: one store object may be shared by threads (calls are
//     serialised inside), but there is one writer per file.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "models/default_fund.hpp"
#include "models/instrument.hpp"
#include "models/positions.hpp"
#include "models/settlement_cycle.hpp"
#include "service/clearing/trade.hpp"

namespace marginet {

enum class OpenMode : std::uint8_t {
  writer,  // read-write; creates the file when absent; takes the single-writer lock
  reader,  // read-only (queries and verify_journal); no lock; the file must exist
};

/// What happened to one submission (or one cancel).
enum class Outcome : std::uint8_t {
  recorded,            // new journal entries written (journal_seqs)
  duplicate,           // already recorded with the same contents (journal_seqs: the original entries)
  conflict,            // same (source, trade_id) with other contents, or a package partly recorded
  rejected,            // a field is invalid, the package is malformed, or a position would overflow
  bad_signature,       // the member has a key and the signature is missing or does not verify
  unknown_instrument,  // the store has a set of known instruments and this id is not in it
  not_found,           // cancel: no such (source, trade_id)
};
/// "recorded", "duplicate", "conflict", "rejected", "bad_signature", "unknown_instrument", "not_found".
const char* to_string(Outcome outcome);

/// One trade, or one package: legs sharing a non-empty package_id, distinct trade ids.
struct Submission {
  std::vector<TradeInput> legs;

  static Submission trade(TradeInput t) { return Submission{{std::move(t)}}; }
  static Submission package(std::vector<TradeInput> legs) { return Submission{std::move(legs)}; }
};

struct SubmitResult {
  Outcome outcome = Outcome::rejected;
  std::string message;                    // "" when recorded; else why, naming the leg and field
  int bad_leg = -1;                       // index of the leg at fault (0-based), -1 when none
  std::vector<std::int64_t> journal_seqs; // recorded: the new entries, one per leg in order;
                                          // duplicate: the entries recorded before
};

/// A cancel of one recorded trade.
struct CancelRequest {
  std::string source;
  std::string trade_id;
  std::string reason;  // free text, stored with the cancel entry (may be empty)
  std::string time;    // ISO 8601 UTC time of the cancel; "" = now
};

enum class JournalKind : std::uint8_t { trade, cancel };
const char* to_string(JournalKind kind);

/// One journal row.
struct JournalEntry {
  std::int64_t seq = 0;           // 1, 2, 3, ... in recording order
  JournalKind kind = JournalKind::trade;
  std::string source;
  std::string trade_id;
  std::string account;
  std::string instrument;
  std::int64_t quantity_units = 0;  // signed effect on the position; a cancel holds the negation
  std::string price;                // canonical decimal (a cancel repeats the trade's)
  std::string time;                 // trade: execution time; cancel: time of the cancel
  std::string package_id;           // "" = none (a cancel repeats the trade's)
  std::string signature_hex;        // "" = none (always "" for a cancel)
  std::string reason;               // cancel only
  std::string recorded_at;          // store clock, ISO 8601 UTC with milliseconds
};

/// Which journal rows trades() returns: all conditions together; "" = any.
struct JournalFilter {
  std::string account;
  std::string instrument;
  std::int64_t after_seq = 0;  // rows with seq > after_seq
  std::int64_t limit = 0;      // at most this many rows (0 = no limit), in seq order
};

struct PositionRow {
  std::string account;
  std::string instrument;
  std::int64_t quantity_units = 0;  // non-zero
  bool operator==(const PositionRow& o) const {
    return account == o.account && instrument == o.instrument && quantity_units == o.quantity_units;
  }
};

/// (account, instrument) -> quantity units; zero positions are absent.
using PositionMap = std::map<std::pair<std::string, std::string>, std::int64_t>;

struct MemberInfo {
  std::string name;
  std::optional<std::string> public_key_hex;
  std::string created_at;
};
struct AccountInfo {
  std::string account;
  std::string member;
  /// The account's pre-trade headroom (quote currency; schema v2); nullopt = no pre-trade check.
  std::optional<double> pretrade_headroom;
};

struct JournalVerifyReport {
  bool ok = true;
  std::int64_t journal_entries = 0;
  std::int64_t trades = 0;               // rows of the idempotency table
  std::int64_t signatures_checked = 0;   // trades whose member had a key when recorded
  std::vector<std::string> problems;     // what is wrong, each naming the entry (at most 100)
  std::int64_t problem_count = 0;        // all problems found, also those not listed
  /// "ok: N entries, ..." or the problems joined by "; ".
  std::string summary() const;
};

struct ClearingStoreOptions {
  /// When set, trades must name one of these instrument ids, else `unknown_instrument`.
  /// When unset, any valid identifier is accepted.
  std::optional<std::unordered_set<std::string>> instruments;
};
/// The ids of a table, for ClearingStoreOptions::instruments.
std::unordered_set<std::string> instrument_ids(const InstrumentTable& table);

// ---- collateral, calls, outbox (schema v3; docs/clearing.md "Collateral and calls") --------
//
//   * Balances are int64 minor units of the asset's scale (asset_scales()), per (account,
//     asset); each change is an append-only movement, and the balances always equal the sum of
//     the movements (verify_collateral()).
//   * A deposit or withdrawal with a reference is idempotent by (kind, reference): the same
//     contents again is `duplicate`, other contents a `conflict`.
//   * A withdrawal debits the balance at once (never below zero: `rejected`) and puts its
//     pay-out cycle in the outbox in the same transaction. The IM check (never below IM) is the
//     caller's: the store knows no margin.
//   * A call run records every account's IM, MM, collateral value and call, and its cycle of
//     margin-call pay-ins in the outbox, in one transaction; a run id is used once.
//   * The outbox holds each cycle until the scheduler acknowledged it (`recorded`) and reported
//     it complete (`settled`); apply_settlement_report() credits each final margin-call pay-in to
//     the account's balance exactly once (movement `call_settled`, unique by instruction id) and
//     returns a withdrawal's unpaid part when its pay-out ends defaulted.

enum class MovementKind : std::uint8_t { deposit, withdrawal, call_settled, withdrawal_returned };
/// "deposit", "withdrawal", "call_settled", "withdrawal_returned".
const char* to_string(MovementKind kind);

struct BalanceRow {
  std::string account, asset;
  std::int64_t amount_minor = 0;
  int scale = 0;
};

struct Movement {
  std::int64_t seq = 0;
  std::string account, asset;
  std::int64_t amount_minor = 0;  // signed: + into the account, − out of it
  MovementKind kind = MovementKind::deposit;
  std::string reference;          // the caller's key; call_settled: the instruction id
  std::string recorded_at;
};

struct CollateralChange {
  std::string account, asset;
  std::int64_t amount_minor = 0;  // > 0
  std::string reference;          // "" = not idempotent
};

struct CollateralResult {
  Outcome outcome = Outcome::rejected;  // recorded | duplicate | conflict | rejected
  std::string message;
  std::int64_t movement_seq = 0;
  std::int64_t balance_minor = 0;       // the balance after (duplicate: now)
  int scale = 0;
  std::string cycle_id;                 // a withdrawal's pay-out cycle ("" = none)
};

/// One account of a call run. Risk figures in the run's units; call and settled in minor units
/// of the run's asset. state: "none" (no call), "pending", "final", "defaulted", "rejected".
struct CallRecord {
  std::string account;
  double im = 0, mm = 0, collateral_value = 0;
  std::int64_t call_minor = 0;
  std::string instruction_id;     // "" when no call
  std::string state = "none";
  std::int64_t settled_minor = 0;
};

struct CallRun {
  std::string run_id, kind, at, model, asset, units = "USD";
  int scale = 0;
  std::string cycle_id;           // "" when the run made no call
  std::string cycle_state;        // the outbox entry's state ("none" when no cycle)
  double compute_ms = 0;
  std::vector<CallRecord> calls;  // by account
};

/// A cycle of the outbox. state: "pending" (not acknowledged), "recorded" (acknowledged, not
/// yet complete), "settled" (reported complete and applied), "rejected" (by the scheduler).
struct OutboxEntry {
  std::string cycle_id, kind, state, message;
  SettlementCycle cycle;
  double created_at = 0, next_attempt_at = 0;  // Unix seconds
  std::int64_t attempts = 0;
};

struct OutboxStats {
  std::int64_t unacked = 0, unsettled = 0, settled = 0, rejected = 0;
  std::string oldest_unacked;     // "" when none
  double oldest_unacked_created_at = 0;
};

/// What apply_settlement_report() changed.
struct ReportApplied {
  bool known = false;             // the cycle is in the outbox
  bool completed = false;         // this report completed it (settled now)
  std::int64_t credits = 0;       // call_settled movements written
  std::int64_t returns = 0;       // withdrawal_returned movements written
  /// Margin-call pay-ins this report ended defaulted (not paid in full): the members the
  /// scheduler hands over to default management.
  struct MissedPayIn {
    std::string member, account, instruction_id;
    std::int64_t unpaid_minor = 0;
  };
  std::vector<MissedPayIn> missed;
};

struct CollateralVerifyReport {
  bool ok = true;
  std::int64_t movements = 0, balances = 0;
  std::vector<std::string> problems;
  std::string summary() const;
};

// ---- default management (schema v4; docs/default-management.md) ---------------------------
//
//   * Default-fund contributions are balances per member in the fund's currency; every change is
//     an append-only movement: `contribution` when a sizing is recorded (the difference to the new
//     figure), `applied` when a default uses it.
//   * A default is recorded whole, in one transaction: the default and its waterfall steps; the
//     contributions applied; the defaulter's collateral moved to the CCP's house account (a
//     `withdrawal` from each of its balances and a `deposit` into the house account, both with
//     reference "default/<id>/<account>/<asset>"); its positions moved to the house account by
//     journal entries of source kDefaultTransferSource (package id = the default id, priced at
//     the close-out prices, unsigned: the CCP acts under its rulebook, and verify_journal()
//     accepts them only for a recorded default). A member in default captures no more trades.

/// The journal source of the entries that move a defaulter's positions; refused in submit().
inline constexpr const char* kDefaultTransferSource = "ccp.default";

struct FundSizingRecord {
  std::string sizing_id, at, currency;
  int scale = 2;
  std::int64_t fund_minor = 0;
  double art42 = 0, cover2 = 0;
  std::string scenario;                       // the scenario that sizes the fund
  std::vector<MemberAmount> contributions;    // every member's new contribution
  std::string report_json;                    // the sizing as printed (JSON)
};

struct DefaultRecord {
  std::string default_id, member, reason, declared_at, currency;
  int scale = 2;
  std::int64_t loss_minor = 0;                // the close-out loss
  std::vector<WaterfallStep> steps;
  std::map<std::string, std::int64_t> fund_applied;    // member -> taken from its contribution
  std::string house_account;
  std::map<std::string, std::string> close_out_prices; // instrument -> decimal price
  std::string report_json;                    // the report as printed (JSON)
};

struct DefaultSummary {
  std::string default_id, member, reason, declared_at, currency, house_account;
  int scale = 2;
  std::int64_t loss_minor = 0;
  std::vector<WaterfallStep> steps;
  std::int64_t positions_moved = 0;           // positions moved to the house account (two journal entries each)
  std::int64_t collateral_moved = 0;          // balances moved to the house account
  std::string report_json;
};

class ClearingStore {
 public:
  virtual ~ClearingStore() = default;

  // ---- members and accounts --------------------------------------------------------------
  /// Registers a member, optionally with an Ed25519 public key (64 hex digits). input_error when
  /// the name is not a valid identifier, the key is malformed, or the member exists.
  virtual void add_member(const std::string& name, const std::optional<std::string>& public_key_hex) = 0;
  /// Sets (or, with nullopt, removes) a member's key; applies to trades recorded from now on.
  /// input_error when the member is unknown or the key malformed.
  virtual void set_member_key(const std::string& name, const std::optional<std::string>& public_key_hex) = 0;
  /// Registers an account owned by an existing member. input_error when the member is unknown,
  /// the account name is not a valid identifier, or the account exists.
  virtual void add_account(const std::string& account, const std::string& member) = 0;
  virtual std::vector<MemberInfo> members() const = 0;
  virtual std::vector<AccountInfo> accounts() const = 0;
  /// Sets (or, with nullopt, removes) the account's pre-trade headroom: the margin room a
  /// pre-trade check may let new trades use (quote currency). nullopt = no pre-trade check.
  /// input_error when the account is unknown or the headroom is negative or not finite.
  virtual void set_pretrade_headroom(const std::string& account, std::optional<double> headroom) = 0;
  /// The account's pre-trade headroom; nullopt when none is set or the account is unknown.
  virtual std::optional<double> pretrade_headroom(const std::string& account) const = 0;

  // ---- trade capture -----------------------------------------------------------------------
  /// Records a batch in one transaction; one result per submission, in order (rules above).
  /// Invalid input is an outcome, never an exception; exceptions mean the store itself failed
  /// (then nothing of the batch is recorded).
  virtual std::vector<SubmitResult> submit(const std::vector<Submission>& batch) = 0;
  /// Reverses a recorded trade by a new journal entry: `recorded` (journal_seqs = {cancel seq}),
  /// `duplicate` when it was cancelled already (the earlier cancel's seq), `not_found`,
  /// `rejected` (bad time or reason, or the position would overflow).
  virtual SubmitResult cancel(const CancelRequest& request) = 0;
  SubmitResult cancel(const std::string& source, const std::string& trade_id, const std::string& reason) {
    return cancel(CancelRequest{source, trade_id, reason, ""});
  }
  /// Replaces the set of known instruments (reference data reloaded); nullopt accepts any id.
  virtual void set_known_instruments(std::optional<std::unordered_set<std::string>> ids) = 0;

  // ---- collateral -----------------------------------------------------------------------------
  /// Asset -> scale of the assets collateral may be held in (BTC 8, ETH 9, USD 2, USDC 6, USDT 6
  /// to begin with).
  virtual std::map<std::string, int> asset_scales() const = 0;
  /// Adds an asset. input_error when the name is not an identifier, the scale is outside 0..18,
  /// or the asset exists with another scale.
  virtual void add_asset(const std::string& asset, int scale) = 0;
  /// Credits the balance. An account not registered is registered as by a first trade.
  virtual CollateralResult deposit(const CollateralChange& change) = 0;
  /// Debits the balance (rejected when it would go below zero) and, when `payout` is given,
  /// puts it in the outbox (kind "withdrawal") in the same transaction.
  virtual CollateralResult withdraw(const CollateralChange& change, const std::optional<SettlementCycle>& payout) = 0;
  /// Balances, non-zero only, by account then asset; account "" = every account.
  virtual std::vector<BalanceRow> balances(const std::string& account = "") const = 0;
  /// Movements in seq order; account "" = every account; limit 0 = all.
  virtual std::vector<Movement> movements(const std::string& account = "", std::int64_t limit = 0) const = 0;
  /// Balances equal the sums of the movements (collateral, and the default fund's); never throws
  /// for damage.
  virtual CollateralVerifyReport verify_collateral() const = 0;

  // ---- call runs --------------------------------------------------------------------------------
  /// Records a run and (when it made calls) its cycle in the outbox, kind "calls": `recorded`,
  /// or `duplicate` (nothing changes) when the run id exists.
  virtual Outcome record_call_run(const CallRun& run, const std::optional<SettlementCycle>& cycle) = 0;
  /// A run with its calls and their settlement state; "" = the latest run; nullopt when none.
  virtual std::optional<CallRun> call_run(const std::string& run_id) const = 0;
  /// Every run id, oldest first.
  virtual std::vector<std::string> call_run_ids() const = 0;
  /// Per account, the margin calls sent and not yet reported final or defaulted (minor units of
  /// `asset`): collateral in transit, counted by the next run.
  virtual std::map<std::string, std::int64_t> pending_calls(const std::string& asset) const = 0;

  // ---- outbox ---------------------------------------------------------------------------------
  /// Puts a cycle (kind "net") in the outbox; `duplicate` when the id is there with the same
  /// contents, `conflict` with other contents.
  virtual Outcome outbox_put(const std::string& kind, const SettlementCycle& cycle) = 0;
  /// Cycles to send now (state pending) or to ask about (state recorded), next_attempt_at ≤ now,
  /// oldest first.
  virtual std::vector<OutboxEntry> outbox_due(double now, std::size_t limit) const = 0;
  virtual std::optional<OutboxEntry> outbox_entry(const std::string& cycle_id) const = 0;
  /// A send or a query went out: attempts + 1, next try at `next_attempt_at`.
  virtual void outbox_attempted(const std::string& cycle_id, double next_attempt_at) = 0;
  /// The scheduler's ack: "recorded"/"duplicate" (pending -> recorded; next query at
  /// `next_attempt_at`) or "rejected" (-> rejected, with the message; the calls rejected).
  virtual void outbox_acked(const std::string& cycle_id, const std::string& status, const std::string& message,
                            double next_attempt_at) = 0;
  /// Applies a report in one transaction (rules above); only complete reports settle a cycle.
  virtual ReportApplied apply_settlement_report(const SettlementReport& report) = 0;
  virtual OutboxStats outbox_stats() const = 0;

  // ---- default management -------------------------------------------------------------------
  /// Records a sizing and sets every listed member's contribution to its figure (a movement of
  /// the difference): `recorded`, or `duplicate` when the sizing id exists. input_error when the
  /// currency or scale differs from the fund's existing balances.
  virtual Outcome record_fund_sizing(const FundSizingRecord& sizing) = 0;
  /// The latest sizing ("" ) or the one named; nullopt when none.
  virtual std::optional<FundSizingRecord> fund_sizing(const std::string& sizing_id) const = 0;
  /// Member -> default-fund balance (minor units of the fund's currency), non-zero only.
  virtual std::map<std::string, std::int64_t> fund_balances() const = 0;
  /// Records a default (rules above): `recorded`; `duplicate` when the id exists; `conflict`
  /// when the member is in default already. input_error for a position without a close-out
  /// price or an applied contribution larger than the balance.
  virtual Outcome record_default(const DefaultRecord& record) = 0;
  /// The defaults recorded, oldest first, with their steps.
  virtual std::vector<DefaultSummary> defaults() const = 0;
  /// The member's default id, or "" when it is not in default.
  virtual std::string default_of(const std::string& member) const = 0;
  /// Margin-call pay-ins that ended defaulted (not paid in full) whose member is not in default
  /// yet: the scheduler's hand-overs default management has still to act on. Durable, so that
  /// a service killed between applying a report and declaring the default acts after a restart.
  virtual std::vector<ReportApplied::MissedPayIn> unhandled_missed_pay_ins() const = 0;
  /// The skin in the game the recorded defaults used (minor units of the fund's currency).
  virtual std::int64_t skin_in_the_game_used() const = 0;

  // ---- queries -----------------------------------------------------------------------------
  virtual std::vector<JournalEntry> trades(const JournalFilter& filter) const = 0;
  /// Kept positions, by account then instrument; account "" = every account.
  virtual std::vector<PositionRow> positions(const std::string& account = "") const = 0;
  /// Positions summed from the journal alone. input_error if a sum overflows (a damaged journal).
  virtual PositionMap rebuild_positions_from_journal() const = 0;
  /// Checks the store's invariants: journal seqs contiguous from 1; every trade row points to
  /// its journal entry with the same digest, every journal entry is referenced exactly once;
  /// every signature of a trade whose member had a key when recorded verifies; kept positions
  /// equal the rebuilt ones. Never throws for damage; reports it.
  virtual JournalVerifyReport verify_journal() const = 0;
  virtual std::int64_t journal_size() const = 0;
  /// The schema version of the file (PRAGMA user_version).
  virtual int schema_version() const = 0;
  virtual const std::string& path() const = 0;
};

/// Opens (writer: creating when absent, migrating to the current schema) a SQLite clearing
/// store. input_error naming the file when it cannot be opened, is locked by another writer,
/// is some other SQLite database, or has a newer schema than this binary knows.
std::unique_ptr<ClearingStore> open_clearing_store(const std::string& path, OpenMode mode,
                                                   ClearingStoreOptions options = {});

/// The store's kept positions as the risk engine's book, quantities by quantity_value(). A
/// position in an instrument that `instruments` lacks is an input_error naming the store, the
/// account and the instrument, and saying that `instruments_source` does not list it.
std::vector<Position> kept_positions(const ClearingStore& store, const InstrumentTable& instruments,
                                     const std::string& instruments_source);

}  // namespace marginet
