#pragma once
// A MarginServer running in the benchmark's process on tcp://127.0.0.1:* (its own thread),
// stopped and joined on destruction. Used by the loopback benchmarks of the service.

#include <memory>
#include <thread>
#include <utility>

#include "bench/bench_context.hpp"
#include "service/margin/server.hpp"

namespace marginet::bench {

struct LiveServer {
  std::unique_ptr<MarginServer> server;
  std::thread thread;
  explicit LiveServer(ServerOptions o) {
    o.bind = "tcp://127.0.0.1:*";
    o.backend = backend();
    o.quiet = true;
    server = std::make_unique<MarginServer>(std::move(o));
    thread = std::thread([this] { server->run(); });
  }
  ~LiveServer() {
    server->stop();
    thread.join();
  }
  LiveServer(const LiveServer&) = delete;
  LiveServer& operator=(const LiveServer&) = delete;
};

}  // namespace marginet::bench
