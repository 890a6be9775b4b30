#pragma once
// marginet's compiled contracts (BUILD/evm/contracts.json, written by scripts/evm/setup.sh from
// contracts/*.sol) and their deployment on a node: the ERC-20 test tokens of the assets, the
// DvP settlement contract, the HTLC; members funded and their approvals given, as a local
// chain for tests and the demo needs them (`marginet evm deploy`).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "service/settlement/evm/evm_chain_config.hpp"
#include "service/settlement/evm/evm_node.hpp"

namespace marginet::evm {

class ContractArtifacts {
 public:
  /// Reads contracts.json; input_error naming the file when it is missing or not one.
  static ContractArtifacts load(const std::string& path);
  /// The creation bytecode (raw bytes); input_error when the file has no such contract.
  std::string bytecode(const std::string& name) const;
  /// A revert's bytes as text: "LegFailed(index=1, from=0x.., to=0x.., amount=500)" for the
  /// contracts' custom errors, the message of Error(string), else the hex.
  std::string describe_revert(std::string_view data) const;
  const std::string& compiler() const { return compiler_; }

 private:
  struct ErrorAbi {
    std::string name;
    std::vector<std::pair<std::string, std::string>> inputs;  // (name, type)
  };
  std::string path_, compiler_;
  std::map<std::string, std::string> bytecode_;
  std::map<std::string, ErrorAbi> errors_;  // selector bytes -> error
};

struct DeployRequest {
  std::string ccp;                                       // the CCP's account (deploys, settles)
  std::vector<std::pair<std::string, int>> assets;       // asset, decimals (its scale)
  std::vector<std::pair<std::string, std::string>> members;  // member, address
  std::map<std::string, std::int64_t> member_funding;    // asset -> minor units minted to each member
  std::map<std::string, std::int64_t> ccp_funding;       // asset -> minor units minted to the CCP
};

struct EvmDeployment {
  std::string ccp, dvp, htlc;
  std::map<std::string, std::string> tokens;   // asset -> token address
  std::map<std::string, std::string> members;  // member -> address
  std::uint64_t chain_id = 0;
};

/// Deploys a DvP contract, an HTLC and one token per asset from `request.ccp`; mints the
/// funding; has the CCP and every member approve both the DvP contract and the HTLC for every
/// token (members' accounts must be unlocked on the node: a local dev node). runtime_error
/// naming the step that failed.
EvmDeployment deploy_settlement(EvmNode& node, EvmSigner& signer, const ContractArtifacts& artifacts,
                                const DeployRequest& request);

/// The evm chain's settings for a deployment on the node at `rpc_url`: its CCP, DvP contract,
/// HTLC, tokens (their assets are the chain's) and members. Name, finality, batching and
/// dev_mine are left at their defaults for the caller to set.
EvmChainConfig chain_config(const EvmDeployment& deployment, const std::string& rpc_url);

/// Deploys one contract with constructor arguments (AbiCall("") bytes); its address.
std::string deploy_contract(EvmNode& node, EvmSigner& signer, const ContractArtifacts& artifacts,
                            const std::string& name, const std::string& from, const std::string& ctor_args = {});

/// ERC-20 helpers.
std::int64_t token_balance(EvmNode& node, const std::string& token, const std::string& holder);
void token_mint(EvmNode& node, EvmSigner& signer, const std::string& token, const std::string& minter,
                const std::string& to, std::int64_t amount);
void token_approve(EvmNode& node, EvmSigner& signer, const std::string& token, const std::string& owner,
                   const std::string& spender, std::int64_t amount /* -1: unlimited */);

}  // namespace marginet::evm
