// marginet — the one binary. This file is the only place that knows every subcommand.
//
// Exit codes (SPEC §2): 0 ok, 2 bad usage or bad input, 3 the service could not be reached (no
// reply in time, connection refused, CURVE key refused), 1 internal error.

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "host/backend.hpp"
#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/margin/client.hpp"
#include "service/scaleout/communicator.hpp"

namespace {

std::string version_text() {
  using namespace marginet;
  std::string text = "marginet 0.1.0\n";
  text += "revision: " + std::string(git_revision()) + "\n";
  text += "backends built: " + backends_built() + "\n";
  text += "thrust: " + thrust_version() + "\n";
  text += "compiler: " + compiler_version() + "\n";
  text += "cpu backend: " + describe_device(Backend::cpu) + "\n";
  const CudaProbe& cuda = probe_cuda();
  if (cuda.available())
    text += "device: " + describe_device(Backend::cuda) + "\n";
  else
    text += "device: none (" + cuda.error + "); --device auto runs on the CPU, " +
            std::to_string(cpu_threads()) + " threads\n";
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr; results go to stdout or --out.
  spdlog::set_default_logger(marginet::cli::make_console_logger("marginet"));
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");

  CLI::App app{"marginet — GPU-accelerated margin and netting for crypto-asset derivatives"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", [] { return version_text(); });

  marginet::cli::CommonOptions common;
  marginet::cli::add_common_options(app, common);
  marginet::cli::add_demo_command(app, common);
  marginet::cli::add_margin_command(app, common);
  marginet::cli::add_whatif_command(app, common);
  marginet::cli::add_scheduler_command(app, common);
  marginet::cli::add_ledger_command(app, common);
  marginet::cli::add_net_command(app, common);
  marginet::cli::add_contagion_command(app, common);
  marginet::cli::add_greeks_command(app, common);
  marginet::cli::add_serve_command(app, common);
  marginet::cli::add_client_command(app, common);
  marginet::cli::add_keygen_command(app, common);
  marginet::cli::add_trades_command(app, common);
  marginet::cli::add_positions_command(app, common);
  marginet::cli::add_members_command(app, common);
  marginet::cli::add_accounts_command(app, common);
  marginet::cli::add_calls_command(app, common);
  marginet::cli::add_collateral_command(app, common);
  marginet::cli::add_default_fund_command(app, common);
  marginet::cli::add_default_command(app, common);
  marginet::cli::add_evm_command(app, common);

  // Only `margin` distributes itself over the ranks of an MPI job; any other subcommand started
  // as one of several ranks would run once per rank (a call run settling twice, a default fund
  // recorded twice): refused before it does anything.
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() != "margin")
      sub->preparse_callback([name = sub->get_name()](std::size_t) {
        if (marginet::scaleout::launched_ranks() > 1)
          throw marginet::usage_error(name + ": started as one of " +
                                      std::to_string(marginet::scaleout::launched_ranks()) +
                                      " ranks; only `marginet margin` runs under mpirun/srun (docs/scale-out.md)");
      });

  // The common flags belong to the top level (before or after the subcommand): every
  // subcommand's --help names them.
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    sub->footer("Common options (before or after the subcommand): --device auto|cpu|cuda, "
                "--on-device-error refuse|cpu, --threads N, --format auto|table|csv|json, --out FILE, --quiet. Exit codes: 0 ok, 1 internal error, 2 bad usage "
                "or input, 3 the service could not be reached.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const marginet::reported_error& e) {
    return e.exit_code();
  } catch (const marginet::input_error& e) {
    std::cerr << "marginet: bad input: " << e.what() << "\n";
    return 2;
  } catch (const marginet::usage_error& e) {
    std::cerr << "marginet: " << e.what() << "\n";
    return 2;
  } catch (const marginet::client_error& e) {
    std::cerr << "marginet: cannot reach the service: " << e.what() << "\n";
    return 3;
  } catch (const marginet::cli::run_failed& e) {
    std::cerr << "marginet: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "marginet: internal error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
