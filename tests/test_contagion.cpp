// Contagion across a network (SPEC §11, docs/contagion.md): the worked example of three banks,
// default waves and margin on hand-made networks, properties of the clearing vector on seeded
// random networks (Picard = fictitious default = an independent Eisenberg–Noe loop; bounds;
// conservation; Rogers–Veraart below Eisenberg–Noe; CPU = GPU), the strict readers, and the
// `marginet contagion` binary end to end.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host/contagion_engine.hpp"
#include "models/contagion.hpp"
#include "models/errors.hpp"
#include "tests/backends.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

using testing::near_relative;

const std::string kExamples = std::string(MARGINET_SOURCE_DIR) + "/examples/contagion/";

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = marginet::testing::scratch_dir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

/// The worked example (examples/contagion/three_banks.json): bank 1 owes 4 to bank 2 and 17 to
/// the outside creditors, bank 2 owes 3 to bank 3 and 18 outside, bank 3 owes 2 to bank 1 and 8
/// outside; external assets 18, 18, 9.
Network three_banks() { return read_network_json(kExamples + "three_banks.json"); }

void expect_all_near(const std::vector<double>& actual, const std::vector<double>& expected, double abs) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], abs) << "node " << i;
}

// ---------------------------------------------------------------------------------------------
// Hand cases, on every backend

class ContagionEngine : public testing::BackendTest {};

TEST_P(ContagionEngine, ThreeBanksWorkedExample) {
  // Everyone paying in full, bank 1 has 18 + 2 = 20 < 21: it defaults (wave 1) and pays 20.
  // Bank 2 then has 18 + 4·20/21 = 21.81 ≥ 21 and bank 3 has 9 + 3 = 12 ≥ 10: both pay in full.
  // p* = (20, 21, 10) — the issue's figures are right.
  const Network net = three_banks();
  for (const ContagionAlgorithm algorithm : {ContagionAlgorithm::picard, ContagionAlgorithm::fictitious_default}) {
    SCOPED_TRACE(contagion_algorithm_name(algorithm));
    ContagionOptions options;
    options.backend = backend();
    options.algorithm = algorithm;
    const ContagionRun run = clear_network(net, options);
    const NodeResults& r = run.nodes;
    expect_all_near(r.payment, {20, 21, 10, 0}, 1e-9);
    expect_all_near(r.total_liability, {21, 21, 10, 0}, 0);
    expect_all_near(r.shortfall, {1, 0, 0, 0}, 1e-9);
    expect_all_near(r.equity, {-1, 17.0 / 21.0, 2, 26 + 17.0 * 20.0 / 21.0}, 1e-9);
    expect_all_near(r.inflow, {2, 80.0 / 21.0, 3, 26 + 17.0 * 20.0 / 21.0}, 1e-9);
    EXPECT_EQ(r.defaulted, (std::vector<std::uint8_t>{1, 0, 0, 0}));
    EXPECT_EQ(r.wave, (std::vector<std::int32_t>{1, 0, 0, 0}));
    EXPECT_EQ(r.defaulted_count, 1u);
    EXPECT_EQ(r.waves, 1);
    EXPECT_NEAR(r.total_shortfall, 1.0, 1e-9);
    EXPECT_TRUE(run.agree);
    EXPECT_EQ(run.picard.iterations, 2);  // bank 1 falls to 20; the next pass changes nothing
    EXPECT_EQ(run.fictitious_default.waves, 1);
  }
}

TEST_P(ContagionEngine, DefaultOfOneCausesTheNextInTheFollowingWave) {
  // A (e = 4) owes B 10; B (e = 5) owes C 14; C (e = 0.5) owes the outside X 10.
  // Wave 1: A has 4 < 10. Wave 2: B then has 5 + 4 = 9 < 14 (with A paying in full it had 15).
  // Wave 3: C then has 0.5 + 9 = 9.5 < 10 (with B paying in full it had 14.5).
  const Network net = parse_network_json(R"({"nodes": [
      {"id": "A", "external_assets": 4}, {"id": "B", "external_assets": 5},
      {"id": "C", "external_assets": 0.5}, {"id": "X", "external_assets": 0}],
    "liabilities": [{"from": "A", "to": "B", "amount": 10}, {"from": "B", "to": "C", "amount": 14},
                    {"from": "C", "to": "X", "amount": 10}]})",
                                         "chain.json");
  ContagionOptions options;
  options.backend = backend();
  const ContagionRun run = clear_network(net, options);
  expect_all_near(run.nodes.payment, {4, 9, 9.5, 0}, 1e-12);
  EXPECT_EQ(run.nodes.wave, (std::vector<std::int32_t>{1, 2, 3, 0}));
  expect_all_near(run.nodes.equity, {-6, -5, -0.5, 9.5}, 1e-12);
  EXPECT_EQ(run.fictitious_default.waves, 3);
  EXPECT_EQ(run.picard.iterations, 4);  // one node falls per pass, then a pass without change
  EXPECT_TRUE(run.agree);
}

TEST_P(ContagionEngine, RogersVeraartCostsSpreadADefault) {
  // The worked example with α = β = 1/2: bank 1 pays 18/2 + 2/2 = 10; bank 2 then has
  // 18 + 4·10/21 < 21 and defaults in wave 2, paying 9 + 2·10/21; bank 3 has
  // 9 + 3·(9 + 20/21)/21 ≥ 10 and pays in full.
  ContagionOptions options;
  options.backend = backend();
  options.params.alpha = 0.5;
  options.params.beta = 0.5;
  const ContagionRun run = clear_network(three_banks(), options);
  const double p2 = 9 + 20.0 / 21.0;
  expect_all_near(run.nodes.payment, {10, p2, 10, 0}, 1e-12);
  EXPECT_EQ(run.nodes.wave, (std::vector<std::int32_t>{1, 2, 0, 0}));
  EXPECT_NEAR(run.nodes.equity[1], 18 + 40.0 / 21.0 - 21, 1e-12);  // net worth, before default costs
  EXPECT_TRUE(run.agree);
}

TEST_P(ContagionEngine, MarginIsPaidFirstAndTheResidualProRata) {
  // A (e = 4, margin it posted excluded) owes B 10 of which 6 is margined, and X 10. B owes Y 7.
  // Residual: A owes B 4 and X 10 (l = 14) and pays its 4 pro rata: B gets 6 + 4·4/14, X 10·4/14.
  // B receives 6 + 8/7 = 7.14 ≥ 7 and pays in full. A's total payment is 6 + 4 = 10 of 20.
  const std::string nodes = R"("nodes": [{"id": "A", "external_assets": 4}, {"id": "B", "external_assets": 0},
                                          {"id": "X", "external_assets": 0}, {"id": "Y", "external_assets": 0}])";
  const Network margined = parse_network_json(
      "{" + nodes + R"(, "liabilities": [{"from": "A", "to": "B", "amount": 10, "margin": 6},
                         {"from": "A", "to": "X", "amount": 10}, {"from": "B", "to": "Y", "amount": 7}]})",
      "margined.json");
  ContagionOptions options;
  options.backend = backend();
  const ContagionRun run = clear_network(margined, options);
  const NodeResults& r = run.nodes;
  expect_all_near(r.payment, {10, 7, 0, 0}, 1e-12);
  expect_all_near(r.total_liability, {20, 7, 0, 0}, 0);
  expect_all_near(r.shortfall, {10, 0, 0, 0}, 1e-12);
  expect_all_near(r.margin_received, {0, 6, 0, 0}, 0);
  expect_all_near(r.margin_posted, {6, 0, 0, 0}, 0);
  expect_all_near(r.inflow, {0, 6 + 8.0 / 7.0, 20.0 / 7.0, 7}, 1e-12);
  expect_all_near(r.equity, {-10, 8.0 / 7.0 - 1, 20.0 / 7.0, 7}, 1e-12);  // A: 4 + 6 − 20
  EXPECT_EQ(r.wave, (std::vector<std::int32_t>{1, 0, 0, 0}));

  // Without the margin (A keeps the 6 among its external assets: e = 10) A's 10 is shared 50/50:
  // B gets 5 < 7 and defaults in wave 2.
  const std::string bare_nodes = R"("nodes": [{"id": "A", "external_assets": 10}, {"id": "B", "external_assets": 0},
                                               {"id": "X", "external_assets": 0}, {"id": "Y", "external_assets": 0}])";
  const Network bare = parse_network_json(
      "{" + bare_nodes + R"(, "liabilities": [{"from": "A", "to": "B", "amount": 10},
                         {"from": "A", "to": "X", "amount": 10}, {"from": "B", "to": "Y", "amount": 7}]})",
      "bare.json");
  const ContagionRun unmargined = clear_network(bare, options);
  expect_all_near(unmargined.nodes.payment, {10, 5, 0, 0}, 1e-12);
  EXPECT_EQ(unmargined.nodes.wave, (std::vector<std::int32_t>{1, 2, 0, 0}));
}

TEST_P(ContagionEngine, FullyMarginedLinkNeverDefaults) {
  const Network net = parse_network_json(R"({"nodes": [{"id": "A", "external_assets": 0}, {"id": "B", "external_assets": 0}],
    "liabilities": [{"from": "A", "to": "B", "amount": 5, "margin": 5}]})",
                                         "full.json");
  ContagionOptions options;
  options.backend = backend();
  const ContagionRun run = clear_network(net, options);
  expect_all_near(run.nodes.payment, {5, 0}, 0);
  expect_all_near(run.nodes.equity, {0, 5}, 0);
  EXPECT_EQ(run.nodes.defaulted_count, 0u);
  EXPECT_EQ(run.system.links(), 0u);  // nothing left to clear pro rata
}

MARGINET_INSTANTIATE_BACKENDS(ContagionEngine);

// ---------------------------------------------------------------------------------------------
// Properties on seeded random networks

NetworkGeneratorConfig random_config(std::uint64_t seed) {
  NetworkGeneratorConfig c;
  c.nodes = 400;
  c.links = 3000;
  c.capital_mean = 0.04;
  c.weak_share = 0.03;
  c.margined_share = 0.2;
  c.seed = seed;
  return c;
}

/// Eisenberg–Noe written independently of the CSR path: p = min(l, max(0, e + Πᵀp)) from p = l,
/// over the edge list of the network (residual liabilities after margin, margin paid first).
std::vector<double> eisenberg_noe_from_edges(const Network& net) {
  const std::size_t n = net.nodes();
  std::vector<double> owed(n, 0.0), margin_in(n, 0.0), scale_of(n, 0.0);
  double scale = 1.0;
  for (const NetworkLiability& l : net.liabilities) {
    owed[static_cast<std::size_t>(l.from)] += l.amount - l.margin;
    margin_in[static_cast<std::size_t>(l.to)] += l.margin;
    scale = std::max(scale, l.amount);
  }
  std::vector<double> p = owed, next(n);
  for (int iteration = 0; iteration < 100000; ++iteration) {
    std::vector<double> inflow = margin_in;
    for (const NetworkLiability& l : net.liabilities) {
      const auto from = static_cast<std::size_t>(l.from);
      if (owed[from] > 0) inflow[static_cast<std::size_t>(l.to)] += (l.amount - l.margin) / owed[from] * p[from];
    }
    double change = 0;
    for (std::size_t i = 0; i < n; ++i) {
      next[i] = std::min(owed[i], std::max(0.0, net.external_assets[i] + inflow[i]));
      change = std::max(change, std::fabs(next[i] - p[i]));
    }
    p.swap(next);
    if (change <= 1e-14 * scale) break;
  }
  return p;
}

class ContagionProperties : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(ContagionProperties, ClearingVectorOfEisenbergNoe) {
  const Network net = generate_network(random_config(GetParam()));
  const ClearingSystem s = build_clearing_system(net);
  const ClearingParams en;  // α = β = 1
  const PicardRun picard = reference_picard(s, en);
  const FictitiousDefaultRun fda = reference_fictitious_default(s, en);
  const PicardRun kernel = picard_on(s, en, Backend::cpu);
  const FictitiousDefaultRun kernel_fda = fictitious_default_on(s, en, Backend::cpu);
  ASSERT_TRUE(picard.converged);
  ASSERT_TRUE(fda.converged);
  ASSERT_TRUE(kernel.converged);
  ASSERT_TRUE(kernel_fda.converged);
  const std::vector<double> independent = eisenberg_noe_from_edges(net);

  const NodeResults r = node_results(s, picard.payment, fda.wave);
  ASSERT_GT(r.defaulted_count, 0u) << "the generated network has defaults";
  EXPECT_GE(fda.waves, 2) << "and they cascade";
  const double tol = s.tolerance(en);
  double paid = 0, received = 0, equity = 0, external = 0, margin = 0;
  for (std::size_t i = 0; i < net.nodes(); ++i) {
    SCOPED_TRACE("node " + net.ids[i]);
    const double scale = std::max(1.0, s.total_liability[i]);
    EXPECT_TRUE(near_relative(picard.payment[i], fda.payment[i], 0, 1e-9 * scale));
    EXPECT_TRUE(near_relative(picard.payment[i], independent[i], 0, 1e-9 * scale));
    EXPECT_TRUE(near_relative(picard.payment[i], kernel.payment[i], 0, 1e-12 * scale));
    EXPECT_TRUE(near_relative(fda.payment[i], kernel_fda.payment[i], 0, 1e-9 * scale));
    EXPECT_EQ(picard.payment[i] < s.liability[i], fda.wave[i] > 0);
    EXPECT_EQ(fda.wave[i], kernel_fda.wave[i]);
    EXPECT_GE(r.payment[i], 0.0);
    EXPECT_LE(r.payment[i], r.total_liability[i]);
    EXPECT_LE(r.payment[i], net.external_assets[i] + r.margin_posted[i] + r.inflow[i] + tol)
        << "pays no more than it has";
    // Wave 1 is exactly who cannot pay in full when everyone else does.
    double full_inflow = s.margin_received[i];  // summed in the order of every clearing path
    for (auto k = s.in_begin[i]; k < s.in_begin[i + 1]; ++k) full_inflow += s.in_amount[static_cast<std::size_t>(k)];
    EXPECT_EQ(fda.wave[i] == 1, s.external[i] + full_inflow < s.liability[i]);
    paid += r.payment[i];
    received += r.inflow[i];
    equity += r.equity[i];
    external += net.external_assets[i];
    margin += r.margin_posted[i];
  }
  // Every payment lands at a node (outside creditors are nodes), so value is conserved.
  EXPECT_TRUE(near_relative(paid, received, 1e-12));
  EXPECT_TRUE(near_relative(equity, external + margin - r.total_shortfall, 1e-9));
}

TEST_P(ContagionProperties, RogersVeraartWithFullRecoveryIsEisenbergNoeAndCostsOnlyLowerPayments) {
  const Network net = generate_network(random_config(GetParam()));
  const ClearingSystem s = build_clearing_system(net);
  const PicardRun en = reference_picard(s, ClearingParams{});
  const std::vector<double> independent = eisenberg_noe_from_edges(net);
  ClearingParams full;
  full.alpha = 1.0;
  full.beta = 1.0;
  ClearingParams costly;
  costly.alpha = 0.6;
  costly.beta = 0.9;
  const PicardRun rv_full = reference_picard(s, full);
  const PicardRun rv = reference_picard(s, costly);
  const FictitiousDefaultRun rv_fda = reference_fictitious_default(s, costly);
  const FictitiousDefaultRun rv_kernel_fda = fictitious_default_on(s, costly, Backend::cpu);
  ASSERT_TRUE(rv.converged);
  ASSERT_TRUE(rv_fda.converged);
  std::size_t en_defaults = 0, rv_defaults = 0;
  for (std::size_t i = 0; i < net.nodes(); ++i) {
    SCOPED_TRACE("node " + net.ids[i]);
    const double scale = std::max(1.0, s.total_liability[i]);
    EXPECT_TRUE(near_relative(rv_full.payment[i], independent[i], 0, 1e-9 * scale));
    EXPECT_LE(rv.payment[i], en.payment[i] + 1e-9 * scale);
    EXPECT_TRUE(near_relative(rv.payment[i], rv_fda.payment[i], 0, 1e-9 * scale));
    EXPECT_TRUE(near_relative(rv.payment[i], rv_kernel_fda.payment[i], 0, 1e-9 * scale));
    EXPECT_EQ(rv.payment[i] < s.liability[i], rv_fda.wave[i] > 0);
    EXPECT_EQ(rv_fda.wave[i], rv_kernel_fda.wave[i]);
    // A node defaulting under Eisenberg–Noe defaults under costs too.
    EXPECT_TRUE(!(en.payment[i] < s.liability[i]) || rv.payment[i] < s.liability[i]);
    en_defaults += en.payment[i] < s.liability[i];
    rv_defaults += rv.payment[i] < s.liability[i];
  }
  EXPECT_GE(rv_defaults, en_defaults);
}

TEST_P(ContagionProperties, ResultDoesNotDependOnTheOrderOfLinks) {
  Network net = generate_network(random_config(GetParam()));
  const PicardRun forward = reference_picard(build_clearing_system(net), {});
  std::reverse(net.liabilities.begin(), net.liabilities.end());
  const PicardRun reversed = reference_picard(build_clearing_system(net), {});
  EXPECT_EQ(forward.payment, reversed.payment);  // bit for bit: sums run in one order
}

INSTANTIATE_TEST_SUITE_P(Seeds, ContagionProperties, ::testing::Values(1u, 2u, 3u, 2024u));

TEST(ContagionKernel, ParallelPathMatchesTheReference) {
  // 6,000 nodes + 80,000 links: above the size from which the CPU backend runs its passes on
  // every thread (smaller networks run on one).
  NetworkGeneratorConfig c = random_config(11);
  c.nodes = 6000;
  c.links = 80000;
  const ClearingSystem s = build_clearing_system(generate_network(c));
  for (const double beta : {1.0, 0.8}) {
    ClearingParams params;
    params.beta = beta;
    const PicardRun reference = reference_picard(s, params);
    const FictitiousDefaultRun reference_fda = reference_fictitious_default(s, params);
    const PicardRun kernel = picard_on(s, params, Backend::cpu);
    const FictitiousDefaultRun kernel_fda = fictitious_default_on(s, params, Backend::cpu);
    ASSERT_TRUE(kernel.converged);
    ASSERT_TRUE(kernel_fda.converged);
    EXPECT_EQ(kernel.iterations, reference.iterations);
    EXPECT_EQ(kernel_fda.wave, reference_fda.wave);
    EXPECT_GE(reference_fda.waves, 2);
    for (std::size_t i = 0; i < kernel.payment.size(); ++i) {
      const double scale = std::max(1.0, s.total_liability[i]);
      EXPECT_TRUE(near_relative(kernel.payment[i], reference.payment[i], 0, 1e-12 * scale)) << i;
      EXPECT_TRUE(near_relative(kernel_fda.payment[i], reference_fda.payment[i], 0, 1e-9 * scale)) << i;
    }
  }
}

class ContagionCrossBackend : public testing::CrossBackendTest {};

TEST_F(ContagionCrossBackend, CpuAndGpuAgree) {
  for (const double alpha : {1.0, 0.7}) {
    const ClearingSystem s = build_clearing_system(generate_network(random_config(7)));
    ClearingParams params;
    params.alpha = alpha;
    const PicardRun cpu = picard_on(s, params, Backend::cpu);
    const PicardRun gpu = picard_on(s, params, Backend::cuda);
    const FictitiousDefaultRun cpu_fda = fictitious_default_on(s, params, Backend::cpu);
    const FictitiousDefaultRun gpu_fda = fictitious_default_on(s, params, Backend::cuda);
    EXPECT_EQ(cpu.iterations, gpu.iterations);
    EXPECT_EQ(cpu_fda.wave, gpu_fda.wave);
    for (std::size_t i = 0; i < cpu.payment.size(); ++i) {
      // A payment's natural scale is the bank's total liability; the clearing vector is a fixed
      // point reached by different sums on each backend: 1e-12 of it.
      const double scale = 1e3 * std::max(1.0, s.total_liability[i]);
      EXPECT_TRUE(testing::within_backend_tolerance(cpu.payment[i], gpu.payment[i], scale)) << i;
      EXPECT_TRUE(testing::within_backend_tolerance(cpu_fda.payment[i], gpu_fda.payment[i], scale)) << i;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The readers

input_error network_error(const std::string& text) {
  try {
    parse_network_json(text, "net.json");
  } catch (const input_error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an input_error for:\n" << text;
  return input_error("none");
}

std::string with_links(const std::string& links) {
  return R"({"nodes": [{"id": "A", "external_assets": 1}, {"id": "B", "external_assets": 2}], "liabilities": [)" +
         links + "]}";
}

void expect_error(const input_error& e, const std::string& field, const std::string& words) {
  EXPECT_EQ(e.file(), "net.json");
  EXPECT_EQ(e.field(), field) << e.what();
  EXPECT_NE(std::string(e.what()).find("net.json"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
}

TEST(ContagionReader, ReadsTheExample) {
  const Network net = three_banks();
  EXPECT_EQ(net.currency, "USD");
  EXPECT_EQ(net.ids, (std::vector<std::string>{"BANK1", "BANK2", "BANK3", "OUTSIDE"}));
  EXPECT_EQ(net.external_assets, (std::vector<double>{18, 18, 9, 0}));
  ASSERT_EQ(net.liabilities.size(), 6u);
  EXPECT_EQ(net.liabilities[2].from, 1);
  EXPECT_EQ(net.liabilities[2].to, 2);
  EXPECT_EQ(net.liabilities[2].amount, 3.0);
  EXPECT_EQ(net.liabilities[2].margin, 0.0);
  EXPECT_EQ(parse_network_json(R"({"currency": "EUR", "nodes": [], "liabilities": []})", "x.json").currency, "EUR");
}

TEST(ContagionReader, RejectsUnknownKeys) {
  expect_error(network_error(R"({"nodes": [], "liabilities": [], "shock": 1})"), "shock", "unknown key");
  expect_error(network_error(R"({"nodes": [{"id": "A", "external_assets": 1, "equity": 2}], "liabilities": []})"),
               "nodes[0].equity", "unknown key");
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": 1, "amout": 2})")),
               "liabilities[0].amout", "unknown key");
}

TEST(ContagionReader, RejectsUnknownNodesAndSelfLinks) {
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": 1}, {"from": "A", "to": "C", "amount": 1})")),
               "liabilities[1].to", "unknown node 'C'");
  expect_error(network_error(with_links(R"({"from": "Z", "to": "B", "amount": 1})")), "liabilities[0].from",
               "unknown node 'Z'");
  expect_error(network_error(with_links(R"({"from": "A", "to": "A", "amount": 1})")), "liabilities[0].to",
               "cannot owe itself");
}

TEST(ContagionReader, RejectsBadAmounts) {
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": 1}, {"from": "B", "to": "A", "amount": -4})")),
               "liabilities[1].amount", "must be a finite number >= 0");
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": "NaN"})")), "liabilities[0].amount",
               "must be a finite number >= 0");
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": true})")), "liabilities[0].amount",
               "must be a finite number >= 0");
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": 2, "margin": 3})")),
               "liabilities[0].margin", "must not exceed the amount");
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": 2, "margin": -1})")),
               "liabilities[0].margin", "must be a finite number >= 0");
  expect_error(network_error(R"({"nodes": [{"id": "A", "external_assets": -1}], "liabilities": []})"),
               "nodes[0].external_assets", "must be a finite number >= 0");
  // JSON cannot spell infinity: a literal beyond the double range is refused by the parser.
  const input_error overflow = network_error(with_links(R"({"from": "A", "to": "B", "amount": 1e999})"));
  EXPECT_EQ(overflow.file(), "net.json");
  EXPECT_NE(std::string(overflow.what()).find("1e999"), std::string::npos) << overflow.what();
}

TEST(ContagionReader, RejectsDuplicatesAndMissingFields) {
  expect_error(network_error(R"({"nodes": [{"id": "A", "external_assets": 1}, {"id": "A", "external_assets": 2}],
                                 "liabilities": []})"),
               "nodes[1].id", "duplicate node id 'A' (first at nodes[0])");
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": 1}, {"from": "A", "to": "B", "amount": 2})")),
               "liabilities[1]", "first at liabilities[0]");
  expect_error(network_error(R"({"nodes": [{"id": "A"}], "liabilities": []})"), "nodes[0].external_assets", "missing");
  expect_error(network_error(R"({"nodes": []})"), "liabilities", "missing");
  expect_error(network_error(R"({"nodes": {}, "liabilities": []})"), "nodes", "must be a JSON array");
  expect_error(network_error(with_links(R"({"from": "A", "to": "B", "amount": 1, "amount": 2})")), "amount",
               "key appears twice");
  expect_error(network_error(R"({"nodes": [{"id": "", "external_assets": 1}], "liabilities": []})"), "nodes[0].id",
               "empty");
  const input_error syntax = network_error("{\"nodes\": [");
  EXPECT_EQ(syntax.file(), "net.json");
  EXPECT_NE(std::string(syntax.what()).find("not valid JSON"), std::string::npos);
}

TEST(ContagionShock, ScalesAndReplaces) {
  Network net = three_banks();
  apply_shock(net, parse_shock_json(R"({"scale": 0.5, "scale_nodes": {"BANK1": 0.5}, "external_assets": {"BANK3": 4}})",
                                    "shock.json"));
  EXPECT_EQ(net.external_assets, (std::vector<double>{4.5, 9, 2, 0}));
  Network example = three_banks();
  apply_shock(example, read_shock_json(kExamples + "shock.json"));  // scale 0.95, BANK3 × 0.9 too
  EXPECT_EQ(example.external_assets, (std::vector<double>{18 * 0.95, 18 * 0.95, 9 * 0.9 * 0.95, 0}));
}

TEST(ContagionShock, RejectsBadShocks) {
  auto shock_error = [](const std::string& text, bool apply) {
    try {
      Network net = three_banks();
      const Shock shock = parse_shock_json(text, "shock.json");
      if (apply) apply_shock(net, shock);
    } catch (const input_error& e) {
      return e;
    }
    ADD_FAILURE() << "expected an input_error for " << text;
    return input_error("none");
  };
  const input_error unknown_key = shock_error(R"({"scal": 0.5})", false);
  EXPECT_EQ(unknown_key.field(), "scal");
  EXPECT_EQ(shock_error(R"({"scale": -1})", false).field(), "scale");
  EXPECT_EQ(shock_error(R"({"scale_nodes": {"BANK1": "half"}})", false).field(), "scale_nodes.BANK1");
  const input_error unknown_node = shock_error(R"({"external_assets": {"BANK9": 1}})", true);
  EXPECT_EQ(unknown_node.file(), "shock.json");
  EXPECT_EQ(unknown_node.field(), "external_assets.BANK9");
  EXPECT_NE(std::string(unknown_node.what()).find("unknown node 'BANK9'"), std::string::npos);
}

TEST(ContagionParams, RecoveryRatesMustBeInZeroOne) {
  for (const double bad : {0.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    ClearingParams alpha;
    alpha.alpha = bad;
    EXPECT_THROW(check_clearing_params(alpha), usage_error) << bad;
    ClearingParams beta;
    beta.beta = bad;
    EXPECT_THROW(check_clearing_params(beta), usage_error) << bad;
  }
  ClearingParams edge;
  edge.alpha = 1e-9;
  edge.beta = 1.0;
  EXPECT_NO_THROW(check_clearing_params(edge));
  EXPECT_THROW(parse_contagion_algorithm("newton"), usage_error);
}

// ---------------------------------------------------------------------------------------------
// The binary

using testing::run_marginet;

TEST(ContagionCli, CsvOfTheWorkedExample) {
  const auto r = run_marginet("contagion --device cpu --quiet --network " + kExamples + "three_banks.json",
                              /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output,
            "node,payment_USD,total_liability_USD,shortfall_USD,equity_USD,defaulted,wave\n"
            "BANK1,20,21,1,-1,true,1\n"
            "BANK2,21,21,0,0.8095238095238102,false,0\n"
            "BANK3,10,10,0,2,false,0\n"
            "OUTSIDE,0,0,0,42.19047619047619,false,0\n");
  const auto fda = run_marginet("contagion --device cpu --quiet --algorithm fictitious-default --network " + kExamples +
                                    "three_banks.json",
                                false);
  EXPECT_EQ(fda.output, r.output);
}

TEST(ContagionCli, SummaryOnStderrJsonWithUnitsAndShock) {
  const auto logged = run_marginet("contagion --device cpu --network " + kExamples + "three_banks.json");
  ASSERT_EQ(logged.status, 0) << logged.output;
  EXPECT_NE(logged.output.find("1 defaulted, total shortfall 1 USD; algorithms agree: yes"), std::string::npos)
      << logged.output;

  // The example shock (all external assets × 0.95) turns the worked example into two waves:
  // bank 1 has 17.1 + 2 < 21 and pays 19.1; bank 2, solvent while bank 1 paid in full
  // (17.1 + 4 ≥ 21), then has 17.1 + 4·19.1/21 < 21.
  const auto r = run_marginet("contagion --device cpu --quiet --format json --network " + kExamples +
                                  "three_banks.json --shock " + kExamples + "shock.json",
                              false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["units"], "USD");
  EXPECT_EQ(j["algorithm"], "picard");
  EXPECT_EQ(j["alpha"], 1.0);
  EXPECT_EQ(j["summary"]["algorithms_agree"], true);
  EXPECT_EQ(j["summary"]["waves"], 2);
  ASSERT_EQ(j["nodes"].size(), 4u);
  const auto& bank1 = j["nodes"][0];
  const auto& bank2 = j["nodes"][1];
  EXPECT_EQ(bank1["node"], "BANK1");
  EXPECT_EQ(bank1["wave"], 1);
  EXPECT_NEAR(bank1["payment"].get<double>(), 19.1, 1e-9);
  EXPECT_EQ(bank2["wave"], 2);
  EXPECT_NEAR(bank2["payment"].get<double>(), 17.1 + 4 * 19.1 / 21, 1e-9);
  EXPECT_EQ(j["nodes"][2]["defaulted"], false);
  EXPECT_EQ(j["nodes"][3]["margin_received"], 0.0);
}

TEST(ContagionCli, BadInputExitsTwoNamingFileAndField) {
  const std::string bad = temp_file("marginet_contagion_bad.json", with_links(R"({"from": "A", "to": "B", "amount": -1})"));
  const auto r = run_marginet("contagion --device cpu --quiet --network " + bad);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(bad), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("liabilities[0].amount"), std::string::npos) << r.output;

  const auto missing = run_marginet("contagion --device cpu --quiet --network /nonexistent/net.json");
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/net.json"), std::string::npos) << missing.output;

  const auto alpha = run_marginet("contagion --device cpu --quiet --alpha 1.5 --network " + kExamples + "three_banks.json");
  EXPECT_EQ(alpha.status, 2) << alpha.output;
  EXPECT_NE(alpha.output.find("alpha"), std::string::npos) << alpha.output;
}

}  // namespace
}  // namespace marginet
