// `marginet evm deploy`: puts marginet's settlement contracts on an Ethereum node (a local anvil:
// scripts/evm/anvil.sh) and prints the chains-file entry that settles the given assets there
// (docs/settlement.md, "On an EVM chain").
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "service/settlement/scheduler_config.hpp"

namespace marginet::cli {
namespace {

struct EvmDeployOptions {
  std::string rpc = "http://127.0.0.1:8545";
  std::string contracts = "build/evm/contracts.json";
  std::string name = "ethereum-local";
  std::vector<std::string> assets;          // ASSET:SCALE
  std::vector<std::string> members;         // names; dev accounts 1.. in order
  std::vector<std::string> member_funding;  // ASSET=AMOUNT (decimal)
  std::vector<std::string> ccp_funding;     // ASSET=AMOUNT (decimal)
  unsigned finality = 3;
  bool dev_mine = false;
};

std::map<std::string, std::int64_t> parse_funding(const std::vector<std::string>& items, const std::map<std::string, int>& scales,
                                                  const char* flag) {
  std::map<std::string, std::int64_t> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw usage_error(std::string(flag) + ": ASSET=AMOUNT, not '" + item + "'");
    const std::string asset = item.substr(0, eq);
    auto it = scales.find(asset);
    if (it == scales.end()) throw usage_error(std::string(flag) + ": asset " + asset + " is not in --asset");
    const auto v = parse_minor_units(item.substr(eq + 1), it->second);
    if (!v || *v < 0) throw usage_error(std::string(flag) + ": not an amount at scale " + std::to_string(it->second) + ": " + item);
    out[asset] = *v;
  }
  return out;
}

void run_deploy(const CommonOptions& common, const EvmDeployOptions& o) {
  if (o.assets.empty()) throw usage_error("evm deploy: at least one --asset ASSET:SCALE");
  evm::DeployRequest req;
  std::map<std::string, int> scales;
  for (const auto& a : o.assets) {
    const auto colon = a.find(':');
    int scale = -1;
    try {
      if (colon != std::string::npos) scale = std::stoi(a.substr(colon + 1));
    } catch (const std::exception&) {
    }
    if (colon == std::string::npos || colon == 0 || scale < 0 || scale > 18)
      throw usage_error("evm deploy: --asset ASSET:SCALE (scale 0..18), not '" + a + "'");
    scales[a.substr(0, colon)] = scale;
    req.assets.emplace_back(a.substr(0, colon), scale);
  }
  req.member_funding = parse_funding(o.member_funding, scales, "--member-funding");
  req.ccp_funding = parse_funding(o.ccp_funding, scales, "--ccp-funding");
  const auto artifacts = evm::ContractArtifacts::load(o.contracts);
  evm::EvmNode node(o.rpc);
  std::vector<std::string> accounts;
  try {
    accounts = node.accounts();
  } catch (const evm::EvmNodeUnreachable& e) {
    throw usage_error(std::string("evm deploy: ") + e.what() + " (start one: scripts/evm/anvil.sh start)");
  }
  if (accounts.size() < o.members.size() + 1)
    throw usage_error("evm deploy: the node unlocks " + std::to_string(accounts.size()) + " accounts; the CCP and " +
                      std::to_string(o.members.size()) + " members need " + std::to_string(o.members.size() + 1));
  req.ccp = accounts[0];
  for (std::size_t i = 0; i < o.members.size(); ++i) req.members.emplace_back(o.members[i], accounts[i + 1]);
  evm::NodeAccountSigner signer;
  const evm::EvmDeployment d = evm::deploy_settlement(node, signer, artifacts, req);
  nlohmann::ordered_json entry = {{"name", o.name}, {"adapter", "evm"}, {"assets", nlohmann::json::array()}};
  for (const auto& [asset, scale] : req.assets) entry["assets"].push_back(asset);
  entry["rpc_url"] = o.rpc;
  entry["chain_id"] = d.chain_id;
  entry["finality_depth"] = o.finality;
  entry["ccp_account"] = d.ccp;
  entry["dvp_contract"] = d.dvp;
  entry["htlc_contract"] = d.htlc;
  entry["tokens"] = d.tokens;
  entry["members"] = d.members;
  entry["dev_mine"] = o.dev_mine;
  entry["contracts"] = o.contracts;
  OutputSink sink(common.out);
  sink.stream() << entry.dump(2) << "\n";
  if (!common.quiet)
    spdlog::info("evm deploy: DvpSettlement {} and {} token(s) on chain {} ({}); CCP {}", d.dvp, d.tokens.size(),
                 d.chain_id, o.rpc, d.ccp);
}

}  // namespace

void add_evm_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<EvmDeployOptions>();
  CLI::App* cmd = app.add_subcommand("evm", "Settlement contracts on an Ethereum node (a local anvil)");
  cmd->require_subcommand(1);
  CLI::App* deploy = cmd->add_subcommand(
      "deploy", "Deploy the DvP contract, the HTLC and one ERC-20 token per asset; fund and approve; print the "
                "chains-file entry (JSON)");
  deploy->add_option("--rpc", o->rpc, "The node's JSON-RPC URL")->capture_default_str();
  deploy->add_option("--contracts", o->contracts, "Compiled contracts (scripts/evm/setup.sh)")->capture_default_str();
  deploy->add_option("--name", o->name, "The chain's name in the chains file")->capture_default_str();
  deploy->add_option("--asset", o->assets, "ASSET:SCALE, one per asset (repeat)")->required();
  deploy->add_option("--member", o->members, "Member names, given the node's dev accounts 1, 2, ... in order (repeat)");
  deploy->add_option("--member-funding", o->member_funding, "ASSET=AMOUNT minted to each member (decimal)");
  deploy->add_option("--ccp-funding", o->ccp_funding, "ASSET=AMOUNT minted to the CCP (decimal)");
  deploy->add_option("--finality", o->finality, "Confirmations for finality")->capture_default_str()->check(CLI::Range(1, 1000));
  deploy->add_flag("--dev-mine", o->dev_mine, "A block per scheduler tick while a batch is not final (a local node)");
  deploy->callback([&common, o] { run_deploy(common, *o); });
}

}  // namespace marginet::cli
