#pragma once
// Contagion across a network (SPEC §11; docs/contagion.md): the clearing payments on the chosen
// backend by two algorithms, checked against each other on every run.
//
//   Network net = read_network_json("three_banks.json");
//   ContagionRun run = clear_network(net, {Backend::cpu});
//   run.nodes.payment[i], run.nodes.wave[i], ...; run.agree
//
// Picard iteration (the kernel, kernels/contagion.hpp) gives p*; the fictitious default
// algorithm gives p* too, and the waves (the round in which each node defaulted). Both always
// run: the waves need the second, and their agreement is the run's check. `algorithm` picks
// whose payments are reported.

#include <cstdint>
#include <string>

#include "host/backend.hpp"
#include "models/contagion.hpp"

namespace marginet {

enum class ContagionAlgorithm : std::uint8_t { picard, fictitious_default };

/// "picard" | "fictitious-default"; anything else is a usage_error.
ContagionAlgorithm parse_contagion_algorithm(const std::string& text);
const char* contagion_algorithm_name(ContagionAlgorithm algorithm);

struct ContagionOptions {
  Backend backend = Backend::cpu;
  ClearingParams params;
  ContagionAlgorithm algorithm = ContagionAlgorithm::picard;
};

struct ContagionRun {
  ClearingSystem system;
  NodeResults nodes;  // from the payments of options.algorithm, the waves of the fictitious default run
  PicardRun picard;
  FictitiousDefaultRun fictitious_default;  // its `sweeps` count the kernel's iterations, all rounds
  double tolerance = 0;        // of the iterations
  double max_difference = 0;   // max_i |p_picard − p_fictitious_default|
  std::size_t default_mismatches = 0;  // nodes defaulted under one algorithm and not the other
  bool agree = false;          // both converged, max_difference ≤ 1e-9 · max(1, max total liability),
                               // no mismatch
  double picard_s = 0, fictitious_default_s = 0;  // wall time of each algorithm
};

/// Builds the clearing system, runs both algorithms on options.backend, reports. Value is
/// conserved (every payment is some node's inflow): a violation is an internal error.
ContagionRun clear_network(const Network& network, const ContagionOptions& options = {});

/// The two algorithms on a backend (the kernel), for the engine and the benchmarks.
PicardRun picard_on(const ClearingSystem& system, const ClearingParams& params, Backend backend);
FictitiousDefaultRun fictitious_default_on(const ClearingSystem& system, const ClearingParams& params,
                                           Backend backend);

}  // namespace marginet
