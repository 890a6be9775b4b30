// `marginet evm deploy`: puts marginet's settlement contracts on an Ethereum node (a local anvil:
// scripts/evm/anvil.sh) and prints the chains-file entry that settles the given assets there.
// `marginet evm swap`: a cross-chain exchange of two assets that the chains file puts on two evm
// chains, settled with the HTLC (docs/settlement.md, "On an EVM chain", "Across chains").
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "service/settlement/evm/htlc_swap.hpp"
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

struct EvmSwapOptions {
  std::string chains, swap_id, initiator, responder, give, get, stop_after;
  bool refund = false;
  std::int64_t initiator_timelock = 7200, responder_timelock = 3600, margin = 1800;
};

// "ASSET=AMOUNT" -> (asset, minor units at the chains file's scale).
std::pair<std::string, std::int64_t> parse_leg(const std::string& text, const SchedulerConfig& cfg, const char* flag) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) throw usage_error(std::string(flag) + ": ASSET=AMOUNT, not '" + text + "'");
  const std::string asset = text.substr(0, eq);
  auto it = cfg.assets.find(asset);
  if (it == cfg.assets.end()) throw usage_error(std::string(flag) + ": asset " + asset + " is not in the chains file");
  const auto v = parse_minor_units(text.substr(eq + 1), it->second.scale);
  if (!v || *v <= 0)
    throw usage_error(std::string(flag) + ": not a positive amount at scale " + std::to_string(it->second.scale) + ": " + text);
  return {asset, *v};
}

const EvmChainConfig& evm_chain_of(const SchedulerConfig& cfg, const std::string& asset, const char* flag) {
  for (const auto& c : cfg.evm_chains)
    for (const auto& a : c.assets)
      if (a == asset) {
        if (c.htlc_contract.empty())
          throw usage_error(std::string(flag) + ": chain " + c.name + " has no htlc_contract (marginet evm deploy)");
        return c;
      }
  throw usage_error(std::string(flag) + ": asset " + asset + " is not settled on an evm chain of the chains file");
}

std::string party_address(const EvmChainConfig& c, const std::string& party, const char* flag) {
  if (party == "CCP") return c.ccp_account;
  auto it = c.members.find(party);
  if (it == c.members.end())
    throw usage_error(std::string(flag) + ": " + party + " has no address on chain " + c.name + " (members, or CCP)");
  return it->second;
}

void run_swap(const CommonOptions& common, const EvmSwapOptions& o) {
  const SchedulerConfig cfg = load_scheduler_config(o.chains);
  const auto [give_asset, give] = parse_leg(o.give, cfg, "--give");
  const auto [get_asset, get] = parse_leg(o.get, cfg, "--get");
  const EvmChainConfig& a = evm_chain_of(cfg, give_asset, "--give");
  const EvmChainConfig& b = evm_chain_of(cfg, get_asset, "--get");
  if (a.name == b.name)
    throw usage_error("evm swap: " + give_asset + " and " + get_asset + " are on the same chain " + a.name +
                      ": settle them with the DvP contract (the scheduler), not across chains");
  evm::EvmNode node_a(a.rpc_url, a.rpc_timeout_seconds), node_b(b.rpc_url, b.rpc_timeout_seconds);
  evm::SwapPlan plan;
  plan.swap_id = o.swap_id;
  plan.leg_a = {&node_a, a.htlc_contract, a.tokens.at(give_asset), party_address(a, o.initiator, "--initiator"),
                party_address(a, o.responder, "--responder"), give};
  plan.leg_b = {&node_b, b.htlc_contract, b.tokens.at(get_asset), party_address(b, o.responder, "--responder"),
                party_address(b, o.initiator, "--initiator"), get};
  plan.initiator_timelock = o.initiator_timelock;
  plan.responder_timelock = o.responder_timelock;
  plan.margin = o.margin;
  evm::HtlcSwapOptions opts;
  if (!a.contracts_file.empty())
    opts.artifacts = std::make_shared<evm::ContractArtifacts>(evm::ContractArtifacts::load(a.contracts_file));
  evm::HtlcSwap swap(plan, opts);
  const std::vector<std::pair<std::string, std::function<std::string()>>> steps = {
      {"initiate", [&] { return swap.initiate(); }},
      {"respond", [&] { return swap.respond(); }},
      {"claim_b", [&] { return swap.claim_b(); }},
      {"claim_a", [&] { return swap.claim_a(); }}};
  OutputSink sink(common.out);
  std::ostream& out = sink.stream();
  bool header = false;
  auto amount_text = [&](const std::string& asset, std::int64_t v) {
    return format_minor_units(v, cfg.assets.at(asset).scale) + " " + asset;
  };
  auto print = [&](const std::string& name, const std::string& party) {
    if (!header) out << "step,chain,party,amount,tx,block\n";
    header = true;
    const evm::SwapStep& st = swap.history().back();
    const bool on_a = st.chain == 'A';
    out << name << "," << (on_a ? a.name : b.name) << "," << party << ","
        << (on_a ? amount_text(give_asset, give) : amount_text(get_asset, get)) << "," << st.tx_hash << "," << st.block
        << "\n";
  };
  if (o.refund) {
    // Each leg still locked goes back to its sender; the contract refuses before the timelock.
    const evm::SwapStatus before = swap.state();
    if (before.a.state != evm::HtlcState::locked && before.b.state != evm::HtlcState::locked)
      throw input_error("evm swap " + o.swap_id + ": nothing to refund (leg A " + evm::htlc_state_name(before.a.state) +
                        ", leg B " + evm::htlc_state_name(before.b.state) + ")");
    try {
      if (before.b.state == evm::HtlcState::locked) {
        swap.refund_b();
        print("refund_b", o.responder);
      }
      if (before.a.state == evm::HtlcState::locked) {
        swap.refund_a();
        print("refund_a", o.initiator);
      }
    } catch (const evm::HtlcError& e) {
      throw input_error("evm swap " + o.swap_id + ": refund refused by the contract: " + e.reason);
    }
    return;
  }
  for (const auto& [name, run] : steps) {
    try {
      run();
    } catch (const evm::HtlcError& e) {
      throw input_error("evm swap " + o.swap_id + ": " + name + " refused by the contract: " + e.reason);
    } catch (const evm::SwapRefused& e) {
      throw input_error("evm swap " + o.swap_id + ": " + name + " refused: " + e.what());
    }
    print(name, name == "initiate" || name == "claim_b" ? o.initiator : o.responder);
    if (name == o.stop_after) break;
  }
  const evm::SwapStatus s = swap.state();
  if (!common.quiet)
    spdlog::info("evm swap {}: leg A ({} on {}) {}, leg B ({} on {}) {}{}", o.swap_id, amount_text(give_asset, give), a.name,
                 evm::htlc_state_name(s.a.state), amount_text(get_asset, get), b.name, evm::htlc_state_name(s.b.state),
                 o.stop_after.empty() ? std::string()
                                      : "; stopped after " + o.stop_after +
                                            ": a locked leg goes back to its sender after its timelock (--refund)");
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

  auto w = std::make_shared<EvmSwapOptions>();
  CLI::App* swap = cmd->add_subcommand(
      "swap", "Exchange two assets on two evm chains with hashed timelocks: both legs settle or neither (a CSV of "
              "the transactions)");
  swap->add_option("--chains", w->chains, "Chains file with both assets on evm chains that have an htlc_contract")->required();
  swap->add_option("--swap-id", w->swap_id, "The swap's id (its lock ids derive from it; used once)")->required();
  swap->add_option("--initiator", w->initiator, "The party paying --give on its chain (a member, or CCP)")->required();
  swap->add_option("--give", w->give, "ASSET=AMOUNT the initiator pays (decimal)")->required();
  swap->add_option("--responder", w->responder, "The party paying --get on the other chain (a member, or CCP)")->required();
  swap->add_option("--get", w->get, "ASSET=AMOUNT the responder pays (decimal)")->required();
  swap->add_option("--initiator-timelock", w->initiator_timelock, "Seconds the initiator's lock holds")->capture_default_str();
  swap->add_option("--responder-timelock", w->responder_timelock, "Seconds the responder's lock holds")->capture_default_str();
  swap->add_option("--margin", w->margin, "Seconds the responder keeps to claim after its own timelock (initiator "
                                          "timelock >= responder timelock + margin)")->capture_default_str();
  swap->add_option("--stop-after", w->stop_after, "Stop after this step (initiate, respond, claim_b): the failure paths")
      ->check(CLI::IsMember({"initiate", "respond", "claim_b"}));
  swap->add_flag("--refund", w->refund, "Take back the legs of this swap still locked (after their timelocks)");
  swap->callback([&common, w] { run_swap(common, *w); });
}

}  // namespace marginet::cli
