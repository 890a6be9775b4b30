#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_memory.cuh"
#include "kernels/detail/primitives.cuh"
#include "kernels/cpu_simd.hpp"
#include "kernels/greeks.hpp"
#include "kernels/simd/greeks_simd.hpp"
#include "models/pricing.hpp"

#include <thrust/fill.h>

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {

/// Raw device pointers of one batch.
struct GreeksView {
  const std::uint8_t* kind;
  const std::uint8_t* put_call;
  const std::uint8_t* settlement;
  const double* forward;
  const double* strike;
  const double* expiry_years;
  const double* sigma;
  const double* rate;
  double* price;
  double* price_coin;
  double* delta;
  double* delta_coin;
  double* gamma;
  double* vega;
  double* theta;
  double* rho;
  double* vanna;
  double* volga;

  MARGINET_HD void operator()(std::size_t i) const {
    const InstrumentRisk r = instrument_risk(
        static_cast<InstrumentKind>(kind[i]), static_cast<OptionType>(put_call[i]),
        static_cast<Settlement>(settlement[i]), forward[i], strike[i], expiry_years[i], sigma[i],
        rate[i]);
    price[i] = r.price;
    price_coin[i] = r.price_coin;
    delta[i] = r.delta;
    delta_coin[i] = r.delta_coin;
    gamma[i] = r.gamma;
    vega[i] = r.vega;
    theta[i] = r.theta;
    rho[i] = r.rho;
    vanna[i] = r.vanna;
    volga[i] = r.volga;
  }
};

/// A host array copied into a new device buffer (on the CPU backend: host memory too).
template <class T>
buffers::Buffer<T> resident_copy(const T* host, std::size_t n) {
  buffers::Buffer<T> b(n);
  buffers::upload(b.data(), host, n);
  return b;
}

struct PortfolioGreeksOfAccount {
  const std::size_t* row_offsets;
  const std::uint32_t* instrument;
  const double* quantity;
  const std::uint32_t* underlying;
  std::size_t underlyings;
  const double* greeks;
  double* out;

  MARGINET_HD void operator()(std::size_t account) const {
    double* row = out + account * underlyings * kGreeksColumns;
    for (std::size_t p = row_offsets[account]; p < row_offsets[account + 1]; ++p) {
      const std::uint32_t i = instrument[p];
      const double q = quantity[p];
      double* cell = row + static_cast<std::size_t>(underlying[i]) * kGreeksColumns;
      const double* g = greeks + static_cast<std::size_t>(i) * kGreeksColumns;
      for (std::size_t c = 0; c < kGreeksColumns; ++c) cell[c] += q * g[c];
    }
  }
};

}  // namespace

struct ResidentGreeksBatch::Impl {
  std::size_t count;
  buffers::Buffer<std::uint8_t> kind, put_call, settlement;
  buffers::Buffer<double> forward, strike, expiry_years, sigma, rate;
  buffers::Buffer<double> outputs;  // kGreeksColumns × count, column-major (SoA)

  GreeksView view() const {
    double* o = outputs.data();
    const std::size_t n = count;
    return GreeksView{kind.data(),   put_call.data(), settlement.data(), forward.data(), strike.data(),
                      expiry_years.data(), sigma.data(), rate.data(),    o,              o + n,
                      o + 2 * n,     o + 3 * n,       o + 4 * n,         o + 5 * n,      o + 6 * n,
                      o + 7 * n,     o + 8 * n,       o + 9 * n};
  }
};

ResidentGreeksBatch::ResidentGreeksBatch(const GreeksInputs& in) {
  detail::run_translating_errors("ResidentGreeksBatch", [&] {
    const std::size_t n = in.count;
    impl_ = std::unique_ptr<Impl>(new Impl{n,
                                           resident_copy(in.kind, n),
                                           resident_copy(in.put_call, n),
                                           resident_copy(in.settlement, n),
                                           resident_copy(in.forward, n),
                                           resident_copy(in.strike, n),
                                           resident_copy(in.expiry_years, n),
                                           resident_copy(in.sigma, n),
                                           resident_copy(in.rate, n),
                                           buffers::Buffer<double>(kGreeksColumns * n)});
    // Written once here, so that run() finds the outputs in place (on the CPU: the pages
    // already mapped, not faulted in by the first evaluation).
    thrust::fill_n(buffers::exec(), impl_->outputs.data(), kGreeksColumns * n, 0.0);
  });
}

ResidentGreeksBatch::~ResidentGreeksBatch() = default;

std::size_t ResidentGreeksBatch::count() const { return impl_->count; }

void ResidentGreeksBatch::run() {
  if (impl_->count == 0) return;
  detail::run_translating_errors("price_greeks", [&] {
    const GreeksView v = impl_->view();
    // The CPU's vector path (kernels/cpu_simd.hpp): the same columns to within a few ulp.
    if constexpr (detail::kHostIsDevice) {
      if (simd_level() == SimdLevel::avx2) {
        simd::price_greeks_avx2(
            GreeksInputs{impl_->count, v.kind, v.put_call, v.settlement, v.forward, v.strike, v.expiry_years,
                         v.sigma, v.rate},
            GreeksOutputs{v.price, v.price_coin, v.delta, v.delta_coin, v.gamma, v.vega, v.theta, v.rho, v.vanna,
                          v.volga});
        return;
      }
    }
    primitives::for_each_index(impl_->count, v);
    buffers::synchronize();
  });
}

void ResidentGreeksBatch::download(const GreeksOutputs& out) const {
  const std::size_t n = impl_->count;
  if (n == 0) return;
  detail::run_translating_errors("price_greeks download", [&] {
    double* const columns[kGreeksColumns] = {out.price, out.price_coin, out.delta, out.delta_coin,
                                             out.gamma, out.vega,       out.theta, out.rho,
                                             out.vanna, out.volga};
    for (std::size_t c = 0; c < kGreeksColumns; ++c) buffers::download(columns[c], impl_->outputs.data() + c * n, n);
  });
}

void price_greeks(const GreeksInputs& in, const GreeksOutputs& out) {
  if (in.count == 0) return;
  ResidentGreeksBatch batch(in);
  batch.run();
  batch.download(out);
}

void portfolio_greeks(const PortfolioGreeksArgs& a) {
  const std::size_t cells = a.accounts * a.underlyings * kGreeksColumns;
  if (cells == 0) return;
  detail::run_translating_errors("portfolio_greeks", [&] {
    const std::size_t positions = a.row_offsets[a.accounts];
    const buffers::Input<std::size_t> offsets(a.row_offsets, a.accounts + 1);
    const buffers::Input<std::uint32_t> instrument(a.instrument, positions);
    const buffers::Input<double> quantity(a.quantity, positions);
    const buffers::Input<std::uint32_t> underlying(a.underlying, a.instruments);
    const buffers::Input<double> greeks(a.instrument_greeks, a.instruments * kGreeksColumns);
    buffers::Output<double> out(a.out, cells);
    thrust::fill_n(buffers::exec(), out.ptr, cells, 0.0);
    primitives::for_each_index(a.accounts, PortfolioGreeksOfAccount{offsets.ptr, instrument.ptr, quantity.ptr,
                                                                    underlying.ptr, a.underlyings, greeks.ptr,
                                                                    out.ptr});
    out.to_host();
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
