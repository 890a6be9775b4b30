#pragma once
// The clearing day of `marginet demo` (README's main job): the real components on loopback,
// started and stopped here, driven as a clearing house's day runs.
//
//   1. book        a generated BTC/ETH book of options, futures and perpetuals for N members;
//                  yesterday's positions (most of it) and today's trades kept apart
//   2. store       members and accounts (four each) registered, yesterday's book recorded, the
//                  default fund sized on it (EMIR art. 42(3)) and its contributions recorded
//   3. components  `marginet scheduler` (ledger, simulated chains on which one member's
//                  transfers fail) and `marginet serve` (clearing store, settlement link)
//                  (the member with the largest stress loss beyond its IM is the one that will
//                  default: its transfers fail on the USD chain; the others get a pre-trade check)
//   4. collateral  every account gets USDC over ZeroMQ (the defaulter's: half its IM)
//   5. trades      today's trades submitted over ZeroMQ, then RFQ packages: the pre-trade check
//                  refuses those that IM after them would not cover
//   6. market      an intraday move (BTC and ETH down, vols up) as `market.update`
//   7. intraday    an intraday call run
//   8. end of day  a second move at the close; IM under every methodology on the day's book;
//                  the EOD call run; the day's spot trades netted into one settlement cycle
//   9. settlement  every cycle settled by the scheduler; the member whose pay-in fails is
//                  handed to default management (close-out, waterfall) by the service
//  10. ledger      the components stopped; the ledger verified and one inclusion proof checked
//  11. report      DIR/day.json, and DIR/report.html made from it (python/report/make_report.py)
//
// Each step's outcome is kept; a failed step fails the day (the CLI exits 1) and names what
// failed. Logs of the components go to DIR/logs/, never to the terminal.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace marginet::demo {

struct ClearingDayOptions {
  std::string workdir = "marginet-demo";
  std::size_t members = 8;
  std::size_t instruments = 400;
  std::size_t positions = 3000;   // yesterday's book and today's trades together
  std::string model = "span16";   // the methodology the service margins and calls with
  std::size_t paths = 2000;       // mc-es paths of the IM-by-methodology comparison
  std::uint64_t seed = 42;
  std::string device = "auto";    // the service's --device, and the comparison's
  int threads = 0;
  // ETH and USDC settled on an Ethereum node (a local anvil, scripts/evm/anvil.sh) instead of
  // the ethereum-sim chain: the DvP contract and tokens deployed there by the demo. "" = sim.
  std::string evm_rpc;
  std::string evm_contracts;  // BUILD/evm/contracts.json
};

struct DayStep {
  std::string name;
  bool ok = false;
  std::string detail;  // what it did, or why it failed
  double seconds = 0;
};

struct ClearingDayResult {
  std::vector<DayStep> steps;
  std::vector<std::pair<std::string, std::string>> summary;  // label, text as printed
  std::string day_json;     // DIR/day.json
  std::string report_html;  // DIR/report.html, "" when it could not be made
  bool ok() const;
};

/// The steps above and the report.
inline constexpr std::size_t kDaySteps = 11;

/// What the day tells as it goes: `starting(done, total, name)` before each step (and with
/// done == total at the end), `finished(step)` after each, with its outcome.
struct DayProgress {
  std::function<void(std::size_t done, std::size_t total, const std::string& step)> starting;
  std::function<void(const DayStep& step)> finished;
};

/// Runs the day in `options.workdir` (created; a folder that holds anything but an earlier
/// demo's files is refused with input_error). Never leaves a child process running.
ClearingDayResult run_clearing_day(const ClearingDayOptions& options, const DayProgress& progress);

/// DIR/report.html from DIR/day.json: the report script (built into the binary) run by a Python
/// interpreter that has matplotlib (/usr/bin/python3, else python3 on PATH). Returns the path;
/// std::runtime_error saying why when it cannot.
std::string make_report(const std::string& day_dir);

}  // namespace marginet::demo
