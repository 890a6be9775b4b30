#include "kernels/detail/backend.cuh"
#include "kernels/greeks.hpp"
#include "models/pricing.hpp"
#if !defined(__CUDACC__)
#include "kernels/cpu_simd.hpp"
#include "kernels/simd/greeks_simd.hpp"
#endif

#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

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

template <class T>
T* raw(thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}
template <class T>
const T* raw(const thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
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
  thrust::device_vector<std::uint8_t> kind, put_call, settlement;
  thrust::device_vector<double> forward, strike, expiry_years, sigma, rate;
  thrust::device_vector<double> outputs;  // kGreeksColumns × count, column-major (SoA)

  GreeksView view() {
    double* o = raw(outputs);
    const std::size_t n = count;
    return GreeksView{raw(kind),  raw(put_call), raw(settlement), raw(forward),
                      raw(strike), raw(expiry_years), raw(sigma),  raw(rate),
                      o,          o + n,         o + 2 * n,      o + 3 * n,
                      o + 4 * n,  o + 5 * n,     o + 6 * n,      o + 7 * n,
                      o + 8 * n,  o + 9 * n};
  }
};

ResidentGreeksBatch::ResidentGreeksBatch(const GreeksInputs& in) {
  detail::run_translating_errors("ResidentGreeksBatch", [&] {
    const std::size_t n = in.count;
    impl_ = std::unique_ptr<Impl>(new Impl{n,
                                           detail::to_device(in.kind, n),
                                           detail::to_device(in.put_call, n),
                                           detail::to_device(in.settlement, n),
                                           detail::to_device(in.forward, n),
                                           detail::to_device(in.strike, n),
                                           detail::to_device(in.expiry_years, n),
                                           detail::to_device(in.sigma, n),
                                           detail::to_device(in.rate, n),
                                           thrust::device_vector<double>(kGreeksColumns * n)});
  });
}

ResidentGreeksBatch::~ResidentGreeksBatch() = default;

std::size_t ResidentGreeksBatch::count() const { return impl_->count; }

void ResidentGreeksBatch::run() {
  if (impl_->count == 0) return;
  detail::run_translating_errors("price_greeks", [&] {
#if !defined(__CUDACC__)
    // The CPU's vector path (kernels/cpu_simd.hpp): the same columns to within a few ulp.
    if (simd_level() == SimdLevel::avx2) {
      const GreeksView v = impl_->view();
      simd::price_greeks_avx2(
          GreeksInputs{impl_->count, v.kind, v.put_call, v.settlement, v.forward, v.strike, v.expiry_years, v.sigma,
                       v.rate},
          GreeksOutputs{v.price, v.price_coin, v.delta, v.delta_coin, v.gamma, v.vega, v.theta, v.rho, v.vanna,
                        v.volga});
      return;
    }
#endif
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), impl_->count,
                       impl_->view());
#if defined(__CUDACC__)
    const cudaError_t rc = cudaDeviceSynchronize();
    if (rc != cudaSuccess) {
      cudaGetLastError();
      throw cuda_error(std::string("price_greeks: ") + cudaGetErrorString(rc),
                       cudaDeviceSynchronize() == cudaSuccess);
    }
#endif
  });
}

void ResidentGreeksBatch::download(const GreeksOutputs& out) const {
  const std::size_t n = impl_->count;
  if (n == 0) return;
  detail::run_translating_errors("price_greeks download", [&] {
    double* const columns[kGreeksColumns] = {out.price, out.price_coin, out.delta, out.delta_coin,
                                             out.gamma, out.vega,       out.theta, out.rho,
                                             out.vanna, out.volga};
    for (std::size_t c = 0; c < kGreeksColumns; ++c)
      thrust::copy(impl_->outputs.begin() + c * n, impl_->outputs.begin() + (c + 1) * n,
                   columns[c]);
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
    auto offsets = detail::to_device(a.row_offsets, a.accounts + 1);
    auto instrument = detail::to_device(a.instrument, positions);
    auto quantity = detail::to_device(a.quantity, positions);
    auto underlying = detail::to_device(a.underlying, a.instruments);
    auto greeks = detail::to_device(a.instrument_greeks, a.instruments * kGreeksColumns);
    thrust::device_vector<double> out(cells, 0.0);
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.accounts,
                       PortfolioGreeksOfAccount{raw(offsets), raw(instrument), raw(quantity),
                                                raw(underlying), a.underlyings, raw(greeks),
                                                raw(out)});
    thrust::copy(out.begin(), out.end(), a.out);
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
