// Trade capture through the service (issue 13): a MarginServer with a clearing store in this
// process on tcp://127.0.0.1:*, DEALER clients (service/margin/client.hpp) in closed loop.
//
//   BM_StoreOneTradePerCommit      baseline: ClearingStore::submit of one trade per transaction,
//                                  in process — one durable commit (fsync) per trade
//   BM_TradeSubmit/clients:N       trade.submit of single trades over loopback; contiguous
//                                  submits share one commit — trades/s, p50/p99 µs
//   BM_TradeSubmitPipelined/in_flight:N
//                                  one DEALER streaming trade.submit with N in flight: the
//                                  server records up to 1,024 per commit — trades/s
//   BM_PackagePretrade             a two-leg RFQ package of an account with a pre-trade headroom:
//                                  what-if on the cached rows, then recorded — p50/p99 µs;
//                                  beside it BM_WhatIfSameAccount, the what-if alone (no store)
//   BM_EodFromFiles / BM_EodFromStore
//                                  the end-of-day book (MARGINET_EOD_POSITIONS, default 1M
//                                  positions; span16) loaded from positions.csv or from the
//                                  store's kept positions, then margined — load and run timed
//   BM_CallRunEod                  the end-of-day call run from the same store (issue 14): load,
//                                  margin, value collateral, record every call and the cycle
//
//   bench_capture_service [--device=cpu|cuda] [--benchmark_format=json]
//
// The store lives in the system temp folder; its fsync is the floor of every durable figure.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "bench/bench_context.hpp"
#include "bench/live_server.hpp"
#include "host/book_generator.hpp"
#include "host/margin_engine.hpp"
#include "models/reference_data.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/call_run.hpp"
#include "service/margin/client.hpp"
#include "service/margin/server.hpp"

namespace {

using namespace marginet;
using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;
using bench::LiveServer;
using bench::percentile;

const std::string kDir = std::filesystem::temp_directory_path().string() + "/marginet_bench_capture";

double micros_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

/// Reference data of the small book (examples-sized: 2 underlyings, 400 instruments).
const GeneratedBook& small_book() {
  static const GeneratedBook book = [] {
    BookSpec spec;
    spec.underlyings = 2;
    spec.instruments = 400;
    spec.accounts = 8;
    spec.positions = 1600;
    spec.seed = 5;
    GeneratedBook b = generate_book(spec);
    write_book(b, kDir + "/small");
    return b;
  }();
  return book;
}


ClientOptions connection(const LiveServer& live) {
  ClientOptions o;
  o.endpoint = live.server->endpoint();
  o.timeout_ms = 60'000;
  return o;
}

ServerOptions small_server(const std::string& store) {
  small_book();
  ServerOptions o;
  o.instruments = kDir + "/small/instruments.csv";
  o.market = kDir + "/small/market.csv";
  o.marks = kDir + "/small/marks.csv";
  o.model = "span16";
  o.store = store;
  return o;
}

std::string fresh_store(const std::string& name) {
  std::filesystem::create_directories(kDir);
  const std::string path = kDir + "/" + name + ".sqlite";
  for (const char* suffix : {"", "-wal", "-shm", "-writer.lock"}) std::filesystem::remove(path + suffix);
  return path;
}

TradeInput make_trade(const std::string& id, const std::string& account, const std::string& instrument,
                      const std::string& quantity);

/// The positions of a generated book as one trade each, at the store's 8 decimals (the
/// positions.csv of write_book() carries the same rounding, so both books are the same).
std::vector<Submission> trades_of(const GeneratedBook& book, const std::string& prefix) {
  std::vector<Submission> out;
  for (const Position& p : book.positions) {
    char q[40];
    std::snprintf(q, sizeof q, "%.8f", p.quantity);
    if (std::strtod(q, nullptr) == 0) continue;
    out.push_back(Submission::trade(
        make_trade(prefix + std::to_string(out.size()), p.account, book.instruments[p.instrument].id, q)));
  }
  return out;
}

TradeInput make_trade(const std::string& id, const std::string& account, const std::string& instrument,
                      const std::string& quantity) {
  TradeInput t;
  t.source = "bench";
  t.trade_id = id;
  t.account = account;
  t.instrument = instrument;
  t.quantity_text = quantity;
  t.price_text = "0.0125";
  t.time = "2024-06-28T08:00:00Z";
  return t;
}

void BM_StoreOneTradePerCommit(benchmark::State& state) {
  const GeneratedBook& book = small_book();
  auto store = open_clearing_store(fresh_store("one_per_commit"), OpenMode::writer);
  std::size_t n = 0;
  for (auto _ : state) {
    const auto r = store->submit({Submission::trade(make_trade("T" + std::to_string(n), "ACC", book.instruments[n % 50].id, "1"))});
    if (r[0].outcome != Outcome::recorded) state.SkipWithError(r[0].message.c_str());
    ++n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}

void BM_TradeSubmit(benchmark::State& state) {
  const GeneratedBook& book = small_book();
  const auto clients = static_cast<std::size_t>(state.range(0));
  constexpr int kPerClient = 400;
  LiveServer live(small_server(fresh_store("wire")));
  std::vector<std::unique_ptr<MarginClient>> conns;
  for (std::size_t c = 0; c < clients; ++c)
    conns.push_back(std::make_unique<MarginClient>(connection(live)));
  std::vector<double> latencies, store_us;
  std::size_t trades = 0, round = 0;
  double wall = 0;
  std::atomic<bool> failed{false};
  for (auto _ : state) {
    std::vector<std::vector<double>> lat(clients), in_store(clients);
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        for (int k = 0; k < kPerClient; ++k) {
          const std::string id = std::to_string(round) + "-" + std::to_string(c) + "-" + std::to_string(k);
          const auto s = Clock::now();
          const json r = conns[c]->submit_trades(
              {make_trade(id, "ACC" + std::to_string(c), book.instruments[static_cast<std::size_t>(k) % 50].id, "1")});
          lat[c].push_back(micros_since(s));
          if (r["type"] != "trade.submit.result") failed = true;
          else in_store[c].push_back(r["store_us"].get<double>());
        }
      });
    for (auto& t : threads) t.join();
    wall += std::chrono::duration<double>(Clock::now() - t0).count();
    for (auto& l : lat) latencies.insert(latencies.end(), l.begin(), l.end());
    for (auto& l : in_store) store_us.insert(store_us.end(), l.begin(), l.end());
    trades += clients * kPerClient;
    ++round;
  }
  if (failed) state.SkipWithError("a trade.submit was refused");
  state.SetItemsProcessed(static_cast<std::int64_t>(trades));
  state.counters["trades_per_s"] = static_cast<double>(trades) / wall;
  state.counters["p50_us"] = percentile(latencies, 0.50);
  state.counters["p99_us"] = percentile(latencies, 0.99);
  state.counters["commit_p50_us"] = percentile(store_us, 0.50);  // the store's transaction
}

/// One DEALER with `window` submits in flight (a capture gateway streaming trades): the server
/// finds them queued back to back and records up to 1,024 per commit.
void BM_TradeSubmitPipelined(benchmark::State& state) {
  const GeneratedBook& book = small_book();
  const auto window = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t kTrades = 20'000;
  LiveServer live(small_server(fresh_store("pipelined")));
  MarginClient client(connection(live));
  std::size_t trades = 0, round = 0;
  double wall = 0;
  for (auto _ : state) {
    std::vector<std::string> frames;
    frames.reserve(kTrades);
    for (std::size_t k = 0; k < kTrades; ++k) {
      const TradeInput t = make_trade(std::to_string(round) + "-" + std::to_string(k), "ACC" + std::to_string(k % 16),
                                      book.instruments[k % 50].id, "1");
      const json req{{"v", 1}, {"type", "trade.submit"}, {"id", k},
                     {"trade", {{"source", t.source}, {"trade_id", t.trade_id}, {"account", t.account},
                                {"instrument", t.instrument}, {"quantity", t.quantity_text}, {"price", t.price_text},
                                {"time", t.time}}}};
      const auto bytes = json::to_msgpack(req);
      frames.emplace_back(bytes.begin(), bytes.end());
    }
    const auto t0 = Clock::now();
    std::size_t sent = 0, received = 0;
    while (received < kTrades) {
      while (sent < kTrades && sent - received < window) client.send_raw(frames[sent++]);
      const auto frame = client.receive_raw(60'000);
      if (!frame || json::from_msgpack(*frame)["type"] != "trade.submit.result") {
        state.SkipWithError("a trade.submit was refused or unanswered");
        return;
      }
      ++received;
    }
    wall += std::chrono::duration<double>(Clock::now() - t0).count();
    trades += kTrades;
    ++round;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(trades));
  state.counters["trades_per_s"] = static_cast<double>(trades) / wall;
}

/// The account of the what-if and pre-trade figures: the small book's first account, headroom 10.
struct PretradeFixture {
  std::string store, account;
  std::vector<std::string> instruments;
  PretradeFixture() {
    const GeneratedBook& book = small_book();
    store = fresh_store("pretrade");
    account = book.positions.front().account;
    {
      auto st = open_clearing_store(store, OpenMode::writer);
      const std::vector<Submission> subs = trades_of(book, "B");
      st->submit(subs);
      st->set_pretrade_headroom(account, 10.0);
    }
    for (std::size_t i = 0; i < 50; ++i) instruments.push_back(book.instruments[i].id);
  }
};

void BM_PackagePretrade(benchmark::State& state) {
  PretradeFixture f;
  ServerOptions o = small_server(f.store);
  const std::string collateral = kDir + "/collateral.csv";
  {
    std::FILE* c = std::fopen(collateral.c_str(), "w");
    std::fprintf(c, "account,asset,amount\n%s,USD,1000000000\n", f.account.c_str());
    std::fclose(c);
  }
  o.collateral = collateral;
  LiveServer live(o);
  MarginClient client(connection(live));
  std::vector<double> latencies;
  std::size_t n = 0;
  for (auto _ : state) {
    const std::string id = "P" + std::to_string(n);
    const auto s = Clock::now();
    const json r = client.submit_trades({make_trade(id + "a", f.account, f.instruments[n % 50], "1"),
                                         make_trade(id + "b", f.account, f.instruments[(n + 7) % 50], "-1")},
                                        id);
    latencies.push_back(micros_since(s));
    if (r["type"] != "trade.submit.result" || !r.contains("pretrade")) {
      state.SkipWithError(r.dump().substr(0, 200).c_str());
      break;
    }
    ++n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["p50_us"] = percentile(latencies, 0.50);
  state.counters["p99_us"] = percentile(latencies, 0.99);
}

void BM_WhatIfSameAccount(benchmark::State& state) {
  PretradeFixture f;
  LiveServer live(small_server(f.store));
  MarginClient client(connection(live));
  std::vector<double> latencies;
  std::size_t n = 0;
  for (auto _ : state) {
    const auto s = Clock::now();
    const json r = client.whatif(f.account, {{f.account, f.instruments[n % 50], 1.0}, {f.account, f.instruments[(n + 7) % 50], -1.0}});
    latencies.push_back(micros_since(s));
    if (r["type"] != "whatif.result") {
      state.SkipWithError("what-if failed");
      break;
    }
    ++n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["p50_us"] = percentile(latencies, 0.50);
  state.counters["p99_us"] = percentile(latencies, 0.99);
}

// ---- the end-of-day run from files and from the store ------------------------------------------

struct EodInputs {
  std::string dir, store;
  std::size_t positions = 0;
};

const EodInputs& eod_inputs() {
  static const EodInputs in = [] {
    const BookSpec spec = bench::eod_book_spec();
    EodInputs r;
    r.dir = kDir + "/eod-" + std::to_string(spec.positions);
    r.store = r.dir + "/clearing.sqlite";
    const GeneratedBook book = generate_book(spec);
    write_book(book, r.dir);
    for (const char* suffix : {"", "-wal", "-shm", "-writer.lock"}) std::filesystem::remove(r.store + suffix);
    auto st = open_clearing_store(r.store, OpenMode::writer);
    const std::vector<Submission> trades = trades_of(book, "E");
    for (std::size_t i = 0; i < trades.size(); i += 4096)
      st->submit(std::vector<Submission>(trades.begin() + static_cast<std::ptrdiff_t>(i),
                                         trades.begin() + static_cast<std::ptrdiff_t>(std::min(trades.size(), i + 4096))));
    const std::size_t n = trades.size();
    r.positions = n;
    return r;
  }();
  return in;
}

void run_eod(benchmark::State& state, bool from_store) {
  const EodInputs& in = eod_inputs();
  const ReferenceData ref = load_reference_data(in.dir + "/instruments.csv", in.dir + "/market.csv", in.dir + "/marks.csv");
  double load_s = 0, run_s = 0;
  std::size_t accounts = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    std::vector<Position> positions;
    if (from_store) {
      positions = kept_positions(*open_clearing_store(in.store, OpenMode::reader), ref.instruments, "instruments.csv");
    } else {
      positions = read_positions(in.dir + "/positions.csv", ref.instruments);
    }
    const auto t1 = Clock::now();
    MarginEngine engine(ref.instruments, ref.market, load_methodology("span16"), bench::backend());
    accounts = engine.run(positions).accounts.size();
    load_s += std::chrono::duration<double>(t1 - t0).count();
    run_s += std::chrono::duration<double>(Clock::now() - t1).count();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["positions"] = static_cast<double>(in.positions);
  state.counters["accounts"] = static_cast<double>(accounts);
  state.counters["load_s"] = load_s / n;
  state.counters["margin_s"] = run_s / n;
}

void BM_EodFromFiles(benchmark::State& state) { run_eod(state, false); }
void BM_EodFromStore(benchmark::State& state) { run_eod(state, true); }

/// The end-of-day call run over the same store (issue 14): kept positions loaded, margined,
/// collateral valued, every account's call recorded with its cycle in the outbox — one
/// transaction. Baseline: BM_EodFromStore (load + margin only).
void BM_CallRunEod(benchmark::State& state) {
  const EodInputs& in = eod_inputs();
  const ReferenceData ref = load_reference_data(in.dir + "/instruments.csv", in.dir + "/market.csv", in.dir + "/marks.csv");
  const Methodology method = load_methodology("span16");
  ClearingStoreOptions so;
  so.instruments = instrument_ids(ref.instruments);
  auto store = open_clearing_store(in.store, OpenMode::writer, so);
  MarginEngine engine(ref.instruments, ref.market, method, bench::backend());
  std::size_t accounts = 0, called = 0;
  double compute_ms = 0;
  int k = 0;
  for (auto _ : state) {
    CallRunRequest rq;
    rq.run_id = "bench-" + utc_id_stamp(unix_time_now()) + "-" + std::to_string(k++);
    rq.kind = "eod";
    const CallRunOutcome r = run_margin_calls(CallRunInputs{*store, ref, "instruments.csv", method, engine}, rq);
    accounts = r.run.calls.size();
    std::size_t n = 0;
    for (const CallRecord& c : r.run.calls) n += c.call_minor > 0;
    called = std::max(called, n);  // the first run calls everyone; later ones see those calls in transit
    compute_ms += r.run.compute_ms;
  }
  state.counters["positions"] = static_cast<double>(in.positions);
  state.counters["accounts"] = static_cast<double>(accounts);
  state.counters["calls"] = static_cast<double>(called);
  state.counters["before_record_s"] = compute_ms / 1000.0 / static_cast<double>(state.iterations());
}

BENCHMARK(BM_StoreOneTradePerCommit)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_TradeSubmit)->ArgNames({"clients"})->Arg(1)->Arg(16)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TradeSubmitPipelined)->ArgNames({"in_flight"})->Arg(1024)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PackagePretrade)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_WhatIfSameAccount)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_EodFromFiles)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_EodFromStore)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_CallRunEod)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(2);

}  // namespace

MARGINET_BENCHMARK_MAIN();
