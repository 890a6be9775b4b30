// `marginet keygen NAME`: a CURVE key pair for the service or a client — NAME.key (secret,
// mode 0600) and NAME.pub (public; give it to the other side or add it to an allow-list).

#include <iostream>
#include <memory>

#include "service/cli/common.hpp"
#include "service/margin/curve.hpp"

namespace marginet::cli {

void add_keygen_command(CLI::App& app, CommonOptions&) {
  auto name = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("keygen", "Generate a CURVE key pair: NAME.key and NAME.pub");
  cmd->add_option("name", *name, "Path prefix of the key files")->required();
  cmd->callback([name] {
    const CurveKeyPair keys = generate_curve_keypair();
    write_curve_key_files(keys, *name);
    std::cout << "public-key = " << keys.public_key << "\n"
              << "wrote " << *name << ".key (secret) and " << *name << ".pub\n";
  });
}

}  // namespace marginet::cli
