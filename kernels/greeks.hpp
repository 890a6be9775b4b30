#pragma once
// Batch pricing and greeks (SPEC §4) over structure-of-arrays inputs, one thread per instrument,
// and portfolio greeks aggregated per account and per underlying. Both backends (kernels::cpu,
// kernels::gpu). All pointers are host memory; the per-element maths is models/pricing.hpp
// (instrument_risk), so the plain host loop over it is the reference.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/api.hpp"

namespace marginet::kernels {

/// Inputs, `count` elements each. kind/put_call/settlement hold the values of
/// marginet::InstrumentKind / OptionType / Settlement.
struct GreeksInputs {
  std::size_t count = 0;
  const std::uint8_t* kind = nullptr;
  const std::uint8_t* put_call = nullptr;
  const std::uint8_t* settlement = nullptr;
  const double* forward = nullptr;       // options: forward of the expiry; else mark or index
  const double* strike = nullptr;
  const double* expiry_years = nullptr;  // T
  const double* sigma = nullptr;
  const double* rate = nullptr;
};

/// Outputs, `count` elements each (columns of marginet::InstrumentRisk, per unit of underlying).
struct GreeksOutputs {
  double* price = nullptr;
  double* price_coin = nullptr;
  double* delta = nullptr;
  double* delta_coin = nullptr;
  double* gamma = nullptr;
  double* vega = nullptr;
  double* theta = nullptr;
  double* rho = nullptr;
  double* vanna = nullptr;
  double* volga = nullptr;
};

inline constexpr std::size_t kGreeksColumns = 10;  // price .. volga, in GreeksOutputs order
inline constexpr std::size_t kGreeksInputBytes = 3 + 5 * sizeof(double);
inline constexpr std::size_t kGreeksOutputBytes = kGreeksColumns * sizeof(double);

/// Portfolio greeks: positions as CSR rows (one row per account); each position names an
/// instrument and an effective quantity (quantity × contract_size: units of underlying).
/// out[(account · underlyings + u) · 10 + c] = Σ over the account's positions in instruments of
/// underlying u of quantity · column c of the instrument (price .. volga order), summed in
/// position order (so both backends add in the same order).
struct PortfolioGreeksArgs {
  std::size_t accounts = 0;
  const std::size_t* row_offsets = nullptr;   // accounts + 1
  const std::uint32_t* instrument = nullptr;  // row_offsets[accounts] positions
  const double* quantity = nullptr;
  std::size_t instruments = 0;
  const std::uint32_t* underlying = nullptr;  // per instrument, < underlyings
  std::size_t underlyings = 0;
  const double* instrument_greeks = nullptr;  // instruments × 10, row-major (price .. volga)
  double* out = nullptr;                      // accounts × underlyings × 10
};

MARGINET_KERNEL_API(
void price_greeks(const GreeksInputs& in, const GreeksOutputs& out);
void portfolio_greeks(const PortfolioGreeksArgs& args);

/// A batch kept in device memory (for the CPU backend: host memory), for repeated evaluation
/// without transfers: what the benchmarks time to measure the kernel itself.
class ResidentGreeksBatch {
 public:
  explicit ResidentGreeksBatch(const GreeksInputs& in);
  ~ResidentGreeksBatch();
  ResidentGreeksBatch(const ResidentGreeksBatch&) = delete;
  ResidentGreeksBatch& operator=(const ResidentGreeksBatch&) = delete;
  /// Evaluates every instrument into device-resident outputs and waits for completion.
  void run();
  /// Copies the outputs of the last run() to host memory.
  void download(const GreeksOutputs& out) const;
  std::size_t count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
)

}  // namespace marginet::kernels
