#pragma once
// `evm`: the settlement scheduler's chain adapter for an Ethereum node (SPEC §13,
// docs/settlement.md "On an EVM chain"), behind the same ChainAdapter interface as `sim`.
//
// - Batches. Transfers submitted between two polls are grouped by payer (each member's
//   pay-ins together, the CCP's pay-outs together; at most max_legs_per_batch legs) and sent
//   as one DvpSettlement.settle(batchId, ledgerSize, ledgerRoot, legs) from the CCP's account:
//   every leg of a batch moves or none does. A payer short of funds reverts its own batch only.
// - Exactly once. A batch is recorded (its id, legs and keys, in the state database, committed)
//   before it is sent; its id is Keccak-256 over the chain, the contract and the transfer keys.
//   The contract settles an id once, so sending a batch again (after a crash, or when the node
//   lost the transaction) can never pay twice. A key belongs to one batch for good.
// - Status. settledAt(batchId) on the contract says where a batch stands on the current best
//   chain: the block that settled it (confirmations = head - block + 1; final at
//   finality_depth, and final is kept), or 0: still pending, or dropped by a reorg (the
//   transaction is sent again when the node no longer knows it). A batch whose transaction
//   reverted is failed, with the decoded reason (LegFailed(index, from, to, amount), NotCcp,
//   ...), once the reverted transaction has finality_depth confirmations itself (a revert on a
//   block that a reorg can drop is not yet a failure: the scheduler would resubmit, and the
//   first transaction could still settle).
// - Ledger. note_ledger_head() gives the settlement ledger's committed tree head as the tick
//   starts; every batch sent in that poll carries it (its instructions' `submitted` entries are
//   in it). anchor_cycle() puts a closed cycle's Merkle root on chain (CycleAnchored), once.
// - Memory. With a state file, batches that are final or failed are kept there only (status()
//   reads them back): memory holds the open work, however long the scheduler runs.
// - Node outages. poll() never throws for the node's sake: an unreachable node or a refused
//   request is logged (once per distinct message) and retried at the next poll; transfers stay
//   pending meanwhile, and the scheduler's deadlines apply as for any slow chain.
// - dev_mine (a local dev node only): one block is mined per poll while a batch or anchor is
//   not final, as `sim` mines when there is work.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "service/settlement/chain_adapter.hpp"
#include "service/settlement/evm/evm_chain_config.hpp"

namespace marginet {

class SqliteDb;
class SqliteStatement;

namespace evm {
class EvmNode;
class EvmSigner;
class ContractArtifacts;
}  // namespace evm

enum class EvmBatchState : std::uint8_t { unsent, sent, included, final, failed };
const char* evm_batch_state_name(EvmBatchState s);

struct EvmBatchInfo {
  std::string batch_id;  // 0x + 64 hex
  std::int64_t seq = 0;
  std::string payer;
  std::vector<std::string> keys;
  std::uint64_t ledger_size = 0;
  std::string ledger_root;  // 0x + 64 hex
  std::string tx_hash;      // the last transaction sent for it
  EvmBatchState state = EvmBatchState::unsent;
  std::uint64_t block = 0;     // settling block (included/final), reverting block (failed)
  std::uint64_t failed_at = 0;  // a reverted transaction's block, waiting for finality
  std::string reason;
  int sends = 0;               // transactions sent (this process)
};

class EvmChain final : public ChainAdapter {
 public:
  /// `state`: where batches and anchors persist (nullptr: memory only; tests). `signer`:
  /// nullptr for eth_sendTransaction from the node's unlocked ccp_account (a local node).
  /// input_error when the configuration is inconsistent (addresses, assets without a token).
  EvmChain(EvmChainConfig config, SqliteDb* state = nullptr, std::shared_ptr<evm::EvmSigner> signer = nullptr);
  ~EvmChain() override;

  const std::string& name() const override { return cfg_.name; }
  const std::vector<std::string>& assets() const override { return cfg_.assets; }
  std::uint32_t finality_depth() const override { return cfg_.finality_depth; }
  double block_time() const override { return 0; }
  std::string ccp_address(const std::string& asset) const override;
  std::string member_address(const std::string& member, const std::string& asset) const override;
  TransferStatus submit(const TransferRequest& request) override;
  void poll(double now) override;
  TransferStatus status(const std::string& key) const override;
  std::uint64_t height() const override { return head_; }
  std::int64_t balance(const std::string& address, const std::string& asset) const override;
  void note_ledger_head(std::uint64_t size, const std::string& root_hex) override;
  void anchor_cycle(const std::string& cycle_id, const std::string& root_hex) override;
  bool busy() const override;

  // Inspection (tests, benchmarks, `scheduler status`).
  const EvmChainConfig& config() const { return cfg_; }
  std::vector<EvmBatchInfo> batches() const;
  std::optional<EvmBatchInfo> batch_of(const std::string& key) const;
  /// Batches held in memory (with a state file: the ones not yet final or failed).
  std::size_t batches_in_memory() const { return batches_.size(); }
  /// Cycles whose anchor is final on chain.
  std::set<std::string> anchored_cycles() const;
  /// The last error the node gave (empty after a clean poll).
  const std::string& last_error() const { return last_error_; }
  evm::EvmNode& node() const { return *node_; }
  /// Decodes revert data with the contracts' errors (otherwise shown as hex).
  void set_artifacts(std::shared_ptr<const evm::ContractArtifacts> artifacts) { artifacts_ = std::move(artifacts); }

 private:
  struct Transfer {
    TransferRequest req;
    std::string batch_id;  // "" while queued (volatile) or when refused before batching
    std::string reason;    // refused before batching
  };
  struct Anchor {
    std::string root, tx_hash;
    bool done = false;
  };

  void create_schema();
  void load();
  EvmBatchInfo batch_from_row(SqliteStatement& row) const;
  /// A batch from the state file (with its keys when asked), found by one of its keys.
  std::optional<EvmBatchInfo> stored_batch_of(const std::string& key, bool with_keys) const;
  TransferStatus batch_status(const EvmBatchInfo& b) const;
  void forget_closed();
  void form_batches();
  void send_batch(EvmBatchInfo& b);
  void track_batches();
  void track_anchors();
  void save_batch(const EvmBatchInfo& b);
  std::string settle_calldata(const EvmBatchInfo& b) const;
  std::string describe(const std::string& revert_data) const;
  void note_error(const std::string& message);

  EvmChainConfig cfg_;
  SqliteDb* db_;
  std::unique_ptr<evm::EvmNode> node_;
  std::shared_ptr<evm::EvmSigner> signer_;
  std::shared_ptr<const evm::ContractArtifacts> artifacts_;
  std::unordered_map<std::string, Transfer> transfers_;
  std::vector<std::string> queue_;               // keys submitted since the last poll
  std::map<std::string, EvmBatchInfo> batches_;  // batch id -> batch
  std::map<std::string, Anchor> anchors_;        // cycle id -> anchor
  std::uint64_t head_ = 0;
  std::int64_t next_seq_ = 1;
  std::uint64_t ledger_size_ = 0;
  std::string ledger_root_ = std::string("0x") + std::string(64, '0');
  std::string last_error_;
  std::string logged_error_;
  mutable std::unique_ptr<SqliteStatement> stored_lookup_;  // prepared once
};

}  // namespace marginet
