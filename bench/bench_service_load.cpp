// Loopback load test of the margin service (issue 7): a MarginServer in this process on
// tcp://127.0.0.1:*, many concurrent DEALER clients (service/margin/client.hpp) in closed loop.
//
//   BM_MarginLoad/batching:0|1/clients:N   margin requests (one 25-position account each,
//       deribit-pm) — requests/s and p50/p99 latency; batching off (max batch 1, no window) is
//       the baseline of batching on (window 200 µs, max batch 64).
//   BM_WhatIf/lane:0|1|2                   what-if of one trade for a 200-position account
//       against 1,250 stress scenarios, end to end (client encode → server → reply decoded):
//       lane:0 the baseline, the account's book sent inline and margined first (what `marginet
//       whatif` does); lane:1 from the server's cached P&L rows through the compute thread's
//       queue (--no-whatif-fast-lane); lane:2 the same on the socket thread's fast lane (the
//       default). Counters split the median into decode, queue, engine and the rest.
//   BM_ZmqEcho                             the floor: a bare DEALER/ROUTER round trip on
//       loopback with frames of a what-if's sizes, no work.
//
//   bench_service_load [--device=cpu|cuda] [--threads=N] [--benchmark_format=json]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "bench/bench_context.hpp"
#include "bench/live_server.hpp"
#include "host/book_generator.hpp"
#include "service/margin/client.hpp"
#include "service/margin/server.hpp"

#include <zmq.hpp>

namespace {

using namespace marginet;
using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;
using bench::LiveServer;
using bench::percentile;

const std::string kDir = std::filesystem::temp_directory_path().string() + "/marginet_bench_service";

/// The book of the load test (many small accounts) and of the what-if (one 200-position account).
void write_inputs() {
  static bool done = false;
  if (done) return;
  BookSpec load;
  load.underlyings = 2;
  load.instruments = 400;
  load.accounts = 64;
  load.positions = 64 * 25;
  write_book(generate_book(load), kDir + "/load");
  BookSpec one;
  one.underlyings = 2;
  one.instruments = 400;
  one.accounts = 1;
  one.positions = 200;
  one.seed = 3;
  write_book(generate_book(one), kDir + "/whatif");
  json scenarios = json::array();
  for (int s = 0; s < 1250; ++s)
    scenarios.push_back({{"name", "s" + std::to_string(s + 1)},
                         {"shocks", {{"*", {{"move", -0.25 + 0.5 * s / 1249.0}, {"vol_shift", (s % 5 - 2) * 0.03}}}}}});
  std::ofstream(kDir + "/whatif/stress1250.json") << json{{"model", "stress"}, {"scenarios", scenarios}}.dump();
  done = true;
}


ServerOptions reference(const std::string& dir) {
  ServerOptions o;
  o.instruments = dir + "/instruments.csv";
  o.market = dir + "/market.csv";
  o.marks = dir + "/marks.csv";
  return o;
}


void BM_MarginLoad(benchmark::State& state) {
  write_inputs();
  const bool batching = state.range(0) != 0;
  const auto clients = static_cast<std::size_t>(state.range(1));
  constexpr int kRequestsPerClient = 25;
  ServerOptions o = reference(kDir + "/load");
  o.model = "deribit-pm";
  o.max_batch = batching ? 64 : 1;
  o.batch_window_us = batching ? 200 : 0;
  LiveServer live(o);
  const auto positions = read_inline_positions(kDir + "/load/positions.csv");
  const json portfolios = portfolios_json(positions);  // one per account
  std::vector<std::unique_ptr<MarginClient>> conns;
  for (std::size_t c = 0; c < clients; ++c)
    conns.push_back(std::make_unique<MarginClient>(ClientOptions{live.server->endpoint(), 60'000, {}, {}}));
  std::vector<double> latencies;
  std::size_t requests = 0, largest_batch = 0;
  double wall = 0;
  for (auto _ : state) {
    std::vector<std::vector<double>> lat(clients);
    std::vector<std::size_t> batch(clients, 0);
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        for (int k = 0; k < kRequestsPerClient; ++k) {
          const json& p = portfolios[(c * kRequestsPerClient + static_cast<std::size_t>(k)) % portfolios.size()];
          const auto s = Clock::now();
          const json r = conns[c]->call({{"type", "margin"}, {"portfolios", json::array({p})}});
          lat[c].push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
          if (r["type"] != "margin.result") std::abort();
          batch[c] = std::max(batch[c], r["batch"]["requests"].get<std::size_t>());
        }
      });
    for (auto& t : threads) t.join();
    wall += std::chrono::duration<double>(Clock::now() - t0).count();
    for (std::size_t c = 0; c < clients; ++c) {
      latencies.insert(latencies.end(), lat[c].begin(), lat[c].end());
      largest_batch = std::max(largest_batch, batch[c]);
    }
    requests += clients * kRequestsPerClient;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(requests));
  state.counters["requests_per_s"] = static_cast<double>(requests) / wall;
  state.counters["p50_us"] = percentile(latencies, 0.50);
  state.counters["p99_us"] = percentile(latencies, 0.99);
  state.counters["largest_batch"] = static_cast<double>(largest_batch);
}

std::size_t g_whatif_reply_bytes = 4096;  // the last what-if reply's msgpack size (BM_ZmqEcho's reply)

void BM_WhatIf(benchmark::State& state) {
  write_inputs();
  const int lane = static_cast<int>(state.range(0));  // 0 inline book, 1 cached rows queued, 2 cached rows fast lane
  ServerOptions o = reference(kDir + "/whatif");
  o.model = kDir + "/whatif/stress1250.json";
  o.positions = kDir + "/whatif/positions.csv";
  o.whatif_fast_lane = lane == 2;
  LiveServer live(o);
  MarginClient client(ClientOptions{live.server->endpoint(), 60'000, {}, {}});
  const auto book = read_inline_positions(kDir + "/whatif/positions.csv");
  const std::string account = book.front().account;
  json pairs = json::array();
  for (const auto& p : book) pairs.push_back(json::array({p.instrument, p.quantity}));
  std::vector<double> latencies, decode, queue, engine, rest;
  std::size_t n = 0, fast = 0;
  for (auto _ : state) {
    const auto& traded = book[n % book.size()];
    json req{{"type", "whatif"}, {"account", account}, {"trades", json::array({json::array({traded.instrument, -1.0})})}};
    if (lane == 0) req["positions"] = pairs;
    const auto s = Clock::now();
    const json r = client.call(std::move(req));
    const double total = std::chrono::duration<double, std::micro>(Clock::now() - s).count();
    latencies.push_back(total);
    if (r["type"] != "whatif.result") {
      state.SkipWithError(r.dump().substr(0, 200).c_str());
      break;
    }
    const json& t = r["timing"];
    decode.push_back(t["decode_us"].get<double>());
    queue.push_back(t["queue_us"].get<double>());
    engine.push_back(t["engine_us"].get<double>());
    rest.push_back(total - decode.back() - queue.back() - engine.back());
    fast += t["lane"] == "fast";
    if (n == 0) g_whatif_reply_bytes = json::to_msgpack(r).size();
    ++n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["positions"] = static_cast<double>(book.size());
  state.counters["scenarios"] = 1250;
  state.counters["p50_us"] = percentile(latencies, 0.50);
  state.counters["p99_us"] = percentile(latencies, 0.99);
  // Where the time went (medians): the server's decode, receipt to engine (queue and the hand-off
  // to the compute thread), the engine's what-if; the rest is the server's encode, the client's
  // encode and decode, ZeroMQ's I/O threads and the loopback.
  state.counters["decode_p50_us"] = percentile(decode, 0.50);
  state.counters["queue_p50_us"] = percentile(queue, 0.50);
  state.counters["engine_p50_us"] = percentile(engine, 0.50);
  state.counters["rest_p50_us"] = percentile(rest, 0.50);
  state.counters["fast_lane_share"] = n ? static_cast<double>(fast) / static_cast<double>(n) : 0;
}

// The floor under any request over ZeroMQ on this machine: a DEALER sends a frame of a what-if
// request's size to a ROUTER on loopback whose thread sends back a frame of a what-if reply's
// size at once (no decode, no work). p50/p99 of the round trip.
void BM_ZmqEcho(benchmark::State& state) {
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  const std::string reply(g_whatif_reply_bytes, 'r');
  std::thread echo([&] {
    while (!stop) {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t id, body;
      (void)router.recv(id);
      (void)router.recv(body);
      router.send(id, zmq::send_flags::sndmore);
      router.send(zmq::buffer(reply), zmq::send_flags::none);
    }
  });
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(endpoint);
  const std::string request(120, 'q');
  std::vector<double> latencies;
  for (auto _ : state) {
    const auto s = Clock::now();
    dealer.send(zmq::buffer(request), zmq::send_flags::none);
    zmq::message_t m;
    (void)dealer.recv(m);
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
  }
  stop = true;
  echo.join();
  state.counters["reply_bytes"] = static_cast<double>(reply.size());
  state.counters["p50_us"] = percentile(latencies, 0.50);
  state.counters["p99_us"] = percentile(latencies, 0.99);
}

BENCHMARK(BM_MarginLoad)
    ->ArgNames({"batching", "clients"})
    ->Args({0, 16})->Args({1, 16})->Args({0, 64})->Args({1, 64})
    ->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WhatIf)->ArgNames({"lane"})->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ZmqEcho)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

MARGINET_BENCHMARK_MAIN();
