// `marginet margin` (the end-of-day run) and `marginet whatif` (incremental margin of proposed
// trades for one account), SPEC §2 and §5.
//
//   marginet margin --instruments F --market F --marks F --positions F|--store S --model NAME|FILE
//                   [--risk-arrays F] [--device] [--format auto|table|csv|json] [--out F]
//                   [--collateral F] [--returns F] [--stress-returns F] [--paths N] [--seed N]
//     CSV: the columns of service/cli/margin_table.hpp (a unit column; deribit-pm in coin: a row
//          per account and currency); on a terminal an aligned table, figures rounded.
//     JSON: every figure with a `units` object, the per-underlying breakdown and the five worst
//          scenarios with their P&L (the fields of margin.result).
//     --store S reads the positions kept by a clearing store (opened as reader) instead of a
//     positions file: exactly one of the two.
//     Under mpirun / srun (docs/scale-out.md) the ranks share the accounts; rank 0 writes the
//     output, the same bytes as one process. [--split accounts|scenarios] [--partitions N]
//     [--resume] [--stats F]
//   marginet whatif --account A --trades F [--new-account] ... (same reference data, model,
//                   --positions or --store; an account with no position is an error unless
//                   --new-account)
//     trades.csv: instrument,quantity  (an optional account column must name A)
//
// Scenario ids in output are 1-based (span16's 1–16); 0 means none.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "host/collateral.hpp"
#include "host/margin_engine.hpp"
#include "models/money.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/reference_data.hpp"
#include "service/cli/common.hpp"
#include "service/cli/margin_table.hpp"
#include "service/cli/table.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/protocol.hpp"
#include "service/scaleout/checkpoint.hpp"
#include "service/scaleout/partitioned_run.hpp"

namespace marginet::cli {

namespace {

struct MarginOptions {
  std::string instruments, market, marks, positions, model = "span16", risk_arrays;
  std::string collateral, returns, stress_returns;
  std::size_t paths = 0;
  long long seed = -1;
  std::string account, trades;  // whatif
  bool new_account = false;     // whatif: the account may hold nothing yet
  std::string store;            // margin, whatif: positions from a clearing store instead of --positions
  std::size_t partitions = 0;   // margin: partitions of the book (0: one per rank)
  bool resume = false;          // margin: finished partitions from OUT.parts/
  std::string stats;            // margin: the distributed run's figures as JSON
  std::string split = "accounts";  // margin: what the ranks share out: accounts or scenarios
};

void add_reference_options(CLI::App* cmd, MarginOptions& o, bool positions_from_store = false) {
  cmd->add_option("--instruments", o.instruments, "instruments.csv")->required();
  cmd->add_option("--market", o.market, "market.csv")->required();
  cmd->add_option("--marks", o.marks, "marks.csv")->required();
  CLI::Option* positions =
      cmd->add_option("--positions", o.positions, "positions.csv (account,instrument,quantity)");
  if (positions_from_store) {
    CLI::Option* store =
        cmd->add_option("--store", o.store, "Clearing store (SQLite file): its kept positions instead of --positions");
    positions->excludes(store);
  } else {
    positions->required();
  }
  cmd->add_option("--model", o.model, "Methodology: span16, deribit-pm, hvar (needs --returns), mc-es, or a JSON file (examples/models/)")->capture_default_str();
  cmd->add_option("--risk-arrays", o.risk_arrays,
                  "span16 only: published risk arrays (instrument,s1..s16 losses per long unit)");
  cmd->add_option("--returns", o.returns, "hvar: daily returns (date,underlying,return[,vol_return])");
  cmd->add_option("--stress-returns", o.stress_returns, "hvar: stressed-period returns (a floor)");
  cmd->add_option("--paths", o.paths, "mc-es: number of paths (default 10000)");
  cmd->add_option("--seed", o.seed, "mc-es: random seed");
}

/// The methodology with the command line's overrides.
Methodology methodology_of(const MarginOptions& o) {
  Methodology m = load_methodology(o.model);
  if (!o.returns.empty()) m.hvar.returns = o.returns;
  if (!o.stress_returns.empty()) m.hvar.stress_returns = o.stress_returns;
  if (o.paths) m.mc.paths = o.paths;
  if (o.seed >= 0) m.mc.seed = static_cast<std::uint64_t>(o.seed);
  if ((!o.returns.empty() || !o.stress_returns.empty()) && m.kind != MethodologyKind::hvar)
    throw usage_error("--returns / --stress-returns apply to hvar only");
  return m;
}

/// Runs `body`, naming the marks file in errors about missing marks (they have no file yet).
template <class Body>
void naming_marks(const MarginOptions& o, Body&& body) {
  try {
    body();
  } catch (const input_error& e) {
    if (!e.file().empty()) throw;
    throw input_error(o.marks, 0, "instrument", e.what());
  }
}

/// The positions kept by a clearing store (opened as a reader), for the risk engine.
std::vector<Position> store_positions(const MarginOptions& o, const InstrumentTable& instruments) {
  return kept_positions(*open_clearing_store(o.store, OpenMode::reader), instruments, o.instruments);
}

/// One account's result: the fields margin.result carries (one definition, protocol.hpp).
nlohmann::ordered_json account_json(const AccountMargin& a, const ScenarioSet& set, const Methodology& m) {
  return nlohmann::ordered_json::from_msgpack(protocol::encode_account(a, set, m));
}

/// What a checkpoint's results depend on besides the partition's own book: the binary, the
/// backend, the methodology and every reference file (by name, size and modification time).
std::string run_identity(const MarginOptions& o, Backend backend) {
  std::string id = std::string(git_revision()) + "|" + backend_name(backend) + "|" + o.model + "|" +
                   std::to_string(o.paths) + "|" + std::to_string(o.seed);
  for (const std::string& f : {o.instruments, o.market, o.marks, o.risk_arrays, o.returns, o.stress_returns, o.model}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f, ec);
    const auto time = std::filesystem::last_write_time(f, ec);
    id += "|" + f + ":" + (ec ? std::string("-") : std::to_string(size) + "@" +
                                                      std::to_string(time.time_since_epoch().count()));
  }
  return id;
}

/// The distributed run's figures as JSON (--stats): the plan, and per rank its work and
/// communication, for bench/ and docs/scale-out.md.
void write_stats(const std::string& path, const scaleout::PartitionedRunResult& r) {
  nlohmann::ordered_json j;
  j["ranks"] = r.ranks.size();
  j["partitions"] = r.partitions;
  j["accounts"] = r.accounts;
  j["positions"] = r.positions;
  j["wall_s"] = r.wall_s;
  j["per_rank"] = nlohmann::ordered_json::array();
  for (const scaleout::RankReport& k : r.ranks)
    j["per_rank"].push_back({{"rank", k.rank},
                             {"partitions", k.partitions},
                             {"resumed", k.resumed},
                             {"accounts", k.accounts},
                             {"positions", k.positions},
                             {"compute_s", k.compute_s},
                             {"risk_arrays_s", k.times.risk_arrays_s},
                             {"aggregation_s", k.times.aggregation_s},
                             {"mpi_s", k.comm.seconds},
                             {"mpi_calls", k.comm.calls},
                             {"bytes_sent", k.comm.bytes_sent},
                             {"bytes_received", k.comm.bytes_received}});
  std::ofstream out(path);
  if (!out) throw input_error(path, 0, "", "cannot open for writing");
  out << j.dump(2) << "\n";
}

/// The EOD run. One process, or one rank of several under mpirun/srun (service/scaleout/):
/// rank 0 reads the book and writes the output, every rank computes partitions of it; the
/// output is the same bytes either way.
void run_margin(const CommonOptions& common, const MarginOptions& o) {
  if (o.positions.empty() == o.store.empty())
    throw usage_error("margin: give exactly one of --positions FILE or --store STORE");
  if (o.resume && common.out.empty()) throw usage_error("margin: --resume needs --out FILE (its checkpoints)");
  if (o.split == "scenarios" && (o.partitions || o.resume))
    throw usage_error("margin: --split scenarios keeps no partitions (--partitions, --resume split accounts)");
  const std::unique_ptr<scaleout::Communicator> comm = scaleout::make_communicator();
  const bool distributed = comm->size() > 1;
  if (distributed)
    spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ [rank " + std::to_string(comm->rank()) + "/" +
                        std::to_string(comm->size()) + "] %v");
  const bool root = comm->rank() == 0;

  Backend backend = Backend::cpu;
  std::optional<ReferenceData> ref;
  Methodology m;
  std::unique_ptr<MarginEngine> engine;
  auto prepare = [&] {
    CommonOptions quiet_here = common;
    quiet_here.quiet = common.quiet || !root;
    backend = resolve_backend(quiet_here);
    if (backend == Backend::cuda && distributed) {
      const int device = bind_cuda_device(comm->local_rank());
      if (!common.quiet) spdlog::info("GPU {} (local rank {})", device, comm->local_rank());
    }
    ref.emplace(load_reference_data(o.instruments, o.market, o.marks));
    m = methodology_of(o);
    engine = std::make_unique<MarginEngine>(ref->instruments, ref->market, m, backend);
    if (!o.risk_arrays.empty()) engine->use_published_risk_arrays(read_risk_arrays(o.risk_arrays));
  };
  auto load_book = [&] {
    scaleout::Book book;
    book.positions = o.store.empty() ? read_positions(o.positions, ref->instruments) : store_positions(o, ref->instruments);
    if (!o.collateral.empty()) book.holdings = read_collateral(o.collateral);
    return book;
  };
  // The accounts of a partition from their margin run: collateral applied, each encoded as the
  // output's JSON comes from it. An account with collateral and no positions is still an
  // account: IM 0, its collateral value.
  auto finish = [&](const scaleout::Book& book, MarginRun& run) {
    std::set<std::string> listed;
    for (const AccountMargin& a : run.accounts) listed.insert(a.account);
    for (const CollateralHolding& h : book.holdings)
      if (listed.insert(h.account).second) {
        AccountMargin a;
        a.account = h.account;
        a.model = m.name;
        run.accounts.push_back(std::move(a));
      }
    apply_collateral(run, book.holdings, ref->market, m);
    static const ScenarioSet none;
    const ScenarioSet& set = book.positions.empty() ? none : engine->scenarios();
    scaleout::PartitionResult out;
    out.times = run.times;
    for (const AccountMargin& a : run.accounts)
      out.records.push_back({a.account, protocol::encode_account(a, set, m)});
    return out;
  };
  // Split by accounts: one partition's accounts.
  auto compute = [&](const scaleout::Book& book) {
    MarginRun run;
    if (!book.positions.empty()) naming_marks(o, [&] { run = engine->run(book.positions); });
    return finish(book, run);
  };

  // Split by scenarios: every rank the whole book over its block of scenarios; rank 0 finishes.
  auto compute_block = [&](const scaleout::Book& book, std::size_t block, std::size_t blocks,
                           const MarginEngine::PnlExchange& exchange) {
    std::optional<MarginRun> run;
    StageTimes times;
    if (book.positions.empty()) {
      if (exchange(nullptr, 0, 0, 0, 0)) run.emplace();
    } else {
      naming_marks(o, [&] { run = engine->run_scenario_block(book.positions, block, blocks, exchange, &times); });
    }
    scaleout::PartitionResult part;
    if (run) part = finish(book, *run);
    part.times = times;
    return part;
  };

  scaleout::PartitionedRunOptions options;
  options.partitions = o.partitions;
  options.resume = o.resume;
  if (!common.out.empty() && o.split == "accounts" && (distributed || o.partitions > 1 || o.resume))
    options.checkpoint_dir = common.out + ".parts";
  // The identity is known once prepare() has resolved the backend; it only keys checkpoints.
  const scaleout::LogLine log = [&](const std::string& line) {
    if (!common.quiet) spdlog::info("{}", line);
  };
  scaleout::PartitionedRunResult result =
      o.split == "scenarios"
          ? scaleout::run_scenario_split(*comm, prepare, load_book, compute_block, distributed ? log : scaleout::LogLine{})
          : scaleout::run_partitioned(
                *comm, options,
                [&] {
                  prepare();
                  options.run_identity = run_identity(o, backend);
                },
                load_book, compute, distributed || o.partitions > 1 ? log : scaleout::LogLine{});
  if (!root) return;

  if (!common.quiet) {
    StageTimes t;
    for (const scaleout::RankReport& k : result.ranks) t += k.times;
    spdlog::info("{} accounts, {} positions: prepare {:.3f} s, risk arrays {:.3f} s ({} revaluations), "
                 "aggregation {:.3f} s, reduction {:.3f} s{}, total {:.3f} s",
                 result.accounts, result.positions, t.prepare_s, t.risk_arrays_s, t.revaluations, t.aggregation_s,
                 t.reduction_s,
                 result.partitions > 1
                     ? " (summed over " + std::to_string(result.partitions) + " " + result.unit + "s)"
                     : "",
                 result.wall_s);
    if (distributed)
      for (const scaleout::RankReport& k : result.ranks)
        spdlog::info("rank {}: {} {}{} ({} from checkpoints), {} positions, compute {:.3f} s, in MPI {:.3f} s, "
                     "sent {:.1f} MB, received {:.1f} MB",
                     k.rank, k.partitions, result.unit, k.partitions == 1 ? "" : "s", k.resumed, k.positions,
                     k.compute_s, k.comm.seconds,
                     static_cast<double>(k.comm.bytes_sent) / 1e6, static_cast<double>(k.comm.bytes_received) / 1e6);
  }
  if (!o.stats.empty()) write_stats(o.stats, result);

  OutputSink sink(common.out);
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const scaleout::ResultRecord& r : result.records) out.push_back(nlohmann::ordered_json::from_msgpack(r.bytes));
  result.records.clear();
  if (common.format == "json") {
    sink.stream() << out.dump(2) << "\n";
  } else {
    write_table(sink.stream(), margin_table(out, pretty_output(sink.stream(), common.format)), common.format);
  }
  sink.stream().flush();
  if (!sink.stream()) throw input_error(common.out, 0, "", "cannot write the output (disk full?)");
  if (!options.checkpoint_dir.empty()) scaleout::CheckpointDir(options.checkpoint_dir).remove_all();
}

std::vector<Position> read_trades(const std::string& path, const std::string& account,
                                  const InstrumentTable& instruments) {
  CsvReader csv(path, {"instrument", "quantity"});
  std::vector<Position> trades;
  while (csv.next()) {
    if (csv.has("account") && !csv.text("account").empty() && csv.text("account") != account)
      csv.fail("account", "trade for '" + csv.text("account") + "' in a what-if for '" + account + "'");
    const std::string& id = csv.required_text("instrument");
    if (!instruments.contains(id)) csv.fail("instrument", "unknown instrument '" + id + "'");
    trades.push_back(Position{account, instruments.index_of(id), csv.number("quantity")});
  }
  return trades;
}

void run_whatif(const CommonOptions& common, const MarginOptions& o) {
  const Backend backend = resolve_backend(common);
  const ReferenceData ref = load_reference_data(o.instruments, o.market, o.marks);
  if (o.positions.empty() == o.store.empty())
    throw usage_error("whatif: give exactly one of --positions FILE or --store STORE");
  std::vector<Position> positions;
  for (Position& p : o.store.empty() ? read_positions(o.positions, ref.instruments) : store_positions(o, ref.instruments))
    if (p.account == o.account) positions.push_back(std::move(p));
  if (positions.empty() && !o.new_account)
    throw input_error(o.store.empty() ? o.positions : o.store, 0, "account",
                      "account '" + o.account + "' holds no position here (a what-if of an account with no book yet: "
                      "--new-account)");
  const std::vector<Position> trades = read_trades(o.trades, o.account, ref.instruments);
  const Methodology m = methodology_of(o);
  MarginEngine engine(ref.instruments, ref.market, m, backend);
  if (!o.risk_arrays.empty()) engine.use_published_risk_arrays(read_risk_arrays(o.risk_arrays));
  // The account's own book is enough: its P&L rows are cached by the run, the trades added to
  // them; the traded instruments are covered by the scenario set and the risk-array cache.
  std::vector<std::size_t> traded;
  for (const Position& t : trades) traded.push_back(t.instrument);
  WhatIfResult w;
  naming_marks(o, [&] {
    engine.run(positions, traded);
    w = engine.whatif(o.account, trades);
  });
  if (!common.quiet)
    spdlog::info("what-if for {}: {} trades, {} instruments revalued", o.account, trades.size(),
                 w.instruments_revalued);
  OutputSink sink(common.out);
  nlohmann::ordered_json out;
  out["account"] = o.account;
  out["model"] = w.after.model;
  out["units"] = {{"im_change", "USD"}, {"mm_change", "USD"}};  // per coin: before/after underlyings
  out["im_change"] = w.im_change;
  out["mm_change"] = w.mm_change;
  out["before"] = account_json(w.before, engine.scenarios(), m);
  out["after"] = account_json(w.after, engine.scenarios(), m);
  if (common.format == "json") {
    sink.stream() << out.dump(2) << "\n";
    return;
  }
  write_table(sink.stream(),
              whatif_table(out["account"], out["before"], out["after"], pretty_output(sink.stream(), common.format)),
              common.format);
}

}  // namespace

void add_margin_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<MarginOptions>();
  CLI::App* cmd = app.add_subcommand("margin", "Margin of accounts' positions under a methodology (EOD run)");
  add_reference_options(cmd, *o, /*positions_from_store=*/true);
  cmd->add_option("--collateral", o->collateral, "collateral.csv (account,asset,amount): adds collateral value and call");
  cmd->add_option("--partitions", o->partitions,
                  "Split the accounts into N partitions balanced by positions, computed one after another on each "
                  "rank and checkpointed to OUT.parts/ (default: one per rank; under mpirun/srun the ranks share them)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--resume", o->resume,
                "Take the partitions a failed run finished from OUT.parts/ (same inputs, same --partitions)");
  cmd->add_option("--split", o->split,
                  "What the ranks share out: accounts (each rank margins whole accounts) or scenarios (each rank "
                  "revalues every instrument over a block of scenarios; rank 0 reduces; for books whose accounts "
                  "share most instruments)")
      ->check(CLI::IsMember({"accounts", "scenarios"}))
      ->capture_default_str();
  cmd->add_option("--stats", o->stats, "Write the run's plan and per-rank figures (work, MPI time, bytes) as JSON");
  cmd->callback([&common, o] { run_margin(common, *o); });
}

void add_whatif_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<MarginOptions>();
  CLI::App* cmd = app.add_subcommand("whatif", "Incremental margin of proposed trades for one account");
  add_reference_options(cmd, *o, /*positions_from_store=*/true);
  cmd->add_option("--account", o->account, "The account")->required();
  cmd->add_option("--trades", o->trades, "Proposed trades: instrument,quantity")->required();
  cmd->add_flag("--new-account", o->new_account, "The account holds no position yet (else that is an error)");
  cmd->callback([&common, o] { run_whatif(common, *o); });
}

}  // namespace marginet::cli
