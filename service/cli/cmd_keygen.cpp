// `marginet keygen NAME`: a CURVE key pair for the service or a client — NAME.key (secret,
// mode 0600) and NAME.pub (public; give it to the other side or add it to an allow-list).
// `marginet keygen --signing NAME`: the CCP's Ed25519 key pair that signs the settlement
// ledger's tree heads — NAME.sign.key (secret, mode 0600; for the scheduler) and NAME.sign.pub
// (public; for whoever verifies the ledger: `ledger verify --pubkey`, scripts/verify_proof.py).
// Neither overwrites an existing file.

#include <iostream>
#include <memory>

#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/margin/curve.hpp"
#include "service/settlement/signing.hpp"

namespace marginet::cli {

void add_keygen_command(CLI::App& app, CommonOptions&) {
  auto name = std::make_shared<std::string>();
  auto signing = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "keygen", "Generate a CURVE key pair (NAME.key, NAME.pub), or with --signing NAME an Ed25519 tree-head "
                "signing key pair (NAME.sign.key, NAME.sign.pub)");
  CLI::Option* positional = cmd->add_option("name", *name, "Path prefix of the CURVE key files");
  CLI::Option* sign = cmd->add_option(
      "--signing", *signing, "Path prefix of the Ed25519 key files that sign the settlement ledger's tree heads");
  positional->excludes(sign);
  cmd->callback([name, signing] {
    if (!signing->empty()) {
      const SigningKey key = generate_signing_key();
      write_signing_key_files(key, *signing);
      std::cout << "ed25519-public-key = " << key.public_key.hex() << "\n"
                << "wrote " << *signing << ".sign.key (secret) and " << *signing << ".sign.pub\n";
      return;
    }
    if (name->empty()) throw usage_error("keygen: give NAME (CURVE keys) or --signing NAME (tree-head signing keys)");
    const CurveKeyPair keys = generate_curve_keypair();
    write_curve_key_files(keys, *name);
    std::cout << "public-key = " << keys.public_key << "\n"
              << "wrote " << *name << ".key (secret) and " << *name << ".pub\n";
  });
}

}  // namespace marginet::cli
