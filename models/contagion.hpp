#pragma once
// Contagion across a network of CCPs, members and other creditors (SPEC §11; docs/contagion.md).
//
// A network: nodes with external assets e_i, and nominal liabilities L[i,j] (i owes j), some of
// them covered by margin M[i,j] ≤ L[i,j] that i has posted to j. Clearing finds the payments p*:
// the greatest fixed point of
//   p_i = l_i                      when e_i + inflow_i ≥ l_i
//   p_i = α·e_i + β·inflow_i       otherwise (Rogers–Veraart; α = β = 1 is Eisenberg–Noe)
// over the residual liabilities L − M (the margin is paid in full first, whatever the debtor's
// state), where l_i = Σ_j (L[i,j] − M[i,j]) and inflow_i = Σ_j M[j,i] + Σ_j (L[j,i] − M[j,i])·p_j/l_j.
//
//   Network net = read_network_json("three_banks.json");
//   apply_shock(net, read_shock_json("shock.json"));
//   const ClearingSystem system = build_clearing_system(net);
//   const FictitiousDefaultRun fda = reference_fictitious_default(system, {});
//   const NodeResults r = node_results(system, fda.payment, fda.wave);
//
// Two reference algorithms (plain loops, one thread): Picard iteration from p = l (decreasing to
// the greatest fixed point) and the fictitious default algorithm (rounds of defaults = the
// waves). The kernel (kernels/contagion.hpp) runs the same iteration on a backend;
// host/contagion_engine.hpp runs both and checks that they agree.
//
// Amounts are plain doubles in the network's one currency (`currency`, default USD).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace marginet {

/// i owes j `amount`; `margin` (0 ≤ margin ≤ amount) of it is covered by margin i posted to j.
struct NetworkLiability {
  std::int32_t from = 0;
  std::int32_t to = 0;
  double amount = 0;
  double margin = 0;
};

struct Network {
  std::string currency = "USD";
  std::vector<std::string> ids;          // node ids, file order; node index = position
  std::vector<double> external_assets;   // finite, ≥ 0; excludes margin posted or held
  std::vector<NetworkLiability> liabilities;  // file order; no self-links, no repeated (from, to)

  std::size_t nodes() const { return ids.size(); }
  /// Appends a node; false (and nothing added) when the id is already taken.
  bool add_node(const std::string& id, double external_assets);
  std::optional<std::int32_t> find(std::string_view id) const;

 private:
  std::unordered_map<std::string, std::int32_t> index_;
};

/// Strict JSON readers: an unknown or repeated key, a wrong type, a duplicate node, a link to an
/// unknown node, a self-link, a repeated (from, to) pair, an amount that is negative, NaN or
/// infinite, a margin above its amount — each an input_error naming the file and the JSON path
/// (e.g. "net.json: field 'liabilities[3].amount': must be a finite number >= 0").
///   {"currency": "USD",                                      (optional, default "USD")
///    "nodes": [{"id": "A", "external_assets": 18.0}, ...],
///    "liabilities": [{"from": "A", "to": "B", "amount": 4.0, "margin": 1.0}, ...]}  (margin optional)
Network parse_network_json(const std::string& text, const std::string& source);
Network read_network_json(const std::string& path);
/// The network in the file format above (parse_network_json reads it back to the same network).
std::string network_json(const Network& network);

/// A shock to external assets: e_i ← scale · scale_nodes[i] · (replacement[i] or e_i).
///   {"scale": 0.8, "scale_nodes": {"A": 0.5}, "external_assets": {"B": 10.0}}  (each optional)
struct Shock {
  double scale = 1.0;
  std::vector<std::pair<std::string, double>> scale_nodes;   // file order
  std::vector<std::pair<std::string, double>> replacements;  // file order
  std::string source;  // file name, for errors about node ids
};
Shock parse_shock_json(const std::string& text, const std::string& source);
Shock read_shock_json(const std::string& path);
/// Applies `shock`; an id not in the network is an input_error naming the shock file and path.
void apply_shock(Network& network, const Shock& shock);

/// Recovery rates of Rogers–Veraart: α on external assets, β on what is received from other
/// nodes; both in (0, 1]. α = β = 1 is Eisenberg–Noe.
struct ClearingParams {
  double alpha = 1.0;
  double beta = 1.0;
  std::int64_t max_iterations = 100000;  // Picard iterations / Gauss–Seidel sweeps per round
  double tolerance = 0;  // stop when max |Δp| ≤ tolerance; 0 = 1e-12 · max(1, max_i total liability)
};
/// usage_error unless α and β are in (0, 1], max_iterations ≥ 0 and tolerance ≥ 0.
void check_clearing_params(const ClearingParams& params);

/// The network as clearing sees it: residual liabilities after margin, and the incoming links of
/// every creditor in CSR form (creditor i's links are [in_begin[i], in_begin[i+1]), debtors
/// ascending, so every sum runs in one order whatever the file order). Links whose residual is
/// zero (fully margined, or amount 0) are left out.
struct ClearingSystem {
  std::int32_t nodes = 0;
  std::vector<double> external;         // e_i
  std::vector<double> liability;        // l_i = Σ_j (L[i,j] − M[i,j]): cleared pro rata
  std::vector<double> total_liability;  // Σ_j L[i,j]
  std::vector<double> margin_posted;    // Σ_j M[i,j]
  std::vector<double> margin_received;  // Σ_j M[j,i]: paid whatever the debtors' state
  std::vector<std::int64_t> in_begin;   // nodes + 1
  std::vector<std::int32_t> in_debtor;  // residual links
  std::vector<double> in_amount;        // L[j,i] − M[j,i] > 0

  std::size_t links() const { return in_debtor.size(); }
  /// params.tolerance, or its default 1e-12 · max(1, max_i total_liability).
  double tolerance(const ClearingParams& params) const;
};
ClearingSystem build_clearing_system(const Network& network);

/// inflow_i = margin_received_i + Σ_j in_amount_ji · p_j / l_j at the payments `payment`.
std::vector<double> clearing_inflow(const ClearingSystem& system, const std::vector<double>& payment);

/// Picard iteration p ← Φ(p) from p = l, Jacobi style (every node from the previous iterate),
/// until max |Δp| ≤ tolerance or max_iterations.
struct PicardRun {
  std::vector<double> payment;  // of the residual liabilities (margin not included)
  std::int64_t iterations = 0;
  double last_change = 0;       // max |Δp| of the last iteration
  bool converged = false;
};
PicardRun reference_picard(const ClearingSystem& system, const ClearingParams& params);

/// The fictitious default algorithm (Eisenberg–Noe; Rogers–Veraart's greatest clearing vector
/// algorithm): start with everyone paying in full; round k declares defaulted every node that
/// cannot pay in full given the current payments (wave k), then solves the linear system of the
/// defaulted nodes' payments with the others paying in full (Gauss–Seidel sweeps from the
/// current payments, which lie above the solution, so they decrease to the greatest one);
/// repeat until a round declares nobody.
struct FictitiousDefaultRun {
  std::vector<double> payment;       // of the residual liabilities
  std::vector<std::int32_t> wave;    // 0 = solvent, k ≥ 1 = defaulted in round k
  std::int32_t waves = 0;            // rounds that declared someone
  std::int64_t sweeps = 0;           // Gauss–Seidel sweeps, all rounds
  bool converged = true;             // every round's solve reached the tolerance
};
FictitiousDefaultRun reference_fictitious_default(const ClearingSystem& system, const ClearingParams& params);

/// What is reported per node, from the residual payments p and the waves.
///   payment         = margin_posted + p: paid on all its liabilities
///   shortfall       = total_liability − payment (= l − p)
///   inflow          = what it receives (margin received included)
///   equity          = e + margin_posted + inflow − total_liability: its net worth after clearing,
///                     negative for a defaulted node (−shortfall under Eisenberg–Noe)
///   defaulted       = p < l (it does not pay everything it owes)
struct NodeResults {
  std::vector<double> payment, total_liability, shortfall, equity, inflow, margin_received, margin_posted;
  std::vector<std::uint8_t> defaulted;
  std::vector<std::int32_t> wave;
  std::size_t defaulted_count = 0;
  std::int32_t waves = 0;
  double total_shortfall = 0;
};
NodeResults node_results(const ClearingSystem& system, const std::vector<double>& residual_payment,
                         const std::vector<std::int32_t>& wave);

/// A seeded random network for tests and benchmarks (the same config gives the same network on
/// every platform). Out-degrees are power-law-ish: the debtor of each link is drawn as
/// floor(debtors · u^degree_skew), so low ids owe to many (1 = uniform). A share of the nodes
/// are outside creditors (owing nothing, no assets) and take `sink_link_share` of the links.
/// Amounts are lognormal. External assets: e_i = max(0, l_i − receivables_i + b_i · l_i) with
/// b_i ~ capital_mean · Exp(1), except a `weak_share` of the nodes with b_i ~ −U(0, weak_loss):
/// those cannot pay in full even when everyone else does (wave 1), and their shortfalls spread.
struct NetworkGeneratorConfig {
  std::int32_t nodes = 1000;
  std::size_t links = 10000;
  double degree_skew = 2.0;
  double sink_share = 0.05;
  double sink_link_share = 0.2;
  double capital_mean = 0.05;
  double weak_share = 0.01;
  double weak_loss = 0.3;
  double margined_share = 0.0;  // share of links carrying margin, U(0, 1) of their amount
  std::uint64_t seed = 1;
};
Network generate_network(const NetworkGeneratorConfig& config);

}  // namespace marginet
