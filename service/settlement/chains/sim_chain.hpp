#pragma once
// `sim`: a deterministic simulated chain behind the ChainAdapter interface (SPEC §8).
//
// - Blocks: every `block_time` seconds of the scheduler's clock; with block_time 0 a block is
//   mined at each poll while there is work (a pending transfer or an unfinalised one), as dev
//   chains auto-mine. At most `max_transfers_per_block` transfers per block (0: no limit).
// - Finality: a transfer included at height h has height - h + 1 confirmations; it is final at
//   `finality_depth`.
// - Failures: a transfer fails when its sender lacks the funds, when the sender is listed in
//   `failing_members`, or with probability `failure_rate` (decided by a hash of seed and key).
// - Reorgs: at each block slot, with probability `reorg_probability`, the last 1..reorg_depth
//   blocks are dropped instead of mining (their transfers go back to the mempool and their
//   balance effects are undone); reorg_depth must be below finality_depth. inject_reorg() forces one.
// - Determinism: every random decision is a hash of (seed, what, block slot or transfer key),
//   so the same calls give the same chain, also across a restart from the persisted state.
// - Persistence (optional): the state lives in a SQLite database (tables sim_*), written in one
//   transaction per poll; submissions between polls are volatile, like a mempool.
// - Balances: int64 minor units per (address, asset). Members are funded lazily with
//   `member_funding` on first sight; the CCP wallet starts with `ccp_funding`.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "service/settlement/chain_adapter.hpp"

namespace marginet {

class SqliteDb;

struct SimChainConfig {
  std::string name = "sim";
  std::vector<std::string> assets;
  double block_time = 0;
  std::uint32_t finality_depth = 1;
  std::uint64_t seed = 1;
  double failure_rate = 0;
  double reorg_probability = 0;
  std::uint32_t reorg_depth = 0;
  std::size_t max_transfers_per_block = 0;
  std::string ccp_address = "CCP";
  std::map<std::string, std::int64_t> member_funding;  // asset -> minor units
  std::map<std::string, std::int64_t> ccp_funding;     // asset -> minor units
  std::vector<std::string> failing_members;
};

class SimChain final : public ChainAdapter {
 public:
  /// `state`: where the chain persists (nullptr: in memory only). Loads persisted state when
  /// present. input_error when the configuration is inconsistent.
  explicit SimChain(SimChainConfig config, SqliteDb* state = nullptr);

  const std::string& name() const override { return cfg_.name; }
  const std::vector<std::string>& assets() const override { return cfg_.assets; }
  std::uint32_t finality_depth() const override { return cfg_.finality_depth; }
  double block_time() const override { return cfg_.block_time; }
  std::string ccp_address(const std::string& asset) const override;
  std::string member_address(const std::string& member, const std::string& asset) const override;
  TransferStatus submit(const TransferRequest& request) override;
  void poll(double now) override;
  TransferStatus status(const std::string& key) const override;
  std::uint64_t height() const override { return height_; }
  std::int64_t balance(const std::string& address, const std::string& asset) const override;

  // Failure injection and inspection (tests, demos).
  void inject_reorg(std::uint32_t depth);  // at the next poll, instead of a block
  void fail_transfers_from(const std::string& address);
  void set_balance(const std::string& address, const std::string& asset, std::int64_t amount);
  std::size_t mempool_size() const { return mempool_.size(); }
  std::uint64_t reorgs() const { return reorgs_; }
  const SimChainConfig& config() const { return cfg_; }

 private:
  struct Transfer {
    TransferRequest req;
    TransferState state = TransferState::pending;  // pending | included | failed
    std::uint64_t block_height = 0;
    std::string reason;
    std::int64_t ord = 0;  // submission order
  };

  void load();
  void persist();
  void ensure_funded(const std::string& address, const std::string& asset);
  void mine_block();
  void reorg(std::uint32_t depth);
  bool has_work() const;
  std::int64_t& bal(const std::string& address, const std::string& asset);
  double unit(const char* what, std::uint64_t a, const std::string& b) const;

  SimChainConfig cfg_;
  SqliteDb* db_;
  std::unordered_map<std::string, Transfer> transfers_;
  std::map<std::int64_t, std::string> mempool_;                 // ord -> key
  std::map<std::uint64_t, std::vector<std::string>> blocks_;    // height -> keys (successful)
  std::map<std::pair<std::string, std::string>, std::int64_t> balances_;
  std::set<std::string> failing_;
  std::uint64_t height_ = 0;
  std::uint64_t slots_ = 0;       // block slots elapsed (mined or reorged)
  std::uint64_t reorgs_ = 0;
  std::int64_t next_ord_ = 1;
  std::uint64_t last_tx_height_ = 0;
  std::optional<double> genesis_;
  std::uint32_t injected_reorg_ = 0;
  bool initialised_ = false;  // CCP funded
  std::set<std::string> dirty_transfers_;
  std::set<std::pair<std::string, std::string>> dirty_balances_;
  std::string persisted_meta_;  // what the database holds of the counters (skip empty commits)
};

}  // namespace marginet
