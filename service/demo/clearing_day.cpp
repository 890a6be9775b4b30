#include "service/demo/clearing_day.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include "host/backend.hpp"
#include "host/book_generator.hpp"
#include "host/margin_engine.hpp"
#include "models/csv.hpp"
#include "models/default_fund.hpp"
#include "models/errors.hpp"
#include "models/positions.hpp"
#include "models/reference_data.hpp"
#include "models/csv.hpp"  // read_file_text
#include "models/trade.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/clearing/trade.hpp"
#include "service/db/sqlite.hpp"
#include "service/demo/child_process.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "service/demo/report_script.hpp"
#include "service/margin/client.hpp"
#include "service/margin/default_management.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/merkle.hpp"

namespace marginet::demo {

bool ClearingDayResult::ok() const {
  return std::all_of(steps.begin(), steps.end(), [](const DayStep& s) { return s.ok; });
}

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr const char* kMarker = ".marginet-demo";  // a folder the demo made and may empty
constexpr const char* kSource = "demo";            // the trades' source
/// The market's moves: intraday, then at the close (each relative to the one before).
struct Move {
  const char* name;
  double btc, eth, vol_up;
};
constexpr Move kIntraday{"intraday", -0.08, -0.11, 0.20}, kClose{"close", -0.04, -0.05, 0.10};

const char* const kNames[] = {"ALPHA",   "BRAVO",   "CHARLIE", "DELTA",  "ECHO",    "FOXTROT", "GOLF",
                              "HOTEL",   "INDIA",   "JULIET",  "KILO",   "LIMA",    "MIKE",    "NOVEMBER",
                              "OSCAR",   "PAPA",    "QUEBEC",  "ROMEO",  "SIERRA",  "TANGO",   "UNIFORM",
                              "VICTOR",  "WHISKEY", "XRAY",    "YANKEE", "ZULU"};

std::string member_name(std::size_t i) {
  return i < std::size(kNames) ? kNames[i] : "MEMBER-" + std::to_string(i + 1);
}
constexpr std::size_t kAccountsPerMember = 4;
std::string account_of(const std::string& member, std::size_t k) { return member + "-" + std::to_string(k + 1); }
std::string member_of_account(const std::string& account) { return account.substr(0, account.rfind('-')); }

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// "1,234,567.89 USD"
std::string money_text(double v, const std::string& unit, int decimals = 2) {
  return format_fixed(v, decimals) + " " + unit;
}

/// Shortest text that reads back as the same double (CSV files the loaders read again).
std::string exact(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string pct(double fraction) { return fixed(100.0 * fraction, 1) + " %"; }

/// Everything the steps share.
struct Day {
  ClearingDayOptions o;
  std::string dir;
  std::vector<std::string> members;  // ALPHA, BRAVO, …; four accounts each (MEMBER-1 … MEMBER-4)
  std::string defaulter;             // the member whose transfers fail on the USD chain
  double started_at = 0;             // Unix seconds (wall, whole) when the components started
  std::string day;                   // the valuation date, YYYY-MM-DD
  Backend backend = Backend::cpu;

  ReferenceData ref;                       // the market the service has now (opening, then each move)
  std::vector<Position> yesterday, today;  // accounts renamed to the members' accounts
  std::map<std::string, double> opening_im;  // per account, the configured methodology
  std::unique_ptr<ChildProcess> scheduler, service;
  std::unique_ptr<MarginClient> client;

  // What the day did, for the summary and day.json.
  std::size_t trades_captured = 0, trades_refused = 0, packages_accepted = 0, packages_refused = 0;
  double deposited = 0;
  json intraday;  // calls.run.result of the intraday run
  json eod;  // calls.run.result of the EOD run
  json im_by_methodology = json::array();
  json accounts = json::array();
  json largest_account;
  json netting = json::array();
  json cycles = json::array();
  json default_json;  // null when no member defaulted
  json ledger_json;

  std::string path(const std::string& name) const { return dir + "/" + name; }
  std::vector<std::string> reference_args() const {
    return {"--instruments", path("instruments.csv"), "--market", path("market.csv"), "--marks", path("marks.csv")};
  }
};

// ---- 1. book ----------------------------------------------------------------------------

/// Empties a folder an earlier demo made (it holds the marker), or creates it; refuses others.
void prepare_workdir(const std::string& dir) {
  if (fs::exists(dir)) {
    if (!fs::is_directory(dir)) throw input_error(dir, 0, "", "exists and is not a folder");
    const bool empty = fs::is_empty(dir);
    if (!empty && !fs::exists(dir + "/" + kMarker))
      throw input_error(dir, 0, "", "is not empty and was not made by `marginet demo`; give another --workdir");
    for (const auto& e : fs::directory_iterator(dir)) fs::remove_all(e.path());
  }
  fs::create_directories(dir + "/logs");
  std::ofstream(dir + "/" + kMarker) << "made by marginet demo; emptied by the next run\n";
}

void write_chains(const Day& d) {
  json chains = {{"ccp_address", "CCP"},
                 {"on_missed_deadline", "default_management"},
                 {"max_payout_attempts", 3},
                 {"grace_seconds", 1},
                 {"max_instructions_per_cycle", 100000}};
  chains["assets"] = {{"BTC", {{"scale", 8}, {"ccp_liquidity", "50"}}},
                      {"ETH", {{"scale", 9}, {"ccp_liquidity", "1000"}}},
                      {"USDC", {{"scale", 6}, {"ccp_liquidity", "50000000"}}},
                      {"USD", {{"scale", 2}, {"ccp_liquidity", "50000000"}}}};
  json bitcoin = {{"name", "bitcoin-sim"}, {"adapter", "sim"}, {"assets", {"BTC"}}, {"block_time", 0},
                  {"finality_depth", 3}, {"seed", 1}, {"failure_rate", 0}, {"member_funding", {{"BTC", "100000"}}}};
  json ethereum = {{"name", "ethereum-sim"}, {"adapter", "sim"}, {"assets", {"ETH", "USDC"}}, {"block_time", 0},
                   {"finality_depth", 2}, {"seed", 2}, {"failure_rate", 0},
                   {"member_funding", {{"ETH", "1000000"}, {"USDC", "10000000000"}}}};
  if (!d.o.evm_rpc.empty()) {
    // The same funding and liquidity as the sim chain, as tokens on the node (minor units).
    evm::EvmNode node(d.o.evm_rpc);
    const auto accounts = node.accounts();
    if (accounts.size() < d.members.size() + 1)
      throw input_error("demo: the node at " + d.o.evm_rpc + " unlocks " + std::to_string(accounts.size()) +
                        " accounts; the CCP and " + std::to_string(d.members.size()) + " members need more");
    evm::DeployRequest req;
    req.ccp = accounts[0];
    req.assets = {{"ETH", 9}, {"USDC", 6}};
    for (std::size_t i = 0; i < d.members.size(); ++i) req.members.emplace_back(d.members[i], accounts[i + 1]);
    req.member_funding = {{"ETH", 1'000'000'000'000'000}, {"USDC", 10'000'000'000'000'000}};
    req.ccp_funding = {{"ETH", 1'000'000'000'000}, {"USDC", 50'000'000'000'000}};
    evm::NodeAccountSigner signer;
    const auto dep = evm::deploy_settlement(node, signer, evm::ContractArtifacts::load(d.o.evm_contracts), req);
    ethereum = {{"name", "ethereum-anvil"}, {"adapter", "evm"}, {"assets", {"ETH", "USDC"}}, {"rpc_url", d.o.evm_rpc},
                {"finality_depth", 2}, {"ccp_account", dep.ccp}, {"dvp_contract", dep.dvp}, {"htlc_contract", dep.htlc},
                {"tokens", dep.tokens}, {"members", dep.members}, {"dev_mine", true}, {"contracts", d.o.evm_contracts}};
  }
  // The defaulter's USD transfers fail: its margin calls are never paid.
  json failing = json::array({d.defaulter});
  for (std::size_t k = 0; k < kAccountsPerMember; ++k) failing.push_back(account_of(d.defaulter, k));
  json rtgs = {{"name", "usd-rtgs-sim"}, {"adapter", "sim"}, {"assets", {"USD"}}, {"block_time", 0},
               {"finality_depth", 1}, {"seed", 3}, {"failing_members", failing},
               {"member_funding", {{"USD", "10000000000"}}}};
  chains["chains"] = {bitcoin, ethereum, rtgs};
  std::ofstream(d.path("chains.json")) << chains.dump(2) << "\n";
  std::ofstream(d.path("assets.csv")) << "asset,scale\nBTC,8\nETH,9\nUSD,2\nUSDC,6\n";
}

std::string step_book(Day& d) {
  BookSpec spec;
  spec.underlyings = 2;
  spec.instruments = d.o.instruments;
  spec.accounts = d.o.members * kAccountsPerMember;
  spec.positions = d.o.positions;
  spec.seed = d.o.seed;
  GeneratedBook book = generate_book(spec);
  write_book(book, d.dir);  // instruments, market, marks (positions.csv is rewritten below)
  d.ref = load_reference_data(d.path("instruments.csv"), d.path("market.csv"), d.path("marks.csv"));
  write_returns_history(d.path("returns.csv"), book.underlyings, 730, spec.valuation_time, d.o.seed + 2, false);
  write_returns_history(d.path("stress_returns.csv"), book.underlyings, 90, spec.valuation_time - 900 * 86400.0,
                        d.o.seed + 3, true);
  d.day = format_iso8601_utc(spec.valuation_time).substr(0, 10);

  // Accounts ACC000000… become the members' accounts, dealt round: the generator's accounts
  // are in decreasing size, so each member gets a large one and smaller ones.
  for (std::size_t i = 0; i < d.o.members; ++i) d.members.push_back(member_name(i));
  std::map<std::string, std::string> rename;
  std::vector<std::string> generated;
  for (const Position& p : book.positions)
    if (rename.emplace(p.account, std::string()).second) generated.push_back(p.account);
  std::sort(generated.begin(), generated.end());
  for (std::size_t i = 0; i < generated.size(); ++i)
    rename[generated[i]] = account_of(d.members[i % d.o.members], i / d.o.members);

  // About a fifth of the book is today's trading; the rest is yesterday's positions.
  std::mt19937_64 rng(d.o.seed + 7);
  std::uniform_real_distribution<double> u(0, 1);
  for (Position p : book.positions) {
    p.account = rename.at(p.account);
    (u(rng) < 0.2 ? d.today : d.yesterday).push_back(std::move(p));
  }
  std::ofstream pos(d.path("positions.csv"));
  pos << "account,instrument,quantity\n";
  for (const Position& p : d.yesterday)
    pos << p.account << "," << book.instruments[p.instrument].id << "," << quantity_text(std::llround(p.quantity * 1e8))
        << "\n";
  pos.close();
  return std::to_string(d.members.size()) + " members, " + std::to_string(book.instruments.size()) + " instruments, " +
         std::to_string(d.yesterday.size()) + " positions from yesterday, " + std::to_string(d.today.size()) +
         " trades to capture today";
}

// ---- 2. store ---------------------------------------------------------------------------

Methodology day_methodology(const Day& d, const std::string& model) {
  Methodology m = load_methodology(model);
  if (m.kind == MethodologyKind::hvar) {
    m.hvar.returns = d.path("returns.csv");
    m.hvar.stress_returns = d.path("stress_returns.csv");
  }
  if (m.kind == MethodologyKind::mc_es) m.mc.paths = d.o.paths;
  return m;
}

TradeInput trade_of(const Position& p, const InstrumentTable& instruments, const MarketSnapshot& market,
                    const std::string& trade_id, const std::string& time) {
  TradeInput t;
  t.source = kSource;
  t.trade_id = trade_id;
  t.account = p.account;
  t.instrument = instruments[p.instrument].id;
  t.quantity_text = quantity_text(std::llround(p.quantity * 1e8));
  const Mark* mark = market.find_mark(t.instrument);
  t.price_text = mark && mark->has_price() ? fixed(mark->mark_price, 2) : "0";
  t.time = time;
  return t;
}

std::string step_store(Day& d) {
  const ReferenceData& ref = d.ref;
  auto store = open_clearing_store(d.path("clearing.sqlite"), OpenMode::writer);
  for (const std::string& m : d.members) {
    store->add_member(m, std::nullopt);
    for (std::size_t k = 0; k < kAccountsPerMember; ++k) store->add_account(account_of(m, k), m);
  }
  // Yesterday's book, one package per member (all or nothing).
  std::map<std::string, std::vector<TradeInput>> legs;
  std::size_t n = 0;
  const std::string yesterday = d.day + "T00:00:00Z";
  for (const Position& p : d.yesterday)
    legs[p.account].push_back(trade_of(p, ref.instruments, ref.market, "Y-" + std::to_string(++n), yesterday));
  std::vector<Submission> batch;
  for (auto& [account, l] : legs) {
    for (TradeInput& t : l) t.package_id = "OPEN-" + account;
    batch.push_back(Submission::package(std::move(l)));
  }
  for (const SubmitResult& r : store->submit(batch))
    if (r.outcome != Outcome::recorded) throw std::runtime_error("recording yesterday's book: " + r.message);

  // The default fund, sized on yesterday's book; its contributions become the fund's balances.
  const Methodology m = day_methodology(d, d.o.model);
  const DefaultFundConfig fund = builtin_default_fund_config();
  std::map<std::string, std::string> member_of;
  for (const std::string& mem : d.members)
    for (std::size_t k = 0; k < kAccountsPerMember; ++k) member_of[account_of(mem, k)] = mem;
  const FundSizingRun sizing = size_fund(ref.instruments, ref.market, m, fund, d.yesterday, member_of, d.backend);
  record_fund_sizing(*store, sizing, fund, "FUND-" + d.day);

  // The member that will default: the one whose stress loss beyond its IM is the largest (the
  // fund's Cover-1 member), so that the waterfall has work to do. Its transfers fail on the USD
  // chain; every other account has a pre-trade check (IM after an RFQ package must stay within
  // its collateral + 10 %).
  const GroupStressResult* worst = nullptr;
  for (const GroupStressResult& g : sizing.sizing.groups)
    if (!worst || g.worst_uncovered > worst->worst_uncovered) worst = &g;
  d.defaulter = worst && !worst->members.empty() ? worst->members.front() : d.members.front();
  for (const std::string& m : d.members)
    for (std::size_t k = 0; k < kAccountsPerMember; ++k)
      if (m != d.defaulter) store->set_pretrade_headroom(account_of(m, k), 0.10);
  write_chains(d);

  MarginEngine engine(ref.instruments, ref.market, m, d.backend);
  for (const AccountMargin& a : engine.run(d.yesterday).accounts) d.opening_im[a.account] = a.im;
  const FundSizing& f = sizing.sizing;
  const std::string scenario = f.art42_scenario >= 0 ? f.scenarios.at(static_cast<std::size_t>(f.art42_scenario)) : "-";
  return std::to_string(d.yesterday.size()) + " positions recorded; default fund " +
         money_text(static_cast<double>(f.fund_minor) * std::pow(10.0, -fund.scale), fund.currency) + " (sized by '" +
         scenario + "')";
}

// ---- 3. components ----------------------------------------------------------------------

std::string step_components(Day& d) {
  // To the second: the ledger records its times to the second, and the timeline counts from here.
  d.started_at = std::floor(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  d.scheduler = std::make_unique<ChildProcess>(
      "scheduler",
      std::vector<std::string>{"scheduler", "--bind", "tcp://127.0.0.1:*", "--ledger", d.path("ledger.sqlite"),
                               "--chains", d.path("chains.json"), "--insecure", "--poll-ms", "5"},
      d.path("logs/scheduler.log"));
  const std::string scheduler_endpoint = d.scheduler->wait_for_endpoint(30'000);
  std::vector<std::string> args{"serve", "--bind", "tcp://127.0.0.1:*", "--store", d.path("clearing.sqlite"),
                                "--scheduler", scheduler_endpoint, "--model", d.o.model, "--call-deadline-s", "3",
                                "--device", d.o.device};
  for (const std::string& a : d.reference_args()) args.push_back(a);
  if (d.o.model == "hvar") {
    args.insert(args.end(), {"--returns", d.path("returns.csv"), "--stress-returns", d.path("stress_returns.csv")});
  }
  if (d.o.model == "mc-es") args.insert(args.end(), {"--paths", std::to_string(d.o.paths)});
  if (d.o.threads > 0) args.insert(args.end(), {"--threads", std::to_string(d.o.threads)});
  d.service = std::make_unique<ChildProcess>("service", args, d.path("logs/service.log"));
  const std::string endpoint = d.service->wait_for_endpoint(120'000);
  ClientOptions co;
  co.endpoint = endpoint;
  co.timeout_ms = 120'000;
  d.client = std::make_unique<MarginClient>(co);
  MarginClient::checked(d.client->ping());
  return "scheduler on " + scheduler_endpoint + ", service on " + endpoint +
         (d.o.evm_rpc.empty() ? std::string() : ", ETH and USDC on the EVM node " + d.o.evm_rpc) + " (logs in " +
         d.path("logs/") + ")";
}

// ---- 4. collateral ----------------------------------------------------------------------

std::string step_collateral(Day& d) {
  std::mt19937_64 rng(d.o.seed + 11);
  std::uniform_real_distribution<double> cover(1.4, 2.2);
  std::size_t n = 0;
  for (const auto& [account, im] : d.opening_im) {
    // The defaulter posts half its IM: it will be called, and its calls will not be paid.
    const bool defaulter = member_of_account(account) == d.defaulter;
    const double amount = std::max(10'000.0, std::ceil(im * (defaulter ? 0.5 : cover(rng))));
    const json r = MarginClient::checked(d.client->call({{"type", "collateral.deposit"},
                                                         {"account", account},
                                                         {"asset", "USDC"},
                                                         {"amount", fixed(amount, 2)},
                                                         {"reference", "DEP-" + d.day + "-" + account}}));
    if (r.at("outcome") != "recorded") throw std::runtime_error("deposit of " + account + ": " + r.dump());
    d.deposited += amount;
    ++n;
  }
  return std::to_string(n) + " deposits into " + std::to_string(d.members.size()) + " members' accounts, " +
         money_text(d.deposited, "USDC");
}

// ---- 5. trades --------------------------------------------------------------------------

std::string step_trades(Day& d) {
  const ReferenceData& ref = d.ref;
  const std::string now = d.day + "T09:30:00Z";
  std::size_t n = 0;
  for (const Position& p : d.today) {
    const json r = d.client->submit_trades({trade_of(p, ref.instruments, ref.market, "T-" + std::to_string(++n), now)});
    if (r.at("type") == "error" || r.at("outcome") != "recorded") {
      ++d.trades_refused;
      spdlog::warn("trade T-{} refused: {}", n, r.dump());
    } else {
      ++d.trades_captured;
    }
  }
  // RFQ packages: a short strangle per member, small for most, ten times the book's largest
  // option position for every third member (the pre-trade check refuses what IM would not cover).
  std::vector<std::size_t> options;
  for (std::size_t i = 0; i < ref.instruments.size(); ++i)
    if (ref.instruments[i].kind == InstrumentKind::option && ref.instruments[i].underlying == "BTC")
      options.push_back(i);
  if (options.size() < 2) throw std::runtime_error("the book has fewer than two BTC options for RFQ packages");
  double largest = 1;
  for (const Position& p : d.yesterday) largest = std::max(largest, std::fabs(p.quantity));
  std::mt19937_64 rng(d.o.seed + 13);
  std::size_t k = 0;
  for (const std::string& m : d.members) {
    if (m == d.defaulter) continue;
    const bool oversized = ++k % 3 == 0;
    const double q = oversized ? -std::ceil(10 * largest) : -1.0;
    std::vector<TradeInput> legs;
    const std::string package = "RFQ-" + m;
    for (int leg = 0; leg < 2; ++leg) {
      const Position p{account_of(m, 0), options[rng() % options.size()], q};
      legs.push_back(trade_of(p, ref.instruments, ref.market, package + "-" + std::to_string(leg + 1), now));
      legs.back().package_id = package;
    }
    const json r = d.client->submit_trades(legs, package);
    if (r.at("type") == "error") {
      if (r.at("code") != "insufficient_margin") throw std::runtime_error("RFQ " + package + ": " + r.dump());
      ++d.packages_refused;
    } else {
      ++d.packages_accepted;
      d.trades_captured += legs.size();
    }
  }
  return std::to_string(d.trades_captured) + " trades captured; RFQ packages " + std::to_string(d.packages_accepted) +
         " accepted, " + std::to_string(d.packages_refused) + " refused by the pre-trade check";
}

// ---- 6. market moves --------------------------------------------------------------------

/// `move` applied to the day's market (d.ref): sent as `market.update`, written as
/// TO_market.csv / TO_marks.csv, and loaded back as the day's market for the offline runs.
/// Returns the service's recompute time (ms).
double apply_move(Day& d, const Move& move, const std::string& to) {
  const ReferenceData& ref = d.ref;
  auto move_of = [&](const std::string& u) { return u == "BTC" ? move.btc : move.eth; };
  json update = {{"type", "market.update"}, {"priority", "high"}};
  update["underlyings"] = json::array();
  std::ofstream market(d.path(to + "market.csv"));
  market << "underlying,index_price,rate,valuation_time\n";
  for (const std::string u : {"BTC", "ETH"}) {
    const UnderlyingMarket& um = ref.market.underlying(u);
    const double index = um.index_price * (1 + move_of(u));
    update["underlyings"].push_back({{"underlying", u}, {"index_price", index}});
    market << u << "," << exact(index) << "," << exact(um.rate) << "," << format_iso8601_utc(um.valuation_time) << "\n";
  }
  update["marks"] = json::array();
  std::ofstream marks(d.path(to + "marks.csv"));
  marks << "instrument,mark_price,mark_iv\n";
  for (std::size_t i = 0; i < ref.instruments.size(); ++i) {
    const Instrument& inst = ref.instruments[i];
    const Mark* mk = ref.market.find_mark(inst.id);
    if (!mk) continue;
    json m = {{"instrument", inst.id}};
    std::string price, iv;
    if (mk->has_price()) {
      m["mark_price"] = mk->mark_price * (1 + move_of(inst.underlying));
      price = exact(m["mark_price"].get<double>());
    }
    if (mk->has_iv()) {
      m["mark_iv"] = mk->mark_iv * (1 + move.vol_up);
      iv = exact(m["mark_iv"].get<double>());
    }
    update["marks"].push_back(m);
    marks << inst.id << "," << price << "," << iv << "\n";
  }
  market.close();
  marks.close();
  const double ms = MarginClient::checked(d.client->market_update(update)).value("recompute_us", 0.0) / 1000;
  d.ref = load_reference_data(d.path("instruments.csv"), d.path(to + "market.csv"), d.path(to + "marks.csv"));
  return ms;
}

std::string move_text(const Move& m) {
  return "BTC " + pct(m.btc) + ", ETH " + pct(m.eth) + ", implied vols +" + pct(m.vol_up) + " (relative)";
}

std::string step_market(Day& d) {
  const double ms = apply_move(d, kIntraday, "intraday_");
  return move_text(kIntraday) + "; the service re-ran the book in " + fixed(ms, 1) + " ms";
}

// ---- 7, 8. call runs ----------------------------------------------------------------------

json call_run(Day& d, const std::string& kind, const std::string& run_id) {
  return MarginClient::checked(d.client->call({{"type", "calls.run"}, {"kind", kind}, {"run_id", run_id}}));
}

std::size_t calls_made(const json& run) {
  std::size_t n = 0;
  for (const auto& row : run.at("rows"))
    if (row.at(4).get<std::string>() != "0" && std::stod(row.at(4).get<std::string>()) > 0) ++n;
  return n;
}

/// "11 calls, 183259.03 USD"
std::string calls_text(const json& run) {
  return std::to_string(calls_made(run)) + " calls, " + run.at("total_call").get<std::string>() + " " +
         run.at("asset").get<std::string>();
}

std::string step_intraday(Day& d) {
  const json& r = d.intraday = call_run(d, "intraday", "INTRADAY-" + d.day);
  return calls_text(r) + " (" + r.at("model").get<std::string>() +
         ", " + fixed(r.value("compute_ms", 0.0), 1) + " ms)";
}

/// IM of the day's book (the store's positions) under every methodology, at the moved market.
std::string eod_methodologies(Day& d) {
  const ReferenceData& ref = d.ref;  // the close
  std::vector<Position> book;
  {
    const auto store = open_clearing_store(d.path("clearing.sqlite"), OpenMode::reader);
    book = kept_positions(*store, ref.instruments, d.path("instruments.csv"));
  }
  std::string text;
  for (const std::string model : {"span16", "deribit-pm", "hvar", "mc-es"}) {
    const Methodology m = day_methodology(d, model);
    MarginEngine engine(ref.instruments, ref.market, m, d.backend);
    const MarginRun run = engine.run(book);
    double total = 0;
    for (const AccountMargin& a : run.accounts) total += a.im;
    d.im_by_methodology.push_back({{"model", model}, {"total_im", total}, {"seconds", run.times.total_s}});
    text += (text.empty() ? "" : ", ") + model + " " + money_text(total, "USD", 0);
    if (model == d.o.model) {
      for (const AccountMargin& a : run.accounts) {
        const auto s = static_cast<std::size_t>(a.worst_scenario);
        d.accounts.push_back({{"account", a.account},
                              {"member", member_of_account(a.account)},
                              {"im", a.im},
                              {"mm", a.mm},
                              {"worst_scenario", a.worst_scenario + 1},
                              {"worst_scenario_label", a.worst_scenario >= 0 ? engine.scenarios().labels.at(s) : ""}});
      }
    }
    if (model == "hvar") {  // the scenario P&L profile of the largest account, day by day
      const AccountPnlMatrix pnl = engine.account_pnl();
      std::size_t largest = 0;
      for (std::size_t a = 0; a < run.accounts.size(); ++a)
        if (run.accounts[a].im > run.accounts[largest].im) largest = a;
      if (!run.accounts.empty()) {
        const double* row = pnl.row(largest);
        d.largest_account = {{"account", run.accounts[largest].account},
                             {"model", "hvar"},
                             {"labels", engine.scenarios().labels},
                             {"pnl", std::vector<double>(row, row + pnl.scenarios)},
                             {"worst_scenario", run.accounts[largest].worst_scenario + 1}};
      }
    }
  }
  return text;
}

/// Today's spot trades between members (not the defaulter), netted by the service into one cycle.
std::string eod_netting(Day& d) {
  std::mt19937_64 rng(d.o.seed + 17);
  std::vector<std::string> traders;
  for (const std::string& m : d.members)
    if (m != d.defaulter) traders.push_back(m);
  struct Pair { const char* base; const char* quote; double price; int qdec; };
  const Pair pairs[] = {{"BTC", "USD", 59800.0, 4}, {"ETH", "USDC", 3115.0, 3}, {"BTC", "USDC", 59790.0, 4}};
  std::ofstream f(d.path("spot_trades.csv"));
  f << "trade_id,buyer,seller,base_asset,quote_asset,quantity,price\n";
  std::uniform_real_distribution<double> size(0.05, 3.0);
  for (int i = 1; i <= 400; ++i) {
    const std::size_t b = rng() % traders.size();
    std::size_t s = rng() % (traders.size() - 1);
    if (s >= b) ++s;
    const Pair& p = pairs[rng() % std::size(pairs)];
    f << "S-" << i << "," << traders[b] << "," << traders[s] << "," << p.base << "," << p.quote << ","
      << fixed(size(rng) * (p.base[0] == 'E' ? 12 : 1), p.qdec) << "," << fixed(p.price * (1 + 0.002 * (size(rng) - 1.5)), 2) << "\n";
  }
  f.close();
  const json r = MarginClient::checked(d.client->net(d.path("spot_trades.csv"), d.path("assets.csv"), "NET-" + d.day));
  std::string text;
  for (const auto& a : r.at("assets")) {
    const int scale = a.at("scale").get<int>();
    const double unit = std::pow(10.0, -scale);
    const double gross = static_cast<double>(a.at("gross_deliveries_minor").get<std::int64_t>()) * unit;
    const double net = static_cast<double>(a.at("pay_ins_minor").get<std::int64_t>()) * unit;
    d.netting.push_back({{"asset", a.at("asset")}, {"gross", gross}, {"net", net}, {"efficiency", a.at("efficiency")}});
    text += (text.empty() ? "" : ", ") + a.at("asset").get<std::string>() + " " + pct(a.at("efficiency").get<double>());
  }
  return "400 spot trades netted into cycle NET-" + d.day + ": efficiency " + text;
}

std::string step_eod(Day& d) {
  apply_move(d, kClose, "close_");
  const std::string im = eod_methodologies(d);
  d.eod = call_run(d, "eod", "EOD-" + d.day);
  // The accounts' call and collateral as the EOD run recorded them.
  std::map<std::string, const json*> rows;
  for (const auto& row : d.eod.at("rows")) rows[row.at(0).get<std::string>()] = &row;
  for (auto& a : d.accounts) {
    const auto it = rows.find(a.at("account").get<std::string>());
    a["collateral_value"] = it == rows.end() ? 0.0 : it->second->at(3).get<double>();
    a["call"] = it == rows.end() ? 0.0 : std::stod(it->second->at(4).get<std::string>());
  }
  const std::string net = eod_netting(d);
  return "close " + move_text(kClose) + "; IM " + im + "; EOD " + calls_text(d.eod) + "; " + net;
}

// ---- 9. settlement ----------------------------------------------------------------------

/// Whether a call run of the day called an account of `member`.
bool called(const json& run, const std::string& member) {
  if (run.is_null()) return false;
  for (const auto& row : run.at("rows"))
    if (member_of_account(row.at(0).get<std::string>()) == member && std::stod(row.at(4).get<std::string>()) > 0)
      return true;
  return false;
}

std::string step_settlement(Day& d) {
  // Until the outbox is empty (every cycle acknowledged and settled) and the member whose
  // pay-in failed is in default.
  if (!called(d.intraday, d.defaulter) && !called(d.eod, d.defaulter))
    throw std::runtime_error(d.defaulter + " was never called, so it cannot miss a pay-in (its collateral covered IM)");
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(90);
  while (true) {
    const json st = MarginClient::checked(d.client->status());
    const json& outbox = st.at("outbox");
    bool defaulted = false;
    {
      const auto store = open_clearing_store(d.path("clearing.sqlite"), OpenMode::reader);
      for (const DefaultSummary& s : store->defaults()) defaulted = defaulted || s.member == d.defaulter;
    }
    if (outbox.at("unsettled").get<std::int64_t>() == 0 && outbox.at("unacked").get<std::int64_t>() == 0 && defaulted)
      break;
    if (Clock::now() > deadline)
      throw std::runtime_error("not settled after 90 s: outbox " + outbox.dump() +
                               (defaulted ? "" : "; " + d.defaulter + " not in default"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string settled = fixed(std::chrono::duration<double>(Clock::now() - t0).count(), 1) + " s after the EOD run";
  const auto store = open_clearing_store(d.path("clearing.sqlite"), OpenMode::reader);
  for (const DefaultSummary& s : store->defaults()) {
    if (s.member != d.defaulter) continue;
    const double unit = std::pow(10.0, -s.scale);
    json steps = json::array();
    double covered = 0, uncovered = 0;
    for (const WaterfallStep& w : s.steps) {
      const double absorbed = static_cast<double>(w.absorbed_minor) * unit;
      (w.layer == WaterfallLayer::uncovered ? uncovered : covered) += absorbed;
      steps.push_back({{"layer", to_string(w.layer)},
                       {"member", w.member},
                       {"available", static_cast<double>(w.available_minor) * unit},
                       {"absorbed", absorbed}});
    }
    d.default_json = {{"default_id", s.default_id}, {"member", s.member}, {"reason", s.reason},
                      {"currency", s.currency},     {"loss", static_cast<double>(s.loss_minor) * unit},
                      {"covered", covered},         {"uncovered", uncovered},
                      {"positions_moved", s.positions_moved}, {"steps", steps}};
  }
  return "every cycle settled " + settled + "; " + d.defaulter + " missed its pay-in and was declared in default";
}

// ---- 10. ledger -------------------------------------------------------------------------

std::string step_ledger(Day& d) {
  d.client.reset();
  const int service_exit = d.service->stop();
  const int scheduler_exit = d.scheduler->stop();
  if (service_exit != 0 || scheduler_exit != 0)
    throw std::runtime_error("components did not stop cleanly: service exit " + std::to_string(service_exit) +
                             ", scheduler exit " + std::to_string(scheduler_exit) + " (logs in " + d.path("logs/") + ")");
  SqliteDb db(d.path("ledger.sqlite"), false);
  Ledger ledger(db);
  const LedgerVerifyReport v = ledger.verify();
  if (!v.ok) throw std::runtime_error("ledger verify failed: " + v.message);

  // The settlement timeline, cycle by cycle, from the ledger.
  std::map<std::string, json> cycles;
  std::vector<std::string> order;
  std::int64_t proof_seq = 0;
  for (const LedgerEntry& e : ledger.entries()) {
    if (e.cycle_id.empty()) continue;
    const double at = parse_iso8601_utc(e.at).value_or(d.started_at) - d.started_at;
    if (!cycles.count(e.cycle_id)) {
      order.push_back(e.cycle_id);
      cycles[e.cycle_id] = {{"cycle_id", e.cycle_id},
                            {"kind", e.cycle_id.rfind("calls-", 0) == 0 ? "calls" : e.cycle_id.rfind("NET-", 0) == 0 ? "net" : "other"},
                            {"opened_s", at}, {"closed_s", at}, {"instructions", 0}, {"final", 0}, {"defaulted", 0},
                            {"rolled", 0}};
    }
    json& c = cycles[e.cycle_id];
    c["closed_s"] = at;
    if (e.kind == "instruction.state") {
      const json body = json::parse(e.body, nullptr, false);
      const std::string state = body.is_object() ? body.value("to", "") : "";  // the state it went to
      if (state == "final" || state == "defaulted" || state == "rolled") {
        c[state] = c[state].get<int>() + 1;
        c["instructions"] = c["instructions"].get<int>() + 1;
        if (state == "final" && proof_seq == 0) proof_seq = e.seq;
      }
    }
  }
  for (const std::string& id : order) d.cycles.push_back(cycles[id]);

  // One inclusion proof, checked from the entry's bytes up to its cycle's root.
  if (proof_seq == 0) throw std::runtime_error("no final instruction in the ledger to prove");
  const InclusionProof p = ledger.prove(proof_seq);
  std::vector<merkle::Hash> path;
  for (const std::string& h : p.audit_path) path.push_back(merkle::from_hex(h).value());
  const auto root = merkle::root_from_audit_path(p.leaf_index, p.tree_size, merkle::leaf_hash(p.entry_bytes), path);
  if (!root || merkle::to_hex(*root) != p.root)
    throw std::runtime_error("the inclusion proof of ledger entry " + std::to_string(proof_seq) + " does not check");
  d.ledger_json = {{"entries", v.entries}, {"cycles_checked", v.cycles_checked}, {"root", ledger.tree_root()},
                   {"proof_entry", proof_seq}, {"proof_cycle", p.entry.cycle_id}, {"verified", true}};
  return std::to_string(v.entries) + " entries and " + std::to_string(v.cycles_checked) +
         " cycle roots verified; entry " + std::to_string(proof_seq) + " proved in " + p.entry.cycle_id;
}

// ---- 11. report ---------------------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> summary_of(const Day& d) {
  std::vector<std::pair<std::string, std::string>> s;
  s.push_back({"day", d.day + ", " + std::to_string(d.members.size()) + " members (" +
                          std::to_string(d.members.size() * kAccountsPerMember) + " accounts), " + d.o.model + " on " +
                          backend_name(d.backend)});
  s.push_back({"trades captured", std::to_string(d.trades_captured) + " (refused " + std::to_string(d.trades_refused) +
                                      "); RFQ packages " + std::to_string(d.packages_accepted) + " accepted, " +
                                      std::to_string(d.packages_refused) + " refused by the pre-trade check"});
  s.push_back({"collateral", money_text(d.deposited, "USDC") + " deposited"});
  if (!d.intraday.is_null())
    s.push_back({"intraday", "BTC " + pct(kIntraday.btc) + ", ETH " + pct(kIntraday.eth) + ", vols +" +
                                 pct(kIntraday.vol_up) + "; " + calls_text(d.intraday)});
  for (const auto& m : d.im_by_methodology)
    s.push_back({"IM " + m.at("model").get<std::string>(), money_text(m.at("total_im").get<double>(), "USD")});
  if (!d.eod.is_null())
    s.push_back({"end of day", "BTC " + pct(kClose.btc) + ", ETH " + pct(kClose.eth) + " more; " + calls_text(d.eod)});
  std::string net;
  for (const auto& a : d.netting)
    net += (net.empty() ? "" : ", ") + a.at("asset").get<std::string>() + " " + pct(a.at("efficiency").get<double>());
  if (!net.empty()) s.push_back({"netting efficiency", net});
  if (!d.cycles.empty()) {
    std::string text;
    for (const auto& c : d.cycles)
      text += (text.empty() ? "" : ", ") + c.at("cycle_id").get<std::string>() + " " +
              fixed(c.at("closed_s").get<double>() - c.at("opened_s").get<double>(), 1) + " s";
    s.push_back({"settlement", text});
  }
  if (!d.default_json.is_null()) {
    const std::string cur = d.default_json.at("currency").get<std::string>();
    std::string layers;
    for (const auto& st : d.default_json.at("steps"))
      if (st.at("absorbed").get<double>() > 0)
        layers += (layers.empty() ? "" : ", ") + st.at("layer").get<std::string>() + " " +
                  money_text(st.at("absorbed").get<double>(), cur);
    s.push_back({"default", d.default_json.at("member").get<std::string>() + ": close-out loss " +
                                money_text(d.default_json.at("loss").get<double>(), cur) + "; " + layers});
  }
  if (!d.ledger_json.is_null())
    s.push_back({"ledger", std::to_string(d.ledger_json.at("entries").get<std::int64_t>()) + " entries verified, root " +
                               d.ledger_json.at("root").get<std::string>().substr(0, 16) + "…, entry " +
                               std::to_string(d.ledger_json.at("proof_entry").get<std::int64_t>()) + " proved"});
  return s;
}

std::string write_day_json(const Day& d, const std::vector<std::pair<std::string, std::string>>& summary) {
  json j;
  j["day"] = d.day;
  j["started_at"] = d.started_at;
  j["model"] = d.o.model;
  j["device"] = backend_name(d.backend);
  j["currency"] = "USD";
  j["members"] = d.members;
  j["defaulter"] = d.defaulter;
  j["summary"] = json::array();
  for (const auto& [k, v] : summary) j["summary"].push_back({k, v});
  j["accounts"] = d.accounts;
  j["im_by_methodology"] = d.im_by_methodology;
  j["largest_account"] = d.largest_account;
  j["netting"] = d.netting;
  j["cycles"] = d.cycles;
  j["default"] = d.default_json;
  j["ledger"] = d.ledger_json;
  const std::string path = d.path("day.json");
  std::ofstream(path) << j.dump(1) << "\n";
  return path;
}

}  // namespace

ClearingDayResult run_clearing_day(const ClearingDayOptions& o, const DayProgress& progress) {
  Day d;
  d.o = o;
  d.dir = o.workdir;
  if (o.members < 3 || o.members > 100) throw usage_error("demo: --members must be within 3..100");
  set_cpu_threads(o.threads);
  d.backend = select_backend(parse_device_choice(o.device));
  prepare_workdir(d.dir);  // before any step: a folder it may not empty is bad input (exit 2)

  ClearingDayResult result;
  using Step = std::pair<const char*, std::string (*)(Day&)>;
  const Step steps[] = {{"book", step_book},         {"store", step_store},     {"components", step_components},
                        {"collateral", step_collateral}, {"trades", step_trades}, {"market move", step_market},
                        {"intraday calls", step_intraday}, {"end of day", step_eod}, {"settlement", step_settlement},
                        {"ledger", step_ledger}};
  static_assert(std::size(steps) + 1 == kDaySteps, "the day's steps and the report");
  const std::size_t total = kDaySteps;
  bool failed = false;
  for (std::size_t i = 0; i < std::size(steps) && !failed; ++i) {
    if (progress.starting) progress.starting(i, total, steps[i].first);
    DayStep s;
    s.name = steps[i].first;
    const auto t0 = Clock::now();
    try {
      s.detail = steps[i].second(d);
      s.ok = true;
    } catch (const std::exception& e) {
      s.detail = e.what();
      failed = true;  // later steps depend on this one
    }
    s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    result.steps.push_back(s);
    if (progress.finished) progress.finished(s);
  }
  // Whatever happened, nothing is left running.
  d.client.reset();
  if (d.service) d.service->stop();
  if (d.scheduler) d.scheduler->stop();

  result.summary = summary_of(d);
  if (fs::exists(d.dir)) {
    if (progress.starting) progress.starting(total - 1, total, "report");
    DayStep s;
    s.name = "report";
    const auto t0 = Clock::now();
    try {
      result.day_json = write_day_json(d, result.summary);
      if (failed) throw std::runtime_error("not made: the day did not complete");
      result.report_html = fs::absolute(make_report(d.dir)).lexically_normal().string();
      s.ok = true;
      s.detail = result.report_html;
    } catch (const std::exception& e) {
      s.detail = e.what();
    }
    s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    result.steps.push_back(s);
    if (progress.finished) progress.finished(s);
  }
  if (progress.starting) progress.starting(total, total, "done");
  return result;
}

// ---- the report script ------------------------------------------------------------------

namespace {

/// An interpreter that imports matplotlib: /usr/bin/python3 (Debian's python3-matplotlib), else
/// python3 on PATH. "" when neither has it.
std::string python_with_matplotlib() {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    const std::string cmd = std::string(py) + " -c 'import matplotlib' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

}  // namespace

std::string make_report(const std::string& day_dir) {
  if (!fs::exists(day_dir + "/day.json")) throw input_error(day_dir + "/day.json", 0, "", "no such file (not a demo run folder)");
  const std::string py = python_with_matplotlib();
  if (py.empty())
    throw std::runtime_error("no Python interpreter with matplotlib (Debian: apt-get install python3-matplotlib, "
                             "or scripts/install-deps.sh)");
  const std::string script = day_dir + "/.make_report.py";
  std::ofstream(script) << kReportScript;
  const std::string log = day_dir + "/logs/report.log";
  fs::create_directories(day_dir + "/logs");
  auto quoted = [](const std::string& s) {  // for the shell: '…' with any ' spelled '\''
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  const std::string cmd = py + " " + quoted(script) + " " + quoted(day_dir) + " >" + quoted(log) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  fs::remove(script);
  if (rc != 0) throw std::runtime_error("the report script failed: " + read_file_text(log));
  return day_dir + "/report.html";
}

}  // namespace marginet::demo
