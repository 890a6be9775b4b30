// `marginet trades import|list|cancel|verify` and `marginet positions`: the clearing store
// (SPEC §9, docs/clearing.md "Command line").
//
//   marginet trades import FILE --store STORE [--instruments F] [--batch N]
//       Records the trades of FILE (service/clearing/trade_csv.hpp) in batches of 1024
//       submissions (one durable commit each). Every row is validated before anything is
//       recorded: a bad field stops the import, nothing recorded, exit 2 naming file, line and
//       field. Then each submission (a trade, or the rows of one package) is recorded all or
//       nothing; a refused one (conflict, rejected, bad_signature, unknown_instrument) is named
//       on stderr as FILE:LINE: field 'F': OUTCOME: why, the others are recorded all the same,
//       and the exit status is 2. Exit 0 when every submission is recorded or a duplicate.
//       Output: outcome,submissions,rows (one line per outcome, all outcomes listed).
//   marginet trades list --store STORE [--account A] [--instrument I] [--after-seq N] [--limit N]
//       Journal rows: seq,kind,source,trade_id,account,instrument,quantity,price,time,
//       package_id,signature,reason,recorded_at (quantity and price exact decimal text).
//   marginet trades cancel SOURCE TRADE_ID --store STORE [--reason TEXT] [--time ISO]
//   marginet trades verify --store STORE    exit 0 "ok: ...", 1 when damaged (problems listed)
//   marginet positions --store STORE [--account A]   account,instrument,quantity (exact decimal)
//
// Writers (import, cancel) hold the store's single-writer lock: while `marginet serve --store`
// (or any other writer) runs they fail with exit 2 and "... is locked by another writer (pid N)".
// Readers (list, verify, positions) take no lock.

#include <spdlog/spdlog.h>

#include <array>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/errors.hpp"
#include "models/reference_data.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/clearing/trade_csv.hpp"

namespace marginet::cli {

namespace {

struct TradesOptions {
  std::string store, file, instruments;
  std::size_t batch = 1024;
  std::string account, instrument;
  std::int64_t after_seq = 0, limit = 0;
  std::string source, trade_id, reason, time;
};

constexpr std::array<Outcome, 7> kOutcomes = {Outcome::recorded,      Outcome::duplicate,
                                              Outcome::conflict,      Outcome::rejected,
                                              Outcome::bad_signature, Outcome::unknown_instrument,
                                              Outcome::not_found};

/// The CSV field a refused submission is about (for FILE:LINE: field 'F').
std::string field_of(const SubmitResult& r) {
  switch (r.outcome) {
    case Outcome::unknown_instrument:
      return "instrument";
    case Outcome::bad_signature:
      return "signature";
    case Outcome::conflict: {
      // "... was recorded with other contents: quantity '2' (recorded '1'), ..." names the first
      // field that differs; "package 'P' partly recorded: ..." is about the package.
      if (r.message.rfind("package ", 0) == 0) return "package_id";
      const std::string mark = "other contents: ";
      const std::size_t at = r.message.find(mark);
      if (at != std::string::npos) {
        const std::size_t from = at + mark.size();
        const std::string word = r.message.substr(from, r.message.find(' ', from) - from);
        for (const char* f : {"account", "instrument", "quantity", "price", "time", "package_id"})
          if (word == f) return word;
      }
      return "trade_id";
    }
    case Outcome::rejected:
      if (r.message.find("would overflow") != std::string::npos) return "quantity";
      if (r.message.find("package_id") != std::string::npos) return "package_id";
      if (r.message.find("repeated within the package") != std::string::npos) return "trade_id";
      return "";
    default:
      return "";
  }
}

std::unique_ptr<ClearingStore> open_store(const std::string& path, OpenMode mode, ClearingStoreOptions o = {}) {
  if (path.empty()) throw usage_error("--store STORE is required");
  return open_clearing_store(path, mode, std::move(o));
}

void run_import(const CommonOptions& common, const TradesOptions& o) {
  if (o.batch == 0) throw usage_error("trades import: --batch must be at least 1");
  // Validate the whole file first: a bad field stops the import before anything is recorded.
  std::vector<std::vector<long>> lines;
  const std::vector<Submission> subs = read_trade_submissions_csv(o.file, &lines);
  ClearingStoreOptions opts;
  if (!o.instruments.empty()) opts.instruments = instrument_ids(load_instruments(o.instruments));
  auto store = open_store(o.store, OpenMode::writer, std::move(opts));

  std::array<std::int64_t, kOutcomes.size()> submissions{}, rows{};
  std::int64_t refused = 0;
  Progress progress("importing " + o.file, subs.size(), common.quiet);
  for (std::size_t first = 0; first < subs.size(); first += o.batch) {
    const std::size_t n = std::min(o.batch, subs.size() - first);
    const std::vector<Submission> batch(subs.begin() + static_cast<std::ptrdiff_t>(first),
                                        subs.begin() + static_cast<std::ptrdiff_t>(first + n));
    const std::vector<SubmitResult> results = store->submit(batch);
    for (std::size_t i = 0; i < n; ++i) {
      const SubmitResult& r = results[i];
      const auto k = static_cast<std::size_t>(r.outcome);
      ++submissions[k];
      rows[k] += static_cast<std::int64_t>(batch[i].legs.size());
      if (r.outcome == Outcome::recorded || r.outcome == Outcome::duplicate) continue;
      ++refused;
      const std::vector<long>& at = lines[first + i];
      const long line = at.empty() ? 0 : at[r.bad_leg >= 0 && static_cast<std::size_t>(r.bad_leg) < at.size()
                                                 ? static_cast<std::size_t>(r.bad_leg)
                                                 : 0];
      std::cerr << input_error(o.file, line, field_of(r), std::string(to_string(r.outcome)) + ": " + r.message).what()
                << "\n";
    }
    progress.advance(first + n);
  }
  progress.finish();

  std::string summary;
  for (std::size_t k = 0; k < kOutcomes.size(); ++k) {
    if (kOutcomes[k] == Outcome::not_found) continue;
    summary += std::string(summary.empty() ? "" : ", ") + to_string(kOutcomes[k]) + " " +
               std::to_string(submissions[k]);
  }
  if (!common.quiet) spdlog::info("{} -> {}: {} submissions: {}", o.file, o.store, subs.size(), summary);
  {
    Table t;
    t.columns = {"outcome", "submissions", "rows"};
    for (std::size_t k = 0; k < kOutcomes.size(); ++k)
      if (kOutcomes[k] != Outcome::not_found) t.add_row({std::string(to_string(kOutcomes[k])), submissions[k], rows[k]});
    OutputSink sink(common.out);
    write_table(sink.stream(), t, common.format);
  }
  if (refused > 0)
    throw input_error(o.file, 0, "",
                      std::to_string(refused) + " of " + std::to_string(subs.size()) +
                          " submissions refused (" + summary + "); the others are recorded");
}

void run_list(const CommonOptions& common, const TradesOptions& o) {
  if (o.after_seq < 0 || o.limit < 0) throw usage_error("trades list: --after-seq and --limit must be >= 0");
  auto store = open_store(o.store, OpenMode::reader);
  JournalFilter f;
  f.account = o.account;
  f.instrument = o.instrument;
  f.after_seq = o.after_seq;
  f.limit = o.limit;
  Table t;
  t.columns = {"seq",  "kind",       "source",    "trade_id", "account", "instrument", "quantity",
               "price", "time", "package_id", "signature", "reason",   "recorded_at"};
  for (const JournalEntry& e : store->trades(f))
    t.add_row({e.seq, std::string(to_string(e.kind)), e.source, e.trade_id, e.account, e.instrument,
               quantity_text(e.quantity_units), e.price, e.time, e.package_id, e.signature_hex, e.reason,
               e.recorded_at});
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void run_cancel(const CommonOptions& common, const TradesOptions& o) {
  auto store = open_store(o.store, OpenMode::writer);
  const SubmitResult r = store->cancel(CancelRequest{o.source, o.trade_id, o.reason, o.time});
  if (r.outcome != Outcome::recorded && r.outcome != Outcome::duplicate)
    throw input_error(o.store, 0, "", std::string(to_string(r.outcome)) + ": " + r.message);
  OutputSink sink(common.out);
  const std::int64_t seq = r.journal_seqs.empty() ? 0 : r.journal_seqs.front();
  if (common.format == "json")
    sink.stream() << nlohmann::json({{"outcome", to_string(r.outcome)}, {"cancel_seq", seq}}).dump() << "\n";
  else
    sink.stream() << (r.outcome == Outcome::recorded ? "cancelled: " : "cancelled before: ") << "trade '"
                  << o.trade_id << "' of source '" << o.source << "', journal entry " << seq << "\n";
}

/// false when the store is damaged (the caller exits 1).
bool run_verify(const CommonOptions& common, const TradesOptions& o) {
  auto store = open_store(o.store, OpenMode::reader);
  const JournalVerifyReport rep = store->verify_journal();
  OutputSink sink(common.out);
  if (common.format == "json") {
    nlohmann::ordered_json j;
    j["ok"] = rep.ok;
    j["journal_entries"] = rep.journal_entries;
    j["trades"] = rep.trades;
    j["signatures_checked"] = rep.signatures_checked;
    j["problem_count"] = rep.problem_count;
    j["problems"] = rep.problems;
    sink.stream() << j.dump(2) << "\n";
  } else if (rep.ok) {
    sink.stream() << rep.summary() << "\n";
  } else {
    sink.stream() << "DAMAGED: " << rep.problem_count << " problem(s) in " << o.store << "\n";
    for (const std::string& p : rep.problems) sink.stream() << "  " << p << "\n";
    if (rep.problem_count > static_cast<std::int64_t>(rep.problems.size()))
      sink.stream() << "  ... and " << rep.problem_count - static_cast<std::int64_t>(rep.problems.size())
                    << " more\n";
  }
  sink.stream().flush();
  if (!rep.ok) std::cerr << "marginet: clearing store " << o.store << " is damaged (" << rep.problem_count << " problems)\n";
  return rep.ok;
}

void run_positions(const CommonOptions& common, const std::string& path, const std::string& account) {
  auto store = open_store(path, OpenMode::reader);
  Table t;
  t.columns = {"account", "instrument", "quantity"};
  for (const PositionRow& p : store->positions(account))
    t.add_row({p.account, p.instrument, quantity_text(p.quantity_units)});
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void store_option(CLI::App* cmd, TradesOptions& o) {
  cmd->add_option("--store", o.store, "Clearing store (SQLite file)")->required();
}

}  // namespace

void add_trades_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<TradesOptions>();
  CLI::App* cmd = app.add_subcommand("trades", "Trade capture into the clearing store: import, list, cancel, verify");
  cmd->require_subcommand(1);

  CLI::App* imp = cmd->add_subcommand(
      "import",
      "Record the trades of a CSV file (source,trade_id,account,instrument,quantity,price,time"
      "[,side][,package_id][,signature]) in batches of one commit.\n"
      "Every row is checked first: a bad field stops the import, nothing recorded (exit 2, file:line: field).\n"
      "Each submission (a trade, or the rows of one package) is then recorded all or nothing; a refused one\n"
      "(conflict, rejected, bad_signature, unknown_instrument) is named on stderr as FILE:LINE: field 'F': why,\n"
      "the others are recorded all the same, and the exit status is 2. Exit 0 when every submission is\n"
      "recorded or a duplicate (a re-import is all duplicates). Output: outcome,submissions,rows.");
  imp->add_option("FILE", o->file, "Trades CSV")->required();
  store_option(imp, *o);
  imp->add_option("--instruments", o->instruments, "instruments.csv: refuse trades of other instruments");
  imp->add_option("--batch", o->batch, "Submissions per transaction (one durable commit)")->capture_default_str();
  imp->callback([&common, o] { run_import(common, *o); });

  CLI::App* list = cmd->add_subcommand(
      "list", "Journal rows (trades and cancels) in seq order; quantity and price as exact decimal text");
  store_option(list, *o);
  list->add_option("--account", o->account, "Only this account");
  list->add_option("--instrument", o->instrument, "Only this instrument");
  list->add_option("--after-seq", o->after_seq, "Only rows with seq > N")->capture_default_str();
  list->add_option("--limit", o->limit, "At most N rows (0: all)")->capture_default_str();
  list->callback([&common, o] { run_list(common, *o); });

  CLI::App* cancel = cmd->add_subcommand(
      "cancel", "Cancel a recorded trade: a new journal entry with the negated quantity (exit 2 when not found)");
  cancel->add_option("SOURCE", o->source, "The trade's source")->required();
  cancel->add_option("TRADE_ID", o->trade_id, "The trade's id")->required();
  store_option(cancel, *o);
  cancel->add_option("--reason", o->reason, "Why (stored with the cancel)");
  cancel->add_option("--time", o->time, "Time of the cancel, ISO 8601 UTC (default: now)");
  cancel->callback([&common, o] { run_cancel(common, *o); });

  CLI::App* verify = cmd->add_subcommand(
      "verify", "Check the journal, digests, signatures and positions: exit 0 ok, 1 damaged (problems listed)");
  store_option(verify, *o);
  verify->callback([&common, o] {
    if (!run_verify(common, *o)) {
      std::cout.flush();
      std::exit(1);
    }
  });
}

void add_positions_command(CLI::App& app, CommonOptions& common) {
  auto store = std::make_shared<std::string>();
  auto account = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "positions", "Positions kept by the clearing store: account,instrument,quantity (exact decimal)");
  cmd->add_option("--store", *store, "Clearing store (SQLite file)")->required();
  cmd->add_option("--account", *account, "Only this account");
  cmd->callback([&common, store, account] { run_positions(common, *store, *account); });
}

}  // namespace marginet::cli
