#include "host/contagion_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "host/dispatch.hpp"
#include "kernels/contagion.hpp"
#include "models/errors.hpp"

namespace marginet {

ContagionAlgorithm parse_contagion_algorithm(const std::string& text) {
  if (text == "picard") return ContagionAlgorithm::picard;
  if (text == "fictitious-default") return ContagionAlgorithm::fictitious_default;
  throw usage_error("--algorithm must be picard or fictitious-default, not '" + text + "'");
}

const char* contagion_algorithm_name(ContagionAlgorithm algorithm) {
  return algorithm == ContagionAlgorithm::fictitious_default ? "fictitious-default" : "picard";
}

namespace {

kernels::ClearingNetworkView view_of(const ClearingSystem& s) {
  return kernels::ClearingNetworkView{s.nodes,           s.in_begin.data(),  s.in_debtor.data(),
                                      s.in_amount.data(), s.external.data(), s.liability.data(),
                                      s.margin_received.data()};
}

kernels::ClearingIterationArgs args_of(const ClearingSystem& s, const ClearingParams& params) {
  kernels::ClearingIterationArgs a;
  a.network = view_of(s);
  a.alpha = params.alpha;
  a.beta = params.beta;
  a.tolerance = s.tolerance(params);
  a.max_iterations = params.max_iterations;
  return a;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

PicardRun picard_on(const ClearingSystem& s, const ClearingParams& params, Backend backend) {
  check_clearing_params(params);
  PicardRun run;
  run.payment = s.liability;  // from the top: the iterates decrease to the greatest fixed point
  kernels::ClearingIterationArgs a = args_of(s, params);
  a.payment = run.payment.data();
  const kernels::ClearingIterationResult r = MARGINET_DISPATCH(backend, clearing_iterate, a);
  run.iterations = r.iterations;
  run.last_change = r.last_change;
  run.converged = r.converged;
  return run;
}

FictitiousDefaultRun fictitious_default_on(const ClearingSystem& s, const ClearingParams& params, Backend backend) {
  check_clearing_params(params);
  const auto n = static_cast<std::size_t>(s.nodes);
  FictitiousDefaultRun run;
  run.payment = s.liability;
  run.wave.assign(n, 0);
  std::vector<double> inflow(n);
  kernels::ClearingIterationArgs a = args_of(s, params);
  a.payment = run.payment.data();
  a.inflow = inflow.data();
  {
    // No iteration: only the inflows when everyone pays in full.
    kernels::ClearingIterationArgs at_start = a;
    at_start.max_iterations = 0;
    MARGINET_DISPATCH(backend, clearing_iterate, at_start);
  }
  std::vector<std::int32_t> defaulted;  // ascending
  for (std::int32_t round = 1;; ++round) {
    bool declared = false;
    for (std::size_t i = 0; i < n; ++i)
      if (run.wave[i] == 0 && s.external[i] + inflow[i] < s.liability[i]) {
        run.wave[i] = round;
        declared = true;
      }
    if (!declared) break;
    run.waves = round;
    defaulted.clear();
    for (std::size_t i = 0; i < n; ++i)
      if (run.wave[i] > 0) defaulted.push_back(static_cast<std::int32_t>(i));
    // The round's linear system, iterated from the current payments (above its solution):
    // the defaulted nodes pay α·e + β·inflow, the others stay at l.
    a.rows = defaulted.data();
    a.row_count = defaulted.size();
    const kernels::ClearingIterationResult r = MARGINET_DISPATCH(backend, clearing_iterate, a);
    run.sweeps += r.iterations;
    if (!r.converged) run.converged = false;
  }
  return run;
}

ContagionRun clear_network(const Network& network, const ContagionOptions& options) {
  check_clearing_params(options.params);
  ContagionRun run;
  run.system = build_clearing_system(network);
  const ClearingSystem& s = run.system;
  run.tolerance = s.tolerance(options.params);

  auto t0 = std::chrono::steady_clock::now();
  run.picard = picard_on(s, options.params, options.backend);
  run.picard_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  run.fictitious_default = fictitious_default_on(s, options.params, options.backend);
  run.fictitious_default_s = seconds_since(t0);

  const std::vector<double>& p = run.picard.payment;
  const std::vector<double>& q = run.fictitious_default.payment;
  double scale = 1.0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    run.max_difference = std::max(run.max_difference, std::fabs(p[i] - q[i]));
    run.default_mismatches += (p[i] < s.liability[i]) != (run.fictitious_default.wave[i] > 0);
    scale = std::max(scale, s.total_liability[i]);
  }
  run.agree = run.picard.converged && run.fictitious_default.converged && run.default_mismatches == 0 &&
              run.max_difference <= 1e-9 * scale;

  run.nodes = node_results(s, options.algorithm == ContagionAlgorithm::picard ? p : q, run.fictitious_default.wave);

  // Conservation: every payment is some node's inflow (outside creditors are nodes too), so the
  // two totals agree up to rounding. And no payment leaves [0, l].
  double paid = 0, received = 0, owed = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    paid += run.nodes.payment[i];
    received += run.nodes.inflow[i];
    owed += s.total_liability[i];
    if (!(run.nodes.payment[i] >= s.margin_posted[i] && run.nodes.shortfall[i] >= 0))
      MARGINET_FAIL("clearing: the payment of node " + network.ids[i] + " is outside [margin, liability]");
  }
  if (!(std::fabs(paid - received) <= 1e-9 * std::max(1.0, owed)))
    MARGINET_FAIL("clearing: value not conserved (payments " + std::to_string(paid) + " vs inflows " +
                  std::to_string(received) + ")");
  return run;
}

}  // namespace marginet
