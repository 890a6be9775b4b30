#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_memory.cuh"
#include "kernels/detail/primitives.cuh"
#include "kernels/portfolio_pnl.hpp"
#include "models/hd.hpp"

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {

struct CsrView {
  const std::int64_t* offsets;
  const std::int32_t* instrument;
  const double* quantity;
  const double* risk;
  std::size_t scenarios;
  double* pnl;
};

/// GPU decomposition: one thread per (row, scenario); consecutive threads read consecutive
/// scenarios of the same risk-array row (coalesced).
struct PnlOfCell {
  CsrView v;
  MARGINET_HD void operator()(std::size_t cell) const {
    const std::size_t row = cell / v.scenarios;
    const std::size_t s = cell - row * v.scenarios;
    double sum = 0.0;
    for (std::int64_t j = v.offsets[row]; j < v.offsets[row + 1]; ++j)
      sum += v.quantity[j] * v.risk[static_cast<std::size_t>(v.instrument[j]) * v.scenarios + s];
    v.pnl[cell] = sum;
  }
};

/// CPU decomposition: one task per row (rows of power-law sizes handed out dynamically). Each
/// pass adds N positions into the row at once: N streams of R in flight (a row's positions reference instruments anywhere in R, which is
/// far larger than the cache, so each R row comes from memory) and the row read and written
/// once per N positions. Each cell still adds q_j · R in CSR order, so the sums are those of
/// PnlOfCell bit for bit.
struct PnlOfRow {
  CsrView v;
  template <int N>
  MARGINET_HD void pass(double* out, std::int64_t j) const {
    double q[N];
    const double* r[N];
    for (int k = 0; k < N; ++k) {
      q[k] = v.quantity[j + k];
      r[k] = v.risk + static_cast<std::size_t>(v.instrument[j + k]) * v.scenarios;
    }
    for (std::size_t s = 0; s < v.scenarios; ++s) {
      double o = out[s];
      for (int k = 0; k < N; ++k) o += q[k] * r[k][s];
      out[s] = o;
    }
  }
  MARGINET_HD void operator()(std::size_t row) const {
    double* out = v.pnl + row * v.scenarios;
    for (std::size_t s = 0; s < v.scenarios; ++s) out[s] = 0.0;
    std::int64_t j = v.offsets[row];
    const std::int64_t end = v.offsets[row + 1];
    for (; end - j >= 8; j += 8) pass<8>(out, j);
    for (; end - j >= 2; j += 2) pass<2>(out, j);
    if (j < end) pass<1>(out, j);
  }
};

}  // namespace

void portfolio_pnl(const PortfolioPnlArgs& a) {
  if (a.rows == 0 || a.scenarios == 0) return;
  detail::run_translating_errors("portfolio_pnl", [&] {
    const buffers::Input<std::int64_t> offsets(a.row_offsets, a.rows + 1);
    const buffers::Input<std::int32_t> instrument(a.instrument, a.positions);
    const buffers::Input<double> quantity(a.quantity, a.positions);
    const buffers::Input<double> risk(a.risk_arrays, a.instruments * a.scenarios);
    buffers::Output<double> pnl(a.pnl, a.rows * a.scenarios);
    const CsrView v{offsets.ptr, instrument.ptr, quantity.ptr, risk.ptr, a.scenarios, pnl.ptr};
    if (detail::host_decompositions())
      primitives::for_each_uneven_row(a.rows, PnlOfRow{v});
    else
      primitives::for_each_index(a.rows * a.scenarios, PnlOfCell{v});
    pnl.to_host();
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
