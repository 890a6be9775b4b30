// Price + all greeks, in one program so that every ratio is from the same run:
//   BM_QuantLib_AnalyticEuropean   QuantLib 1.29 AnalyticEuropeanEngine, objects reused, only the
//                                  spot SimpleQuote changes; value + every greek it offers
//                                  (delta, gamma, vega, theta, rho, dividendRho)
//   BM_Ours_SingleThread           models/pricing.hpp bsm_greeks on the same options, one thread
//                                  (value, delta, gamma, vega, theta, rho, vanna, volga)
//   BM_Ours_Kernel                 the batch kernel (kernels/greeks.hpp), device-resident SoA batch,
//                                  on the backend of --device (CPU: Thrust OpenMP, --threads)
//   BM_Ours_CpuKernel/<level>      the CPU batch kernel on its scalar or AVX2 path
//                                  (kernels/cpu_simd.hpp), on 1 and on 2 threads
//   bench_greeks_quantlib [--device=cpu|cuda] [--threads=N] [--benchmark_format=json]

#include <ql/quantlib.hpp>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "bench/bench_context.hpp"
#include "kernels/cpu_simd.hpp"
#include "kernels/greeks.hpp"
#include "models/instrument.hpp"
#include "models/pricing.hpp"

namespace {

namespace ql = QuantLib;
using marginet::OptionType;

struct OptionSpec {
  OptionType type;
  double K, T, sigma;
};

constexpr double kRate = 0.03, kCarry = 0.0, kSpot = 100.0;

std::vector<OptionSpec> make_options(std::size_t n) {
  std::mt19937_64 rng(2024);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<OptionSpec> out(n);
  for (auto& o : out) {
    o.type = u(rng) < 0.5 ? OptionType::call : OptionType::put;
    o.K = kSpot * std::exp(std::log(0.5) + u(rng) * std::log(4.0));  // moneyness 0.5 .. 2
    o.T = 0.02 + 2.0 * u(rng);
    o.sigma = 0.2 + u(rng);
  }
  return out;
}

// QuantLib: one process on a SimpleQuote spot, one VanillaOption per strike/expiry; each
// iteration moves the spot and asks every option for its value and greeks.
void BM_QuantLib_AnalyticEuropean(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto specs = make_options(n);
  const ql::Date today(15, ql::January, 2024);
  ql::Settings::instance().evaluationDate() = today;
  const ql::DayCounter dc = ql::Actual365Fixed();
  auto spot = QuantLib::ext::make_shared<ql::SimpleQuote>(kSpot);
  ql::Handle<ql::YieldTermStructure> rts(QuantLib::ext::make_shared<ql::FlatForward>(today, kRate, dc));
  ql::Handle<ql::YieldTermStructure> dts(QuantLib::ext::make_shared<ql::FlatForward>(today, kCarry, dc));
  ql::Handle<ql::BlackVolTermStructure> flat_vol(
      QuantLib::ext::make_shared<ql::BlackConstantVol>(today, ql::NullCalendar(), 0.2, dc));
  std::vector<std::unique_ptr<ql::VanillaOption>> options;
  std::vector<QuantLib::ext::shared_ptr<ql::PricingEngine>> engines;
  for (const auto& s : specs) {
    // Each option has its own volatility: its own process on the shared spot quote.
    ql::Handle<ql::BlackVolTermStructure> vol(
        QuantLib::ext::make_shared<ql::BlackConstantVol>(today, ql::NullCalendar(), s.sigma, dc));
    auto process = QuantLib::ext::make_shared<ql::BlackScholesMertonProcess>(ql::Handle<ql::Quote>(spot), dts, rts, vol);
    engines.push_back(QuantLib::ext::make_shared<ql::AnalyticEuropeanEngine>(process));
    const ql::Date expiry = today + static_cast<ql::Integer>(std::lround(s.T * 365.0));
    options.push_back(std::make_unique<ql::VanillaOption>(
        QuantLib::ext::make_shared<ql::PlainVanillaPayoff>(
            s.type == OptionType::call ? ql::Option::Call : ql::Option::Put, s.K),
        QuantLib::ext::make_shared<ql::EuropeanExercise>(expiry)));
    options.back()->setPricingEngine(engines.back());
  }
  double bump = 0, sink = 0;
  for (auto _ : state) {
    bump = bump > 1.0 ? 0.0 : bump + 1e-3;
    spot->setValue(kSpot + bump);
    for (auto& o : options)
      sink += o->NPV() + o->delta() + o->gamma() + o->vega() + o->theta() + o->rho() + o->dividendRho();
    benchmark::DoNotOptimize(sink);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// Ours, one thread, the same options (QuantLib's expiries rounded to whole days likewise).
void BM_Ours_SingleThread(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  auto specs = make_options(n);
  for (auto& s : specs) s.T = std::lround(s.T * 365.0) / 365.0;
  double bump = 0, sink = 0;
  for (auto _ : state) {
    bump = bump > 1.0 ? 0.0 : bump + 1e-3;
    const double S = kSpot + bump;
    for (const auto& s : specs) {
      const marginet::Greeks g = marginet::bsm_greeks(s.type, S, s.K, s.T, s.sigma, kRate, kCarry);
      sink += g.price + g.delta + g.gamma + g.vega + g.theta + g.rho + g.vanna + g.volga;
    }
    benchmark::DoNotOptimize(sink);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// The batch kernel on a device-resident batch of options (Black-76 on the forward).
template <class Batch>
void run_kernel(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto specs = make_options(n);
  std::vector<std::uint8_t> kind(n, static_cast<std::uint8_t>(marginet::InstrumentKind::option));
  std::vector<std::uint8_t> put_call(n), settlement(n);
  std::vector<double> forward(n), strike(n), years(n), sigma(n), rate(n, kRate);
  for (std::size_t i = 0; i < n; ++i) {
    put_call[i] = static_cast<std::uint8_t>(specs[i].type);
    settlement[i] = static_cast<std::uint8_t>(i % 2 ? marginet::Settlement::inverse : marginet::Settlement::linear);
    forward[i] = kSpot * std::exp(kRate * specs[i].T);
    strike[i] = specs[i].K;
    years[i] = specs[i].T;
    sigma[i] = specs[i].sigma;
  }
  const marginet::kernels::GreeksInputs in{n, kind.data(), put_call.data(), settlement.data(),
                                           forward.data(), strike.data(), years.data(),
                                           sigma.data(), rate.data()};
  Batch batch(in);
  for (auto _ : state) batch.run();
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  marginet::bench::set_bandwidth_counters(
      state, static_cast<double>(n) * static_cast<double>(marginet::kernels::kGreeksInputBytes +
                                                          marginet::kernels::kGreeksOutputBytes));
}

void BM_Ours_Kernel(benchmark::State& state) {
#if MARGINET_HAVE_CUDA
  if (marginet::bench::backend() == marginet::Backend::cuda)
    return run_kernel<marginet::kernels::gpu::ResidentGreeksBatch>(state);
#endif
  run_kernel<marginet::kernels::cpu::ResidentGreeksBatch>(state);
}

// The CPU batch kernel on a given vector path and number of threads.
void BM_Ours_CpuKernel(benchmark::State& state, marginet::kernels::SimdLevel level) {
  const int threads = marginet::cpu_threads();
  const marginet::kernels::SimdLevel saved = marginet::kernels::simd_level();
  if (marginet::kernels::set_simd_level(level) != level) {
    state.SkipWithError("this CPU lacks the vector path");
    return;
  }
  marginet::set_cpu_threads(static_cast<int>(state.range(1)));
  run_kernel<marginet::kernels::cpu::ResidentGreeksBatch>(state);
  state.counters["threads"] = static_cast<double>(state.range(1));
  marginet::set_cpu_threads(threads);
  marginet::kernels::set_simd_level(saved);
}

BENCHMARK(BM_QuantLib_AnalyticEuropean)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Ours_SingleThread)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Ours_Kernel)->Arg(1 << 20)->Arg(1 << 23)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Ours_CpuKernel, scalar, marginet::kernels::SimdLevel::scalar)
    ->Args({1 << 20, 1})->Args({1 << 20, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Ours_CpuKernel, avx2, marginet::kernels::SimdLevel::avx2)
    ->Args({1 << 20, 1})->Args({1 << 20, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

MARGINET_BENCHMARK_MAIN();
