#pragma once
// The settings of an `evm` chain in the chains file (docs/settlement.md, "On an EVM chain"):
//
//   {"name": "ethereum-local", "adapter": "evm", "assets": ["ETH", "USDC"],
//    "rpc_url": "http://127.0.0.1:8545", "finality_depth": 3,
//    "ccp_account": "0x...", "dvp_contract": "0x...",
//    "tokens": {"ETH": "0x...", "USDC": "0x..."}, "members": {"M1": "0x...", ...},
//    "max_legs_per_batch": 100, "dev_mine": true,
//    "htlc_contract": "0x...", "contracts": "build/evm/contracts.json"}
//
// `marginet evm deploy` writes such an entry for a local node.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace marginet {

struct EvmChainConfig {
  std::string name = "evm";
  std::vector<std::string> assets;
  std::string rpc_url;
  std::uint32_t finality_depth = 1;
  std::string ccp_account;                     // sends every transaction; the DvP contract's ccp
  std::string dvp_contract;
  std::map<std::string, std::string> tokens;   // asset -> ERC-20 address
  std::map<std::string, std::string> members;  // member -> address
  std::size_t max_legs_per_batch = 100;
  bool dev_mine = false;          // a local node: mine a block per poll while a batch is not final
  double rpc_timeout_seconds = 10;
  std::string htlc_contract;   // the chain's HTLC (cross-chain legs), when deployed
  std::string contracts_file;  // BUILD/evm/contracts.json: reverts decoded by name (optional)
};

}  // namespace marginet
