#include "service/margin/server.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include "host/collateral.hpp"
#include "host/greeks_engine.hpp"
#include "host/margin_engine.hpp"
#include "host/netting_engine.hpp"
#include "models/asset.hpp"
#include "models/errors.hpp"
#include "models/methodology.hpp"
#include "models/money.hpp"
#include "models/positions.hpp"
#include "models/reference_data.hpp"
#include "models/trade.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/call_run.hpp"
#include "service/margin/default_management.hpp"
#include "service/margin/settlement_link.hpp"

namespace marginet {

namespace {

using Clock = std::chrono::steady_clock;
using protocol::ErrorCode;
using protocol::Request;
using protocol::RequestType;

std::atomic<bool> g_signal_stop{false};
extern "C" void on_shutdown_signal(int) { g_signal_stop.store(true); }

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Job {
  Request request;                    // type, id_raw and priority always; the rest once decoded
  std::vector<std::string> envelope;  // ROUTER routing frames (and a REQ delimiter, if any)
  Clock::time_point received;
  double decode_us = 0;               // the socket thread's decoding of the frame
  std::string raw;                    // a large frame, decoded by the compute thread ("" = decoded)
  std::size_t charged = 0;            // bytes counted against the client's and the total bound
};

/// Frames above this are decoded by the compute thread, so that the socket thread keeps
/// answering ping and status while a large request is decoded.
constexpr std::size_t kDeferDecodeBytes = 64 << 10;
/// How much of a deferred frame the socket thread reads for its header.
constexpr std::size_t kPeekBytes = 4096;
/// Client bytes the socket thread takes in per poll round before it polls again (so that a
/// burst of large frames cannot keep a ping waiting).
constexpr std::size_t kRoundBytes = 8 << 20;

/// Instruments of a what-if book engine's cache: all of them for tables of a moderate size
/// (every later what-if is then a cache hit), else one per underlying (so every underlying is
/// in the scenario set; other traded instruments are revalued on demand).
constexpr std::size_t kCoverAllInstruments = 20'000;

/// trade.submit requests queued back to back are recorded in one store transaction (one
/// durable commit) of at most this many submissions.
constexpr std::size_t kMaxTradeBatch = 1024;

TradeInput to_trade_input(const protocol::TradeLeg& leg) {
  TradeInput t;
  t.source = leg.source;
  t.trade_id = leg.trade_id;
  t.account = leg.account;
  t.instrument = leg.instrument;
  t.quantity_text = leg.quantity;
  if (!leg.side.empty()) t.side = leg.side == "buy" ? Side::buy : Side::sell;
  t.price_text = leg.price;
  t.time = leg.time;
  t.package_id = leg.package_id;
  t.signature_hex = leg.signature;
  return t;
}

ErrorCode error_code_of(Outcome outcome) {
  switch (outcome) {
    case Outcome::conflict: return ErrorCode::conflict;
    case Outcome::bad_signature: return ErrorCode::bad_signature;
    case Outcome::unknown_instrument: return ErrorCode::unknown_instrument;
    case Outcome::not_found: return ErrorCode::not_found;
    default: return ErrorCode::bad_request;
  }
}

std::uint64_t fnv1a(std::string_view text, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

void install_server_signal_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_shutdown_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

struct MarginServer::Impl {
  ServerOptions opt;
  zmq::context_t context{1};
  std::unique_ptr<ZapHandler> zap;
  zmq::socket_t router, results_in, results_out;
  std::string endpoint;

  // --- compute-thread state (after construction) ---
  ReferenceData ref;
  Methodology method;
  PublishedRiskArrays published;
  std::vector<Position> book;
  std::vector<std::size_t> cover;
  std::unique_ptr<ClearingStore> store;    // --store: trade capture, the book's positions
  std::unique_ptr<SettlementLink> link;    // --scheduler: the outbox to the scheduler
  std::vector<CollateralHolding> collateral;  // --collateral: the pre-trade check's collateral
  std::unique_ptr<MarginEngine> batch_engine, book_engine;
  std::size_t book_accounts = 0;
  bool greeks_valid = false;
  GreeksTable greeks;
  std::uint64_t cycle_seq = 0;
  struct ScheduledRun {
    int minute_of_day;  // UTC
    std::string kind;   // eod | intraday
  };
  std::vector<ScheduledRun> schedule;
  std::set<std::string> scheduled_done;  // run ids done (or found done) since start
  DefaultFundConfig fund;                // default management of members the scheduler hands over
  std::atomic<bool> defaults_due{false}; // a report brought a missed pay-in (or the service started)
  const double started_unix = unix_now();

  // --- queues ---
  std::mutex mu;
  // Held by the compute thread while it runs work (requests, scheduled call runs, missed
  // pay-ins); the socket thread's what-if fast lane takes it only when it is free.
  std::mutex engine_mu;
  std::atomic<std::uint64_t> whatif_fast{0};  // what-ifs answered on the fast lane
  std::condition_variable cv;
  std::deque<Job> high, normal;
  std::unordered_map<std::string, std::size_t> queued_bytes;  // client identity -> bytes charged
  std::size_t queued_bytes_total = 0;
  bool stopping = false;
  std::atomic<bool> compute_done{false}, computing{false}, stop_requested{false};
  std::atomic<std::uint64_t> batches_run{0}, market_updates{0}, compute_errors{0};
  std::atomic<std::int64_t> journal_entries{0};  // the store's journal length, for status
  std::thread compute;

  // --- socket-thread statistics ---
  Clock::time_point started = Clock::now();
  std::uint64_t requests_total = 0, margin_requests = 0, errors = 0, busy = 0, unroutable = 0;
  std::vector<double> latencies = std::vector<double>(8192, 0.0);
  std::size_t latency_count = 0;

  explicit Impl(ServerOptions o) : opt(std::move(o)) {
    if (opt.instruments.empty() || opt.market.empty() || opt.marks.empty())
      throw usage_error("serve needs --instruments, --market and --marks");
    ref = load_reference_data(opt.instruments, opt.market, opt.marks);
    method = load_methodology(opt.model);
    if (!opt.returns.empty()) method.hvar.returns = opt.returns;
    if (!opt.stress_returns.empty()) method.hvar.stress_returns = opt.stress_returns;
    if (opt.paths) method.mc.paths = opt.paths;
    if (opt.seed >= 0) method.mc.seed = static_cast<std::uint64_t>(opt.seed);
    if ((!opt.returns.empty() || !opt.stress_returns.empty()) && method.kind != MethodologyKind::hvar)
      throw usage_error("--returns / --stress-returns apply to hvar only");
    if (!opt.risk_arrays.empty()) published = read_risk_arrays(opt.risk_arrays);
    if (!opt.positions.empty() && !opt.store.empty())
      throw usage_error("serve: give --positions or --store, not both (the store's positions are the book)");
    if (!opt.positions.empty()) book = read_positions(opt.positions, ref.instruments);
    if (!opt.collateral.empty()) collateral = read_collateral(opt.collateral);
    if (!opt.store.empty()) {
      ClearingStoreOptions so;
      so.instruments = instrument_ids(ref.instruments);
      store = open_clearing_store(opt.store, OpenMode::writer, std::move(so));
      journal_entries = store->journal_size();
      defaults_due = true;  // hand-overs a previous run recorded and did not act on
    }
    fund = opt.default_fund.empty() ? builtin_default_fund_config() : load_default_fund_config(opt.default_fund);
    if (ref.instruments.size() <= kCoverAllInstruments) {
      for (std::size_t i = 0; i < ref.instruments.size(); ++i) cover.push_back(i);
    } else {
      std::set<std::string> seen;
      for (std::size_t i = 0; i < ref.instruments.size(); ++i)
        if (seen.insert(ref.instruments[i].underlying).second) cover.push_back(i);
    }
    rebuild_engines();  // margins the book: bad reference data fails here, before binding

    if (opt.curve.enabled()) {
      const CurveKeyPair keys = read_curve_key_file(opt.curve.secret_key_file);
      std::set<std::string> allowed;
      if (!opt.curve.allow_list_file.empty()) allowed = read_curve_allow_list(opt.curve.allow_list_file);
      zap = std::make_unique<ZapHandler>(context, std::move(allowed), opt.curve.domain);
      router = zmq::socket_t(context, zmq::socket_type::router);
      enable_curve_server(router, keys, opt.curve.domain);
    } else {
      router = zmq::socket_t(context, zmq::socket_type::router);
    }
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::router_mandatory, true);
    // libzmq drops the connection of a peer sending more than maxmsgsize; frames between the
    // protocol limit and this hard cap are answered with too_large.
    router.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(2 * opt.limits.max_frame_bytes + (64 << 10)));
    router.set(zmq::sockopt::sndhwm, opt.max_unsent_replies);
    router.set(zmq::sockopt::rcvhwm, 10000);
    try {
      router.bind(opt.bind);
    } catch (const zmq::error_t& e) {
      throw usage_error("cannot bind " + opt.bind + ": " + e.what());
    }
    endpoint = router.get(zmq::sockopt::last_endpoint);

    results_in = zmq::socket_t(context, zmq::socket_type::pair);
    results_in.set(zmq::sockopt::linger, 0);
    results_in.bind("inproc://marginet-results");
    results_out = zmq::socket_t(context, zmq::socket_type::pair);
    results_out.set(zmq::sockopt::linger, 0);
    results_out.set(zmq::sockopt::sndhwm, 0);  // never drop a reply between the threads
    results_out.connect("inproc://marginet-results");
    if (!opt.eod_time.empty()) schedule.push_back({parse_hhmm(opt.eod_time, "--eod-time"), "eod"});
    for (const std::string& t : opt.call_times) schedule.push_back({parse_hhmm(t, "--call-times"), "intraday"});
    if (!schedule.empty() && !store) throw usage_error("serve: --eod-time / --call-times need --store");
    if (!opt.scheduler.empty()) {
      if (!store)
        throw usage_error("serve: --scheduler needs --store (the outbox that hands cycles to the scheduler is in the store)");
      SettlementLinkOptions lo;
      lo.endpoint = opt.scheduler;
      lo.scheduler_key_file = opt.scheduler_key_file;
      lo.client_key_file = opt.scheduler_client_key_file;
      lo.quiet = opt.quiet;
      lo.on_missed_pay_in = [this](const ReportApplied::MissedPayIn&, const std::string&) {
        {
          std::lock_guard<std::mutex> lk(mu);  // set under the lock the compute thread waits with
          defaults_due = true;
        }
        cv.notify_one();
      };
      link = std::make_unique<SettlementLink>(context, *store, lo);
    }
  }

  static int parse_hhmm(const std::string& text, const char* option) {
    int h = -1, m = -1;
    char extra = 0;
    if (std::sscanf(text.c_str(), "%d:%d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 || m < 0 || m > 59 ||
        text.size() != 5)
      throw usage_error(std::string(option) + ": '" + text + "' is not a UTC time HH:MM");
    return h * 60 + m;
  }

  // ------------------------------------------------------------------ compute thread

  void rebuild_engines() {
    if (store) book = kept_positions(*store, ref.instruments, opt.instruments);
    auto make = [&] {
      auto e = std::make_unique<MarginEngine>(ref.instruments, ref.market, method, opt.backend);
      if (!published.empty()) e->use_published_risk_arrays(published);
      return e;
    };
    batch_engine = make();
    book_engine.reset();
    book_accounts = 0;
    if (!book.empty() || store) {  // with a store the book engine exists from the first trade on
      auto e = make();
      const MarginRun run = e->run(book, cover);
      book_accounts = run.accounts.size();
      book_engine = std::move(e);
    }
    greeks_valid = false;
    try {
      greeks = compute_greeks(opt.backend, ref.instruments, ref.market);
      greeks_valid = true;
    } catch (const std::exception& e) {
      if (!opt.quiet) spdlog::warn("greeks not available for this market: {}", e.what());
    }
  }

  void reply(const Job& job, const std::string& frame) {
    std::vector<zmq::message_t> parts;
    const std::int64_t t = job.received.time_since_epoch().count();
    results_out.send(zmq::buffer(&t, sizeof t), zmq::send_flags::sndmore);
    for (const std::string& e : job.envelope) results_out.send(zmq::buffer(e), zmq::send_flags::sndmore);
    results_out.send(zmq::buffer(frame), zmq::send_flags::none);
  }

  void reply_error(const Job& job, ErrorCode code, const std::string& message) {
    ++compute_errors;
    reply(job, protocol::encode_error(job.request.id_raw, code, message));
  }

  std::vector<Position> resolve(const std::vector<protocol::RequestPosition>& in) const {
    std::vector<Position> out;
    out.reserve(in.size());
    std::size_t name_bytes = 0;  // a Position copies its account's name, which `in` shares
    for (const auto& p : in) {
      if ((name_bytes += p.account.size()) > protocol::kMaxPositionNameBytes)
        throw protocol::protocol_error(ErrorCode::too_large, "positions x account-name bytes exceed 64 MiB");
      const Instrument* inst = ref.instruments.find(p.instrument);
      if (!inst)
        throw protocol::protocol_error(ErrorCode::unknown_instrument, "unknown instrument '" + p.instrument.substr(0, 128) + "'");
      out.push_back(Position{p.account, ref.instruments.index_of(p.instrument), p.quantity});
    }
    return out;
  }

  /// Runs `body` for `job`, turning every failure into an error reply.
  template <class Body>
  void reply_on_failure(const Job& job, Body&& body) {
    try {
      body();
    } catch (const protocol::protocol_error& e) {
      reply_error(job, e.code(), e.what());
    } catch (const input_error& e) {
      reply_error(job, ErrorCode::bad_request, e.what());
    } catch (const usage_error& e) {
      reply_error(job, ErrorCode::bad_request, e.what());
    } catch (const std::exception& e) {
      spdlog::error("internal error serving {}: {}", protocol::request_type_name(job.request.type), e.what());
      reply_error(job, ErrorCode::internal, std::string("internal error: ") + e.what());
    }
  }

  void run_margin_jobs(const std::vector<const Job*>& jobs, const std::vector<std::vector<Position>>& positions) {
    std::vector<Position> all;
    for (const auto& p : positions) all.insert(all.end(), p.begin(), p.end());
    std::vector<CollateralHolding> holdings;
    for (const Job* job : jobs)
      for (const auto& c : job->request.margin.collateral) holdings.push_back({c.account, c.asset, c.amount});
    const auto t0 = Clock::now();
    MarginRun run = batch_engine->run(all);
    apply_collateral(run, holdings, ref.market, method);
    const double compute_us = micros(Clock::now() - t0);
    for (const Job* job : jobs) {
      const auto& req = job->request.margin;
      const std::unordered_set<std::string> mine(req.accounts.begin(), req.accounts.end());
      std::vector<const AccountMargin*> accounts;
      for (const AccountMargin& a : run.accounts)
        if (mine.count(a.account)) accounts.push_back(&a);
      // A query: no side effects (calls come from call runs only), so no settlement cycle.
      protocol::BatchInfo info{jobs.size(), all.size(), compute_us, micros(t0 - job->received)};
      reply(*job, protocol::encode_margin_result(job->request.id_raw, method.name, accounts, batch_engine->scenarios(),
                                                 info, std::string(), method));
    }
  }

  void process_margin(std::vector<Job>& batch) {
    std::vector<const Job*> ok;
    std::vector<std::vector<Position>> positions;
    for (const Job& job : batch)
      reply_on_failure(job, [&] {
        positions.push_back(resolve(job.request.margin.positions));
        ok.push_back(&job);
      });
    if (ok.empty()) return;
    try {
      run_margin_jobs(ok, positions);
    } catch (const std::exception& e) {
      if (ok.size() == 1) {
        reply_on_failure(*ok[0], [&]() -> void { throw; });
        return;
      }
      // One bad portfolio must not fail the others: run each alone.
      for (std::size_t i = 0; i < ok.size(); ++i)
        reply_on_failure(*ok[i], [&] { run_margin_jobs({ok[i]}, {positions[i]}); });
    }
  }

  /// A what-if on the cached rows: the reply frame. On the compute thread, or on the socket
  /// thread's fast lane while it holds engine_mu.
  std::string whatif_from_cache(const Request& request, protocol::WhatIfTiming timing, Clock::time_point received) {
    const auto& req = request.whatif;
    const std::vector<Position> trades = resolve(req.trades);
    const auto t0 = Clock::now();
    timing.queue_us = micros(t0 - received) - timing.decode_us;
    const WhatIfResult w = book_engine->whatif(req.account, trades);
    timing.engine_us = micros(Clock::now() - t0);
    return protocol::encode_whatif_result(request.id_raw, req.account, w, book_engine->scenarios(), timing, method);
  }

  void process_whatif(const Job& job) {
    const auto& req = job.request.whatif;
    if (!req.has_positions && book_engine) {
      protocol::WhatIfTiming timing;
      timing.decode_us = job.decode_us;
      reply(job, whatif_from_cache(job.request, timing, job.received));
      return;
    }
    const std::vector<Position> trades = resolve(req.trades);
    const auto t0 = Clock::now();
    // The account's book inline (as `marginet whatif` does it): margin it, then add the trades.
    const std::vector<Position> positions = resolve(req.positions);
    MarginEngine engine(ref.instruments, ref.market, method, opt.backend);
    if (!published.empty()) engine.use_published_risk_arrays(published);
    std::vector<std::size_t> traded;
    for (const Position& t : trades) traded.push_back(t.instrument);
    engine.run(positions, traded);
    const WhatIfResult w = engine.whatif(req.account, trades);
    protocol::WhatIfTiming timing;
    timing.decode_us = job.decode_us;
    timing.queue_us = micros(t0 - job.received) - job.decode_us;
    timing.engine_us = micros(Clock::now() - t0);
    reply(job, protocol::encode_whatif_result(job.request.id_raw, req.account, w, engine.scenarios(), timing, method));
  }

  /// The what-if fast lane: a what-if on the cached rows is answered here, on the socket thread,
  /// when the compute thread is idle (engine_mu is free) and nothing is queued (so it cannot
  /// overtake a request sent before it, such as a trade of the same account). That saves the
  /// queue and two thread hand-offs (to the compute thread, and its reply back through inproc).
  /// Otherwise the what-if is queued as any request. true when it was answered here.
  bool try_whatif_fast_lane(const Request& req, const std::vector<zmq::message_t>& envelope, Clock::time_point received,
                            double decode_us) {
    if (!opt.whatif_fast_lane || req.type != RequestType::whatif || req.whatif.has_positions) return false;
    std::unique_lock<std::mutex> engine(engine_mu, std::try_to_lock);
    if (!engine.owns_lock() || !book_engine) return false;
    {
      // `computing` is set under mu when a job leaves the queue: one taken but not yet run holds it.
      std::lock_guard<std::mutex> lk(mu);
      if (computing || !high.empty() || !normal.empty()) return false;
    }
    ++whatif_fast;
    protocol::WhatIfTiming timing;
    timing.decode_us = decode_us;
    timing.fast_lane = true;
    std::string frame;
    try {
      frame = whatif_from_cache(req, timing, received);
    } catch (const protocol::protocol_error& e) {
      ++compute_errors;
      frame = protocol::encode_error(req.id_raw, e.code(), e.what());
    } catch (const input_error& e) {
      ++compute_errors;
      frame = protocol::encode_error(req.id_raw, ErrorCode::bad_request, e.what());
    } catch (const std::exception& e) {
      ++compute_errors;
      spdlog::error("internal error serving whatif: {}", e.what());
      frame = protocol::encode_error(req.id_raw, ErrorCode::internal, std::string("internal error: ") + e.what());
    }
    engine.unlock();
    std::vector<zmq::message_t> env;
    for (const auto& e : envelope) env.emplace_back(e.data(), e.size());
    send_to_client(env, frame);
    record_latency(micros(Clock::now() - received));
    return true;
  }

  void process_greeks(const Job& job) {
    if (!greeks_valid) greeks = compute_greeks(opt.backend, ref.instruments, ref.market), greeks_valid = true;
    std::vector<protocol::GreeksRow> rows;
    auto add = [&](std::size_t i) {
      protocol::GreeksRow r;
      r.id = ref.instruments[i].id;
      const double v[11] = {greeks.price[i], greeks.price_coin[i], greeks.delta[i], greeks.delta_coin[i],
                            greeks.gamma[i], greeks.vega[i],       greeks.theta[i], greeks.rho[i],
                            greeks.vanna[i], greeks.volga[i],      greeks.iv[i]};
      std::copy(std::begin(v), std::end(v), r.values);
      rows.push_back(std::move(r));
    };
    const auto& ids = job.request.greeks.instruments;
    if (ids.empty()) {
      for (std::size_t i = 0; i < ref.instruments.size(); ++i) add(i);
    } else {
      for (const std::string& id : ids) {
        if (!ref.instruments.contains(id))
          throw protocol::protocol_error(ErrorCode::unknown_instrument, "unknown instrument '" + id.substr(0, 128) + "'");
        add(ref.instruments.index_of(id));
      }
    }
    reply(job, protocol::encode_greeks_result(job.request.id_raw, rows));
  }

  void process_net(const Job& job) {
    const auto& req = job.request.net;
    AssetTable assets;
    for (std::size_t i = 0; i < req.assets.size(); ++i)
      assets.add(req.assets[i].asset, static_cast<int>(req.assets[i].scale), "request.assets", static_cast<long>(i + 1));
    // Every field double-quoted: a trade id starting with '#' is data, not a comment line, and a
    // comma or quote inside a field cannot shift the columns.
    auto quoted = [](std::string& out, const std::string& field) {
      out += '"';
      for (char c : field) out += c == '"' ? std::string("\"\"") : std::string(1, c);
      out += '"';
    };
    std::string text = "trade_id,buyer,seller,base_asset,quote_asset,quantity,price\n";
    for (const auto& t : req.trades) {
      const std::string* fields[] = {&t.trade_id, &t.buyer, &t.seller, &t.base_asset, &t.quote_asset, &t.quantity, &t.price};
      for (std::size_t f = 0; f < 7; ++f) {
        if (f) text += ',';
        quoted(text, *fields[f]);
      }
      text += '\n';
    }
    // A bad trade is named by its place in the request, `trades[i]`, which the client maps
    // back to its own file and line (service/margin/client.cpp MarginClient::net).
    TradeSet trades;
    try {
      trades = parse_trades_csv(text, "request.trades", assets);
    } catch (const input_error& e) {
      if (e.line() < 2) throw;
      const std::string where = "request.trades:" + std::to_string(e.line()) + ": ";
      std::string what = e.what();
      if (what.rfind(where, 0) == 0) what = what.substr(where.size());
      throw input_error("trades[" + std::to_string(e.line() - 2) + "]: " + what);
    }
    NettingOptions options;
    options.backend = opt.backend;
    const NettingResult result = net_trades(trades, options);
    char buf[40];
    std::snprintf(buf, sizeof buf, "net-%016llx", static_cast<unsigned long long>(fnv1a(text)));
    const std::string cycle_id = req.cycle_id.empty() ? std::string(buf) : req.cycle_id;
    const double deadline = req.deadline > 0 ? req.deadline : std::floor(unix_now()) + 3600;
    const SettlementCycle cycle = build_settlement_cycle(trades, result, {}, cycle_id, deadline);

    std::vector<std::int32_t> order(trades.members().size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int32_t>(i);
    std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
      return trades.members().name(a) < trades.members().name(b);
    });
    std::vector<protocol::NetRow> nets;
    for (std::int32_t m : order)
      for (std::int32_t a = 0; a < result.assets; ++a)
        if (const std::int64_t n = result.net_of(m, a); n != 0)
          nets.push_back({trades.members().name(m), assets[a].name, format_money(n, assets[a].scale), n});
    std::vector<protocol::NetAssetRow> rows;
    for (const AssetNetting& s : result.by_asset)
      rows.push_back({assets[s.asset].name, assets[s.asset].scale, s.gross_deliveries, s.pay_ins, s.pay_outs,
                      s.payers, s.receivers, s.efficiency});
    // With a store the cycle goes to the outbox (sent to the scheduler exactly once); the same
    // trades again are the same cycle id, a duplicate; the same id with other trades a conflict.
    if (store && !cycle.instructions.empty()) {
      const Outcome o = store->outbox_put("net", cycle);
      if (o == Outcome::conflict)
        throw protocol::protocol_error(ErrorCode::conflict, "cycle '" + cycle_id.substr(0, 128) +
                                                                "' is in the outbox with other obligations");
      if (link) link->wake();
    }
    reply(job, protocol::encode_net_result(job.request.id_raw, nets, rows, cycle_id, cycle.instructions.size()));
  }

  void process_market_update(const Job& job) {
    const auto& up = job.request.market;
    // Validate everything first: a rejected update changes nothing.
    for (const auto& u : up.underlyings)
      if (!ref.market.has_underlying(u.underlying) &&
          (std::isnan(u.index_price) || std::isnan(u.rate) || std::isnan(u.valuation_time)))
        throw protocol::protocol_error(ErrorCode::bad_request, "new underlying '" + u.underlying.substr(0, 64) +
                                                                   "' needs index_price, rate and valuation_time");
    for (const auto& m : up.marks) {
      const Instrument* inst = ref.instruments.find(m.instrument);
      if (!inst)
        throw protocol::protocol_error(ErrorCode::unknown_instrument, "unknown instrument '" + m.instrument.substr(0, 128) + "'");
      const bool underlying_known =
          ref.market.has_underlying(inst->underlying) ||
          std::any_of(up.underlyings.begin(), up.underlyings.end(), [&](const auto& u) { return u.underlying == inst->underlying; });
      if (!underlying_known)
        throw protocol::protocol_error(ErrorCode::bad_request, "no market data for the underlying of '" + m.instrument + "'");
    }
    const MarketSnapshot saved = ref.market;
    const auto t0 = Clock::now();
    try {
      for (const auto& u : up.underlyings) {
        UnderlyingMarket x = ref.market.has_underlying(u.underlying) ? ref.market.underlying(u.underlying) : UnderlyingMarket{};
        if (!std::isnan(u.index_price)) x.index_price = u.index_price;
        if (!std::isnan(u.rate)) x.rate = u.rate;
        if (!std::isnan(u.valuation_time)) x.valuation_time = u.valuation_time;
        ref.market.set_underlying(u.underlying, x);
      }
      for (const auto& m : up.marks) {
        const Instrument& inst = ref.instruments.at(m.instrument);
        Mark mark;
        if (const Mark* old = ref.market.find_mark(m.instrument)) mark = *old;
        if (!std::isnan(m.mark_price)) mark.mark_price = m.mark_price;
        if (!std::isnan(m.mark_iv)) mark.mark_iv = m.mark_iv;
        ref.market.set_mark(m.instrument, mark);
        if (inst.kind == InstrumentKind::future && mark.has_price())
          ref.market.set_future_forward(inst.underlying, inst.expiry, mark.mark_price);
      }
      rebuild_engines();
    } catch (...) {
      ref.market = saved;
      rebuild_engines();
      throw;
    }
    ++market_updates;
    reply(job, protocol::encode_market_update_result(job.request.id_raw, up.underlyings.size(), up.marks.size(),
                                                     micros(Clock::now() - t0), book_accounts));
  }

  // ---------------------------------------------------------------- trade capture

  ClearingStore& need_store() {
    if (!store) throw protocol::protocol_error(ErrorCode::no_store, "this server keeps no clearing store (start it with --store FILE)");
    return *store;
  }

  /// The pre-trade check of a package (docs/clearing.md): for every account of its legs with a
  /// headroom configured, IM after the legs (what-if on the cached rows) must not exceed the
  /// collateral value × (1 + headroom). Returns the figures of the last account checked (nullopt
  /// when no account has a check); throws the refusal.
  std::optional<protocol::PretradeCheck> pretrade_check(const Job& job) {
    const auto& legs = job.request.trade_submit.legs;
    std::optional<protocol::PretradeCheck> last;
    std::map<std::string, double> values;
    bool valued = false;
    std::vector<std::string> accounts;
    for (const auto& l : legs)
      if (std::find(accounts.begin(), accounts.end(), l.account) == accounts.end()) accounts.push_back(l.account);
    for (const std::string& account : accounts) {
      const std::optional<double> headroom = store->pretrade_headroom(account);
      if (!headroom) continue;
      std::vector<Position> trades;
      int first_leg = -1;
      for (std::size_t i = 0; i < legs.size(); ++i) {
        if (legs[i].account != account) continue;
        if (first_leg < 0) first_leg = static_cast<int>(i);
        Trade t;
        if (validate_trade(to_trade_input(legs[i]), t) || !ref.instruments.contains(t.instrument))
          return std::nullopt;  // the store refuses the package, naming the leg and field
        trades.push_back(Position{account, ref.instruments.index_of(t.instrument), quantity_value(t.quantity_units)});
      }
      if (!valued) {
        // The store's balances (and the --collateral file's holdings, when given).
        std::vector<CollateralHolding> holdings = collateral;
        for (CollateralHolding& h : collateral_holdings(store->balances())) holdings.push_back(std::move(h));
        values = collateral_values(holdings, ref.market, method);
        valued = true;
      }
      const WhatIfResult w = book_engine->whatif(account, trades);
      protocol::PretradeCheck check;
      check.im_before = w.before.im;
      check.im_after = w.after.im;
      const auto v = values.find(account);
      check.collateral_value = v == values.end() ? 0.0 : v->second;
      check.headroom = *headroom;
      if (check.im_after > check.collateral_value * (1.0 + check.headroom)) {
        char msg[256];
        std::snprintf(msg, sizeof msg,
                      "account %s: IM after the package %.2f USD exceeds collateral value %.2f USD x (1 + %g headroom)",
                      account.substr(0, 64).c_str(), check.im_after, check.collateral_value, check.headroom);
        reply(job, protocol::encode_trade_refused(job.request.id_raw, ErrorCode::insufficient_margin, msg, first_leg, &check));
        ++compute_errors;
        throw PretradeRefused{};
      }
      last = check;
    }
    return last;
  }
  struct PretradeRefused {};

  /// The cached P&L rows follow the kept positions: every recorded trade (or cancel) is added to
  /// its account's rows, so the next what-if and pre-trade check start from the new book.
  void follow_recorded(const std::string& account, const std::string& instrument, std::int64_t quantity_units) {
    const Instrument* inst = ref.instruments.find(instrument);
    if (!inst || !book_engine) return;
    const Position t{account, ref.instruments.index_of(instrument), quantity_value(quantity_units)};
    try {
      book_engine->commit_trades(account, {t});
    } catch (const std::exception& e) {
      // The trade is recorded; only the cache could not take it: margin the store's book again.
      spdlog::warn("cached rows of {} could not follow a trade ({}): re-running the book", account, e.what());
      rebuild_engines();
    }
  }

  /// Contiguous trade.submit requests: one store transaction. A package with a pre-trade check
  /// is checked against the rows as they stand after everything before it was recorded.
  void process_trade_submits(std::vector<Job>& batch) {
    if (!store) {
      for (const Job& job : batch) reply_on_failure(job, [&] { need_store(); });
      return;
    }
    ClearingStore& st = *store;
    std::size_t begin = 0;
    while (begin < batch.size()) {
      // Up to (not including) the next package of an account with a pre-trade check.
      std::size_t end = begin;
      std::vector<std::optional<protocol::PretradeCheck>> checks;
      std::vector<bool> refused;
      while (end < batch.size()) {
        const auto& req = batch[end].request.trade_submit;
        bool needs_check = false;
        if (req.is_package)
          for (const auto& l : req.legs)
            if (st.pretrade_headroom(l.account)) needs_check = true;
        if (needs_check && end > begin) break;  // record what comes before it first
        std::optional<protocol::PretradeCheck> check;
        bool refused_here = false;
        if (needs_check) {
          try {
            check = pretrade_check(batch[end]);
          } catch (const PretradeRefused&) {
            refused_here = true;  // answered with the figures
          } catch (const std::exception&) {
            reply_on_failure(batch[end], [&]() -> void { throw; });
            refused_here = true;
          }
        }
        checks.push_back(check);
        refused.push_back(refused_here);
        ++end;
        if (needs_check) break;
      }
      std::vector<Submission> subs;
      std::vector<std::size_t> job_of;
      for (std::size_t k = begin; k < end; ++k) {
        if (refused[k - begin]) continue;
        Submission s;
        for (const auto& l : batch[k].request.trade_submit.legs) s.legs.push_back(to_trade_input(l));
        subs.push_back(std::move(s));
        job_of.push_back(k);
      }
      const auto t0 = Clock::now();
      std::vector<SubmitResult> results;
      try {
        results = st.submit(subs);
      } catch (const std::exception& e) {
        for (std::size_t k : job_of) reply_on_failure(batch[k], [&]() -> void { throw; });
        begin = end;
        continue;
      }
      const double store_us = micros(Clock::now() - t0);
      for (const SubmitResult& r : results)
        for (std::int64_t seq : r.journal_seqs) journal_entries = std::max<std::int64_t>(journal_entries.load(), seq);
      for (std::size_t j = 0; j < results.size(); ++j) {
        const Job& job = batch[job_of[j]];
        const SubmitResult& r = results[j];
        const auto& legs = job.request.trade_submit.legs;
        if (r.outcome != Outcome::recorded && r.outcome != Outcome::duplicate) {
          ++compute_errors;
          reply(job, protocol::encode_trade_refused(job.request.id_raw, error_code_of(r.outcome), r.message, r.bad_leg, nullptr));
          continue;
        }
        std::vector<protocol::RecordedLeg> out;
        for (std::size_t i = 0; i < legs.size(); ++i)
          out.push_back({legs[i].trade_id, i < r.journal_seqs.size() ? r.journal_seqs[i] : 0});
        if (r.outcome == Outcome::recorded) {
          for (const auto& leg : legs) {
            Trade t;  // validated by the store already: the same rules give the same units
            if (!validate_trade(to_trade_input(leg), t)) follow_recorded(t.account, t.instrument, t.quantity_units);
          }
        }
        const auto& check = checks[job_of[j] - begin];
        reply(job, protocol::encode_trade_submit_result(job.request.id_raw, to_string(r.outcome),
                                                        job.request.trade_submit.is_package ? legs[0].package_id : std::string(),
                                                        out, check ? &*check : nullptr, store_us));
      }
      begin = end;
    }
  }

  /// The journal entry `seq` (a cancel just recorded: its quantity is the reversal).
  static std::optional<JournalEntry> journal_entry(const ClearingStore& st, std::int64_t seq) {
    JournalFilter f;
    f.after_seq = seq - 1;
    f.limit = 1;
    std::vector<JournalEntry> e = st.trades(f);
    if (e.empty() || e[0].seq != seq) return std::nullopt;
    return std::move(e[0]);
  }

  void process_trade_cancel(const Job& job) {
    ClearingStore& st = need_store();
    const auto& req = job.request.trade_cancel;
    const SubmitResult r = st.cancel(CancelRequest{req.source, req.trade_id, req.reason, req.time});
    if (r.outcome != Outcome::recorded && r.outcome != Outcome::duplicate)
      throw protocol::protocol_error(error_code_of(r.outcome), r.message);
    const std::int64_t seq = r.journal_seqs.empty() ? 0 : r.journal_seqs[0];
    journal_entries = std::max<std::int64_t>(journal_entries.load(), seq);
    if (r.outcome == Outcome::recorded)
      if (const auto e = journal_entry(st, seq)) follow_recorded(e->account, e->instrument, e->quantity_units);
    reply(job, protocol::encode_trade_cancel_result(job.request.id_raw, r.outcome == Outcome::recorded ? "cancelled" : "duplicate", seq));
  }

  void process_trades_query(const Job& job) {
    ClearingStore& st = need_store();
    const auto& req = job.request.trades_query;
    JournalFilter f;
    f.account = req.account;
    f.instrument = req.instrument;
    f.after_seq = req.after_seq;
    f.limit = req.limit + 1;  // one more tells whether there is more
    std::vector<JournalEntry> entries = st.trades(f);
    const bool more = static_cast<std::int64_t>(entries.size()) > req.limit;
    if (more) entries.pop_back();
    std::vector<protocol::TradeRow> rows;
    rows.reserve(entries.size());
    for (const JournalEntry& e : entries)
      rows.push_back({e.seq, to_string(e.kind), e.source, e.trade_id, e.account, e.instrument, quantity_text(e.quantity_units),
                      e.price, e.time, e.package_id, !e.signature_hex.empty()});
    reply(job, protocol::encode_trades_query_result(job.request.id_raw, rows, more));
  }

  void process_positions_query(const Job& job) {
    ClearingStore& st = need_store();
    std::vector<protocol::PositionRowText> rows;
    for (const PositionRow& p : st.positions(job.request.positions_query.account))
      rows.push_back({p.account, p.instrument, quantity_text(p.quantity_units)});
    reply(job, protocol::encode_positions_query_result(job.request.id_raw, rows));
  }

  // ------------------------------------------------------------- collateral and calls

  CallRunInputs call_inputs() { return CallRunInputs{*store, ref, opt.instruments, method, *batch_engine}; }

  /// The store's scale of a collateral asset (bad_request when the store has no such asset).
  int scale_of(const std::string& asset) {
    const auto scales = store->asset_scales();
    const auto it = scales.find(asset);
    if (it == scales.end())
      throw protocol::protocol_error(ErrorCode::bad_request, "asset '" + asset.substr(0, 64) +
                                                                 "' is not a collateral asset of the store");
    return it->second;
  }

  /// Decimal text -> minor units of the store's scale of `asset` (bad_request naming the field).
  std::pair<std::int64_t, int> amount_of(const std::string& asset, const std::string& text) {
    const int scale = scale_of(asset);
    std::int64_t minor = 0;
    const MoneyStatus st = parse_minor_units(text, scale, minor, Rounding::exact);
    if (st != MoneyStatus::ok || minor <= 0)
      throw protocol::protocol_error(ErrorCode::bad_request,
                                     "amount: '" + text.substr(0, 64) + "' is not a positive amount of " + asset + " (" +
                                         (st != MoneyStatus::ok ? money_status_text(st, scale) : "not > 0") + ")");
    return {minor, scale};
  }

  static ErrorCode collateral_error(Outcome o) {
    return o == Outcome::conflict ? ErrorCode::conflict
           : o == Outcome::rejected ? ErrorCode::insufficient_collateral
                                    : ErrorCode::bad_request;
  }

  void process_deposit(const Job& job) {
    ClearingStore& st = need_store();
    const auto& req = job.request.collateral_change;
    const auto [minor, scale] = amount_of(req.asset, req.amount);
    const CollateralResult r = st.deposit({req.account, req.asset, minor, req.reference});
    if (r.outcome != Outcome::recorded && r.outcome != Outcome::duplicate)
      throw protocol::protocol_error(r.outcome == Outcome::conflict ? ErrorCode::conflict : ErrorCode::bad_request, r.message);
    reply(job, protocol::encode_collateral_change_result(job.request.id_raw, RequestType::collateral_deposit,
                                                         collateral_change_text(r, req.account, req.asset, minor, scale)));
  }

  void process_withdraw(const Job& job) {
    ClearingStore& st = need_store();
    const auto& req = job.request.collateral_change;
    const bool excess = req.amount == "excess";
    std::int64_t minor = -1;
    int scale = 0;
    if (excess) {
      scale = scale_of(req.asset);
    } else {
      std::tie(minor, scale) = amount_of(req.asset, req.amount);
    }
    // A resend of a recorded withdrawal is answered as a duplicate before any check.
    if (!req.reference.empty()) {
      for (const Movement& m : st.movements(req.account))
        if (m.kind == MovementKind::withdrawal && m.reference == req.reference) {
          const CollateralResult r = st.withdraw({req.account, req.asset, excess ? -m.amount_minor : minor, req.reference}, std::nullopt);
          if (r.outcome != Outcome::duplicate) throw protocol::protocol_error(collateral_error(r.outcome), r.message);
          reply(job, protocol::encode_collateral_change_result(
                         job.request.id_raw, RequestType::collateral_withdraw,
                         collateral_change_text(r, req.account, req.asset, -m.amount_minor, scale)));
          return;
        }
    }
    const WithdrawalCheck c = check_withdrawal(call_inputs(), req.account, req.asset, minor);
    protocol::CollateralFigures fig;
    fig.im = c.im;
    fig.value_before = c.value_before;
    fig.value_after = c.value_after;
    if (!c.allowed) {
      char msg[320];
      if (excess || minor > c.balance_minor || c.balance_minor == 0)
        std::snprintf(msg, sizeof msg, "account %s: %s %s asked, %s %s held, %s %s may leave (IM %.2f USD, collateral value %.2f USD)",
                      req.account.substr(0, 64).c_str(), excess ? "the excess" : format_money(minor, scale).c_str(),
                      req.asset.c_str(), format_money(c.balance_minor, scale).c_str(), req.asset.c_str(),
                      format_money(c.excess_minor, scale).c_str(), req.asset.c_str(), c.im, c.value_before);
      else
        std::snprintf(msg, sizeof msg, "account %s: after withdrawing %s %s the collateral value %.2f USD would not cover IM %.2f USD",
                      req.account.substr(0, 64).c_str(), format_money(minor, scale).c_str(), req.asset.c_str(), c.value_after, c.im);
      ++compute_errors;
      reply(job, protocol::encode_collateral_refused(job.request.id_raw, msg, fig));
      return;
    }
    const std::int64_t amount = excess ? c.excess_minor : minor;
    const double now = unix_time_now();
    const std::string cycle_id = "withdrawal-" + req.account + "-" +
                                 (req.reference.empty() ? utc_id_stamp(now) + "-" + std::to_string(++cycle_seq) : req.reference);
    const SettlementCycle payout = withdrawal_cycle(cycle_id, req.account, req.asset, scale, amount, std::floor(now) + opt.call_deadline_s);
    // The pay-out goes to the outbox even without a scheduler now: a later start with one sends it.
    const CollateralResult r = st.withdraw({req.account, req.asset, amount, req.reference}, payout);
    if (r.outcome != Outcome::recorded && r.outcome != Outcome::duplicate)
      throw protocol::protocol_error(collateral_error(r.outcome), r.message);
    if (link) link->wake();
    protocol::CollateralChangeResult out = collateral_change_text(r, req.account, req.asset, amount, scale);
    out.figures = &fig;
    reply(job, protocol::encode_collateral_change_result(job.request.id_raw, RequestType::collateral_withdraw, out));
  }

  void process_collateral_query(const Job& job) {
    ClearingStore& st = need_store();
    reply(job, protocol::encode_collateral_query_result(
                   job.request.id_raw, balance_rows_text(st.balances(job.request.collateral_query.account))));
  }

  CallRunOutcome call_run(const std::string& run_id, const std::string& kind) {
    CallRunRequest rq;
    rq.run_id = run_id;
    rq.kind = kind;
    rq.deadline_s = opt.call_deadline_s;
    CallRunOutcome r = run_margin_calls(call_inputs(), rq);
    if (r.outcome == Outcome::recorded) {
      if (link) link->wake();
      if (!opt.quiet) {
        std::int64_t called = 0;
        for (const CallRecord& c : r.run.calls) called += c.call_minor > 0;
        spdlog::info("call run {}: {} accounts, {} called, cycle {} ({:.0f} ms)", r.run.run_id, r.run.calls.size(), called,
                     r.run.cycle_id.empty() ? "none" : r.run.cycle_id, r.run.compute_ms);
      }
    }
    return r;
  }

  void process_calls_run(const Job& job) {
    need_store();
    const auto& req = job.request.calls_run;
    const CallRunOutcome r = call_run(req.run_id, req.kind);
    reply(job, protocol::encode_calls_result(job.request.id_raw, RequestType::calls_run,
                                             call_run_text(r.run, to_string(r.outcome))));
  }

  void process_calls_query(const Job& job) {
    ClearingStore& st = need_store();
    const auto run = st.call_run(job.request.calls_query.run_id);
    if (!run)
      throw protocol::protocol_error(ErrorCode::not_found, job.request.calls_query.run_id.empty()
                                                               ? std::string("no call run yet")
                                                               : "no call run '" + job.request.calls_query.run_id.substr(0, 128) + "'");
    reply(job, protocol::encode_calls_result(job.request.id_raw, RequestType::calls_query, call_run_text(*run, "")));
  }

  DefaultInputs default_inputs() { return DefaultInputs{need_store(), ref, opt.instruments, method, fund, opt.backend}; }

  void process_default_declare(const Job& job) {
    const auto& req = job.request.default_declare;
    const DefaultReport r = declare_default(default_inputs(), {req.member, req.reason, req.default_id});
    if (r.outcome == Outcome::recorded) {
      rebuild_engines();  // the positions moved to the house account
      journal_entries = store->journal_size();
      if (!opt.quiet)
        spdlog::warn("default {}: member {} declared by the operator, loss {} {}, uncovered {} {}", r.default_id, r.member,
                     format_money(r.inputs.loss_minor, r.scale), r.currency,
                     format_money(r.waterfall.uncovered_minor, r.scale), r.currency);
    }
    reply(job, protocol::encode_default_result(job.request.id_raw, default_result_text(r)));
  }

  /// The scheduler's hand-overs (margin calls that ended defaulted) of members not yet in
  /// default: each member declared in default once (docs/default-management.md), then the
  /// engines margin the book again (the positions moved to the house account).
  void handle_missed_pay_ins() {
    if (!store) return;
    std::vector<ReportApplied::MissedPayIn> missed;
    try {
      missed = store->unhandled_missed_pay_ins();
    } catch (const std::exception& e) {
      spdlog::error("default management: cannot read the missed pay-ins: {}", e.what());
      return;
    }
    std::set<std::string> declared;
    for (const ReportApplied::MissedPayIn& m : missed) {
      if (!declared.insert(m.member).second) continue;
      try {
        const DefaultReport r = declare_default(default_inputs(), {m.member, "missed margin call " + m.instruction_id, ""});
        std::string reached;
        for (const LayerTotal& l : r.waterfall.layers)
          if (l.absorbed_minor > 0) reached += std::string(reached.empty() ? "" : ", ") + to_string(l.layer);
        spdlog::warn("default {}: member {} closed out, loss {} {} ({}), covered by {}; uncovered {} {}", r.default_id,
                     r.member, format_money(r.inputs.loss_minor, r.scale), r.currency, r.close_out_scenario,
                     reached.empty() ? "nothing needed" : reached, format_money(r.waterfall.uncovered_minor, r.scale),
                     r.currency);
      } catch (const std::exception& e) {
        spdlog::error("default management of member {} failed: {} (it stays handed over; retried at the next report "
                      "or restart)", m.member, e.what());
      }
    }
    if (!declared.empty()) {
      try {
        rebuild_engines();
        journal_entries = store->journal_size();
      } catch (const std::exception& e) {
        spdlog::error("default management: margining the book again failed: {}", e.what());
      }
    }
  }

  /// The scheduled runs due now (today's times that have passed, once each; a restart after a
  /// run finds it done by its id).
  void run_scheduled(double now) {
    if (schedule.empty()) return;
    const std::time_t t = static_cast<std::time_t>(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    const int minute = tm.tm_hour * 60 + tm.tm_min;
    for (const ScheduledRun& sr : schedule) {
      if (minute < sr.minute_of_day) continue;
      char id[64];
      if (sr.kind == "eod")
        std::snprintf(id, sizeof id, "eod-%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
      else
        std::snprintf(id, sizeof id, "intraday-%04d%02d%02dT%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      sr.minute_of_day / 60, sr.minute_of_day % 60);
      if (!scheduled_done.insert(id).second) continue;
      try {
        call_run(id, sr.kind);
      } catch (const std::exception& e) {
        spdlog::error("scheduled call run {} failed: {}", id, e.what());
      }
    }
  }

  void process(std::vector<Job>& batch) {
    if (batch.front().request.type == RequestType::margin) {
      process_margin(batch);
    } else if (batch.front().request.type == RequestType::trade_submit) {
      process_trade_submits(batch);
    } else {
      for (const Job& job : batch) {
        reply_on_failure(job, [&] {
          switch (job.request.type) {
            case RequestType::whatif: process_whatif(job); break;
            case RequestType::greeks: process_greeks(job); break;
            case RequestType::net: process_net(job); break;
            case RequestType::market_update: process_market_update(job); break;
            case RequestType::trade_cancel: process_trade_cancel(job); break;
            case RequestType::trades_query: process_trades_query(job); break;
            case RequestType::positions_query: process_positions_query(job); break;
            case RequestType::collateral_deposit: process_deposit(job); break;
            case RequestType::collateral_withdraw: process_withdraw(job); break;
            case RequestType::collateral_query: process_collateral_query(job); break;
            case RequestType::calls_run: process_calls_run(job); break;
            case RequestType::calls_query: process_calls_query(job); break;
            case RequestType::default_declare: process_default_declare(job); break;
            default: MARGINET_FAIL("not a compute request");
          }
        });
      }
    }
    ++batches_run;
  }

  /// Returns a job's bytes to its client's and the total budget (mu held).
  void release_charge(const Job& job) {
    if (job.charged == 0 || job.envelope.empty()) return;
    queued_bytes_total -= std::min(queued_bytes_total, job.charged);
    const auto it = queued_bytes.find(job.envelope.front());
    if (it == queued_bytes.end()) return;
    it->second -= std::min(it->second, job.charged);
    if (it->second == 0) queued_bytes.erase(it);
  }

  /// Decodes a deferred frame; false (the error answered) when it is bad.
  bool decode_deferred(Job& job) {
    if (job.raw.empty()) return true;
    try {
      const protocol::Priority p = job.request.priority;
      job.request = protocol::decode_request(job.raw, opt.limits);
      job.request.priority = p;
    } catch (const protocol::protocol_error& e) {
      reply_error(job, e.code(), e.what());
      return false;
    } catch (const std::exception& e) {
      reply_error(job, ErrorCode::internal, std::string("decoder failure: ") + e.what());
      return false;
    }
    std::string().swap(job.raw);
    return true;
  }

  static bool overlaps(const Job& job, const std::set<std::string>& accounts) {
    for (const std::string& a : job.request.margin.accounts)
      if (accounts.count(a)) return true;
    return false;
  }

  void compute_loop() {
    const auto window = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::micro>(opt.batch_window_us));
    while (true) {
      std::vector<Job> batch;
      {
        std::unique_lock<std::mutex> lk(mu);
        if (schedule.empty()) {
          cv.wait(lk, [&] { return stopping || defaults_due || !high.empty() || !normal.empty(); });
        } else {
          cv.wait_for(lk, std::chrono::seconds(1), [&] { return stopping || defaults_due || !high.empty() || !normal.empty(); });
        }
        if (stopping) break;
        if (defaults_due.exchange(false)) {
          lk.unlock();
          computing = true;
          {
            std::lock_guard<std::mutex> engine(engine_mu);
            handle_missed_pay_ins();
          }
          computing = false;
          continue;
        }
        if (high.empty() && normal.empty()) {
          lk.unlock();
          computing = true;
          {
            std::lock_guard<std::mutex> engine(engine_mu);
            run_scheduled(unix_now());
          }
          computing = false;
          continue;
        }
        const bool from_high = !high.empty();
        std::deque<Job>& q = from_high ? high : normal;
        batch.push_back(std::move(q.front()));
        q.pop_front();
        release_charge(batch.front());
        if (!batch.front().raw.empty()) {
          // A large frame: decoded here, outside the lock, and run alone.
          computing = true;
          lk.unlock();
          std::lock_guard<std::mutex> engine(engine_mu);
          if (decode_deferred(batch.front())) {
            Job& job = batch.front();
            if (job.request.type == RequestType::ping)
              reply(job, protocol::encode_pong(job.request.id_raw, unix_now()));
            else if (job.request.type == RequestType::status)
              reply_error(job, ErrorCode::bad_request, "status: send it as a small frame (it is answered at once)");
            else
              process(batch);
          }
          computing = false;
          continue;
        }
        if (batch.front().request.type == RequestType::margin && opt.max_batch > 1) {
          std::set<std::string> accounts(batch.front().request.margin.accounts.begin(),
                                         batch.front().request.margin.accounts.end());
          const auto deadline = batch.front().received + window;
          while (true) {
            // Contiguous margin requests of other accounts join the pass (FIFO is kept).
            while (batch.size() < opt.max_batch && !q.empty() && q.front().request.type == RequestType::margin &&
                   q.front().raw.empty() && !overlaps(q.front(), accounts)) {
              for (const std::string& a : q.front().request.margin.accounts) accounts.insert(a);
              batch.push_back(std::move(q.front()));
              q.pop_front();
              release_charge(batch.back());
            }
            if (batch.size() >= opt.max_batch || !q.empty() || stopping) break;
            if (!from_high && !high.empty()) {
              // Urgent work arrived while gathering end-of-day work: it goes first.
              for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
                // Back in the queue: charged again.
                if (!it->envelope.empty() && it->charged) {
                  queued_bytes[it->envelope.front()] += it->charged;
                  queued_bytes_total += it->charged;
                }
                normal.push_front(std::move(*it));
              }
              batch.clear();
              break;
            }
            if (Clock::now() >= deadline) break;
            cv.wait_until(lk, deadline);
          }
          if (batch.empty()) continue;
        } else if (batch.front().request.type == RequestType::trade_submit) {
          // Submits queued back to back share one durable commit; no window: what is queued now.
          while (batch.size() < kMaxTradeBatch && !q.empty() && q.front().request.type == RequestType::trade_submit &&
                 q.front().raw.empty()) {
            batch.push_back(std::move(q.front()));
            q.pop_front();
            release_charge(batch.back());
          }
        }
        computing = true;
      }
      {
        std::lock_guard<std::mutex> engine(engine_mu);
        process(batch);
      }
      computing = false;
    }
    compute_done = true;
  }

  // ------------------------------------------------------------------ socket thread

  // Replies a client is not reading fast enough: ZeroMQ's pipe to it holds at most
  // max_unsent_replies messages; the rest wait here, in order, bounded in bytes per client and
  // in all, and are retried every poll round. Beyond the bounds a reply is dropped (counted).
  struct Unsent {
    std::deque<std::pair<std::vector<std::string>, std::string>> replies;  // envelope, frame
    std::size_t bytes = 0;
  };
  std::unordered_map<std::string, Unsent> unsent;  // client identity -> replies waiting
  std::size_t unsent_bytes = 0;
  std::uint64_t dropped_slow = 0;

  enum class Sent { ok, full, gone };
  Sent try_send(const std::vector<std::string>& envelope, const std::string& frame) {
    try {
      for (const std::string& e : envelope)
        if (!router.send(zmq::buffer(e), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return Sent::full;
      if (!router.send(zmq::buffer(frame), zmq::send_flags::dontwait)) return Sent::full;
    } catch (const zmq::error_t&) {
      return Sent::gone;  // EHOSTUNREACH (router_mandatory): the client has gone
    }
    return Sent::ok;
  }

  bool send_to_client(const std::vector<zmq::message_t>& envelope_frames, const std::string& frame) {
    std::vector<std::string> envelope;
    envelope.reserve(envelope_frames.size());
    for (const auto& e : envelope_frames) envelope.emplace_back(static_cast<const char*>(e.data()), e.size());
    const std::string client = envelope.empty() ? std::string() : envelope.front();
    auto waiting = unsent.find(client);
    if (waiting == unsent.end()) {  // nothing queued before it: straight to ZeroMQ
      const Sent r = try_send(envelope, frame);
      if (r == Sent::ok) return true;
      if (r == Sent::gone) return ++unroutable, false;
    }
    // Behind others, or ZeroMQ's pipe is full: wait here, within the bounds.
    const std::size_t bytes = frame.size() + 64;
    Unsent& u = unsent[client];
    if (u.bytes + bytes > opt.max_client_unsent_bytes || unsent_bytes + bytes > opt.max_unsent_bytes) {
      ++dropped_slow;
      ++unroutable;
      if (u.replies.empty()) unsent.erase(client);
      return false;
    }
    u.replies.emplace_back(std::move(envelope), frame);
    u.bytes += bytes;
    unsent_bytes += bytes;
    return true;
  }

  /// Sends what waits, client by client, until a pipe is full again.
  void flush_unsent() {
    for (auto it = unsent.begin(); it != unsent.end();) {
      Unsent& u = it->second;
      while (!u.replies.empty()) {
        const Sent r = try_send(u.replies.front().first, u.replies.front().second);
        if (r == Sent::full) break;
        if (r == Sent::gone) ++unroutable;
        const std::size_t bytes = u.replies.front().second.size() + 64;
        u.bytes -= bytes;
        unsent_bytes -= bytes;
        u.replies.pop_front();
      }
      it = u.replies.empty() ? unsent.erase(it) : std::next(it);
    }
  }

  void record_latency(double us) {
    latencies[latency_count % latencies.size()] = us;
    ++latency_count;
  }

  protocol::StatusInfo status_info() {
    protocol::StatusInfo s;
    s.uptime_s = std::chrono::duration<double>(Clock::now() - started).count();
    s.backend = backend_name(opt.backend);
    s.device = describe_device(opt.backend);
    s.model = method.name;
    s.instruments = ref.instruments.size();
    s.book_accounts = book_accounts;
    {
      std::lock_guard<std::mutex> lk(mu);
      s.queue_high = high.size();
      s.queue_normal = normal.size();
    }
    s.queue_capacity = opt.queue_capacity;
    s.computing = computing;
    s.batches_run = batches_run;
    s.requests_total = requests_total;
    s.margin_requests = margin_requests;
    s.errors = errors + compute_errors;
    s.busy = busy;
    s.requests_per_s = s.uptime_s > 0 ? static_cast<double>(requests_total) / s.uptime_s : 0;
    s.batch_window_us = opt.batch_window_us;
    s.max_batch = opt.max_batch;
    s.market_updates = market_updates;
    s.curve = opt.curve.enabled();
    s.store = opt.store.size() > 0;
    s.journal_entries = journal_entries.load();
    s.unsent_replies_bytes = unsent_bytes;
    s.replies_dropped_slow = dropped_slow;
    if (link) {
      const SettlementLinkStats ls = link->stats();
      s.scheduler = true;
      s.outbox_unacked = ls.outbox.unacked;
      s.outbox_unsettled = ls.outbox.unsettled;
      s.outbox_oldest_unacked = ls.outbox.oldest_unacked;
      s.outbox_oldest_unacked_age_s =
          ls.outbox.oldest_unacked.empty() ? 0.0 : std::max(0.0, unix_now() - ls.outbox.oldest_unacked_created_at);
      s.acks_received = ls.acks_received;
      s.reports_applied = ls.reports_applied;
    }
    const std::size_t n = std::min(latency_count, latencies.size());
    s.latency_samples = n;
    if (n > 0) {
      std::vector<double> v(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(n));
      auto pct = [&](double p) {
        const std::size_t k = std::min(n - 1, static_cast<std::size_t>(p * static_cast<double>(n)));
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
        return v[k];
      };
      s.latency_p50_us = pct(0.50);
      s.latency_p99_us = pct(0.99);
      s.latency_max_us = *std::max_element(v.begin(), v.end());
    }
    return s;
  }

  void handle_client_message(std::vector<zmq::message_t>& parts, bool shutting_down) {
    const auto received = Clock::now();
    ++requests_total;
    std::vector<zmq::message_t> envelope;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) envelope.push_back(std::move(parts[i]));
    const zmq::message_t& payload = parts.back();
    const std::string_view frame(static_cast<const char*>(payload.data()), payload.size());
    auto fail = [&](std::string_view id_raw, ErrorCode code, const std::string& message) {
      if (code == ErrorCode::busy) ++busy; else ++errors;
      send_to_client(envelope, protocol::encode_error(id_raw, code, message));
    };
    // A large frame is only peeked at here (v, type, id, priority) and decoded by the compute
    // thread, so that ping and status stay answered while it is decoded.
    const bool defer = frame.size() > kDeferDecodeBytes;
    Request req;
    double decode_us = 0;
    try {
      if (defer) {
        if (frame.size() > opt.limits.max_frame_bytes)
          throw protocol::protocol_error(ErrorCode::too_large, "frame of " + std::to_string(frame.size()) +
                                                                   " bytes exceeds the limit of " +
                                                                   std::to_string(opt.limits.max_frame_bytes));
        // Only its first 4 KiB: a client that writes v, type, id (and priority) first gets its
        // priority honoured; otherwise the frame waits in the normal queue, its type and id
        // known once decoded. Either way this thread spends microseconds on it.
        try {
          const protocol::RequestHeader h = protocol::peek_request(frame.substr(0, kPeekBytes), opt.limits);
          req.version = h.version;
          req.type = h.type;
          req.id_raw = h.id_raw;
          req.priority = h.priority;
        } catch (const protocol::protocol_error&) {
          req.type = RequestType::margin;  // provisional: the compute thread decodes it
          req.id_raw = protocol::nil_id();
          req.priority = protocol::Priority::normal;
        }
      } else {
        req = protocol::decode_request(frame, opt.limits);
      }
      decode_us = micros(Clock::now() - received);
    } catch (const protocol::protocol_error& e) {
      return fail(e.id_raw().empty() ? protocol::nil_id() : e.id_raw(), e.code(), e.what());
    } catch (const std::exception& e) {
      return fail(protocol::nil_id(), ErrorCode::internal, std::string("decoder failure: ") + e.what());
    }
    if (req.type == RequestType::ping) {
      send_to_client(envelope, protocol::encode_pong(req.id_raw, unix_now()));
      return;
    }
    if (req.type == RequestType::status) {
      send_to_client(envelope, protocol::encode_status(req.id_raw, status_info()));
      return;
    }
    if (shutting_down) return fail(req.id_raw, ErrorCode::busy, "the server is shutting down");
    if (req.type == RequestType::margin) ++margin_requests;
    if (!defer && try_whatif_fast_lane(req, envelope, received, decode_us)) return;
    Job job;
    job.request = std::move(req);
    job.received = received;
    job.decode_us = decode_us;
    for (const auto& e : envelope) job.envelope.emplace_back(static_cast<const char*>(e.data()), e.size());
    if (defer) job.raw.assign(frame.data(), frame.size());
    // Decoded, a request holds at most 2 × its frame in strings (protocol Limits): 3 × bounds it.
    job.charged = 3 * frame.size() + 256;
    std::string refusal;
    std::string id;
    const protocol::Priority priority = job.request.priority;
    {
      std::lock_guard<std::mutex> lk(mu);
      std::deque<Job>& q = priority == protocol::Priority::high ? high : normal;
      const std::string& client = job.envelope.empty() ? std::string() : job.envelope.front();
      const std::size_t mine = queued_bytes.count(client) ? queued_bytes[client] : 0;
      if (q.size() >= opt.queue_capacity) {
        refusal = std::string("the ") + protocol::priority_name(priority) + "-priority queue is full (" +
                  std::to_string(opt.queue_capacity) + " requests); retry later";
      } else if (mine + job.charged > opt.max_client_queued_bytes) {
        refusal = "this client's queued requests would exceed " + std::to_string(opt.max_client_queued_bytes >> 20) +
                  " MiB; wait for the replies";
      } else if (queued_bytes_total + job.charged > opt.max_queued_bytes) {
        refusal = "the server's queued requests would exceed " + std::to_string(opt.max_queued_bytes >> 20) +
                  " MiB; retry later";
      } else {
        queued_bytes[client] += job.charged;
        queued_bytes_total += job.charged;
        q.push_back(std::move(job));
      }
      if (!refusal.empty()) id = job.request.id_raw;
    }
    if (!refusal.empty()) return fail(id, ErrorCode::busy, refusal);
    cv.notify_one();
  }

  /// Forwards every reply the compute thread has ready.
  void forward_results() {
    while (true) {
      std::vector<zmq::message_t> parts;
      while (true) {
        zmq::message_t m;
        if (!results_in.recv(m, zmq::recv_flags::dontwait)) break;
        const bool more = m.more();
        parts.push_back(std::move(m));
        if (!more) break;
      }
      if (parts.empty()) return;
      if (parts.size() < 2) continue;
      std::int64_t t = 0;
      if (parts[0].size() == sizeof t) std::memcpy(&t, parts[0].data(), sizeof t);
      const std::string frame(static_cast<const char*>(parts.back().data()), parts.back().size());
      std::vector<zmq::message_t> envelope;
      for (std::size_t i = 1; i + 1 < parts.size(); ++i) envelope.push_back(std::move(parts[i]));
      send_to_client(envelope, frame);
      record_latency(micros(Clock::now() - Clock::time_point(Clock::duration(t))));
    }
  }

  /// Reads one multipart client message; false when none is ready.
  bool receive_client(std::vector<zmq::message_t>& parts) {
    parts.clear();
    while (true) {
      zmq::message_t m;
      if (!router.recv(m, zmq::recv_flags::dontwait)) return !parts.empty();
      const bool more = m.more();
      parts.push_back(std::move(m));
      if (!more) return true;
    }
  }

  void run() {
    compute = std::thread([this] {
      try {
        compute_loop();
      } catch (const std::exception& e) {
        spdlog::critical("compute thread failed: {}", e.what());
        compute_done = true;
      }
    });
    bool shutting_down = false;
    std::vector<zmq::message_t> parts;
    while (true) {
      if (!shutting_down && (stop_requested || g_signal_stop)) {
        shutting_down = true;
        if (!opt.quiet) spdlog::info("shutting down: rejecting queued work, finishing the running job");
        std::deque<Job> rejected;
        {
          std::lock_guard<std::mutex> lk(mu);
          stopping = true;
          for (auto* q : {&high, &normal})
            while (!q->empty()) rejected.push_back(std::move(q->front())), q->pop_front();
        }
        cv.notify_all();
        for (const Job& job : rejected) {
          ++busy;
          std::vector<zmq::message_t> env;
          for (const std::string& e : job.envelope) env.emplace_back(e.data(), e.size());
          send_to_client(env, protocol::encode_error(job.request.id_raw, ErrorCode::busy,
                                                      "the server is shutting down; the request was not run"));
        }
      }
      if (shutting_down && compute_done) break;
      zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}, {results_in.handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(20));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (items[1].revents & ZMQ_POLLIN) forward_results();
      if (!unsent.empty()) flush_unsent();
      if (items[0].revents & ZMQ_POLLIN) {
        // A bounded number (and bytes) per round, so that replies keep flowing under load.
        std::size_t round_bytes = 0;
        for (int i = 0; i < 256 && round_bytes < kRoundBytes && receive_client(parts); ++i) {
          if (parts.size() < 2 || parts.size() > 8) continue;  // not a ROUTER envelope + one frame
          round_bytes += parts.back().size();
          handle_client_message(parts, shutting_down);
        }
      }
    }
    if (compute.joinable()) compute.join();
    forward_results();
    // Let the I/O thread flush the last replies before the sockets close with linger 0.
    const auto flush_until = Clock::now() + std::chrono::milliseconds(100);
    while (Clock::now() < flush_until) {
      zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 1, std::chrono::milliseconds(10));
      } catch (const zmq::error_t&) {
      }
      if (items[0].revents & ZMQ_POLLIN)
        for (int i = 0; i < 256 && receive_client(parts); ++i)
          if (parts.size() >= 2 && parts.size() <= 8) handle_client_message(parts, true);
    }
    if (!opt.quiet)
      spdlog::info("stopped: {} requests, {} batches, {} errors, {} busy, {} unroutable replies", requests_total,
                   batches_run.load(), errors + compute_errors, busy, unroutable);
    router.close();
    results_in.close();
    results_out.close();
    link.reset();  // its socket closes before the context
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stopping = true;
    }
    cv.notify_all();
    if (compute.joinable()) compute.join();
  }
};

MarginServer::MarginServer(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
MarginServer::~MarginServer() = default;
const std::string& MarginServer::endpoint() const { return impl_->endpoint; }
void MarginServer::run() { impl_->run(); }
void MarginServer::stop() { impl_->stop_requested = true; }

}  // namespace marginet
