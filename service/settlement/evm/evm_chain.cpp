#include "service/settlement/evm/evm_chain.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "models/errors.hpp"
#include "service/db/sqlite.hpp"
#include "service/settlement/evm/abi.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "service/settlement/evm/keccak.hpp"

namespace marginet {

using nlohmann::json;
using namespace marginet::evm;

namespace {

constexpr std::uint64_t kGasBase = 100'000;
constexpr std::uint64_t kGasPerLeg = 70'000;

constexpr const char* kBatchColumns =
    "SELECT batch_id, seq, payer, ledger_size, ledger_root, tx_hash, state, block, failed_at, reason FROM evm_batches";

EvmBatchState parse_batch_state(const std::string& s) {
  for (auto st : {EvmBatchState::unsent, EvmBatchState::sent, EvmBatchState::included, EvmBatchState::final,
                  EvmBatchState::failed})
    if (s == evm_batch_state_name(st)) return st;
  MARGINET_FAIL("evm chain: unknown persisted batch state '" + s + "'");
}

bool open_state(EvmBatchState s) { return s == EvmBatchState::sent || s == EvmBatchState::included; }

}  // namespace

const char* evm_batch_state_name(EvmBatchState s) {
  switch (s) {
    case EvmBatchState::unsent: return "unsent";
    case EvmBatchState::sent: return "sent";
    case EvmBatchState::included: return "included";
    case EvmBatchState::final: return "final";
    case EvmBatchState::failed: return "failed";
  }
  return "?";
}

EvmChain::EvmChain(EvmChainConfig config, SqliteDb* state, std::shared_ptr<EvmSigner> signer)
    : cfg_(std::move(config)), db_(state), signer_(std::move(signer)) {
  const std::string src = "evm chain " + cfg_.name;
  if (cfg_.rpc_url.empty()) throw input_error(src + ": rpc_url is required");
  if (cfg_.finality_depth < 1) throw input_error(src + ": finality_depth must be >= 1");
  if (cfg_.max_legs_per_batch < 1 || cfg_.max_legs_per_batch > 400)
    throw input_error(src + ": max_legs_per_batch must be in 1..400 (a block's gas)");
  try {
    cfg_.ccp_account = normalize_address(cfg_.ccp_account, src + ": ccp_account");
    cfg_.dvp_contract = normalize_address(cfg_.dvp_contract, src + ": dvp_contract");
    for (auto& [asset, token] : cfg_.tokens) token = normalize_address(token, src + ": token of " + asset);
    for (auto& [member, address] : cfg_.members) address = normalize_address(address, src + ": member " + member);
  } catch (const std::invalid_argument& e) {
    throw input_error(e.what());
  }
  for (const auto& a : cfg_.assets)
    if (!cfg_.tokens.count(a)) throw input_error(src + ": asset " + a + " has no token address (tokens)");
  node_ = std::make_unique<EvmNode>(cfg_.rpc_url, cfg_.rpc_timeout_seconds);
  if (!signer_) signer_ = std::make_shared<NodeAccountSigner>();
  if (db_) {
    create_schema();
    load();
  }
}

EvmChain::~EvmChain() = default;

void EvmChain::create_schema() {
  db_->exec(
      "CREATE TABLE IF NOT EXISTS evm_batches(chain TEXT NOT NULL, batch_id TEXT NOT NULL, seq INTEGER NOT NULL,"
      " payer TEXT NOT NULL, ledger_size INTEGER NOT NULL, ledger_root TEXT NOT NULL, tx_hash TEXT NOT NULL,"
      " state TEXT NOT NULL, block INTEGER NOT NULL, failed_at INTEGER NOT NULL, reason TEXT NOT NULL,"
      " PRIMARY KEY(chain, batch_id));"
      "CREATE TABLE IF NOT EXISTS evm_transfers(chain TEXT NOT NULL, key TEXT NOT NULL, batch_id TEXT NOT NULL,"
      " ord INTEGER NOT NULL, asset TEXT NOT NULL, from_addr TEXT NOT NULL, to_addr TEXT NOT NULL,"
      " amount INTEGER NOT NULL, PRIMARY KEY(chain, key));"
      "CREATE TABLE IF NOT EXISTS evm_anchors(chain TEXT NOT NULL, cycle_id TEXT NOT NULL, root TEXT NOT NULL,"
      " tx_hash TEXT NOT NULL, done INTEGER NOT NULL, PRIMARY KEY(chain, cycle_id));");
}

void EvmChain::load() {
  SqliteStatement b(*db_,
                    std::string(kBatchColumns) + " WHERE chain=? AND state IN ('unsent','sent','included') ORDER BY seq");
  b.bind(1, cfg_.name);
  while (b.step()) {
    EvmBatchInfo info = batch_from_row(b);
    batches_[info.batch_id] = std::move(info);
  }
  {
    SqliteStatement q(*db_, "SELECT COALESCE(MAX(seq), 0) + 1 FROM evm_batches WHERE chain=?");
    q.bind(1, cfg_.name);
    q.step();
    next_seq_ = q.int64(0);
  }
  SqliteStatement t(*db_,
                    "SELECT t.key, t.batch_id, t.asset, t.from_addr, t.to_addr, t.amount FROM evm_transfers t"
                    " JOIN evm_batches b ON b.chain = t.chain AND b.batch_id = t.batch_id"
                    " WHERE t.chain=? AND b.state IN ('unsent','sent','included') ORDER BY t.ord");
  t.bind(1, cfg_.name);
  while (t.step()) {
    Transfer tr;
    tr.req.key = t.text(0);
    tr.batch_id = t.text(1);
    tr.req.asset = t.text(2);
    tr.req.from = t.text(3);
    tr.req.to = t.text(4);
    tr.req.amount = t.int64(5);
    auto it = batches_.find(tr.batch_id);
    if (it == batches_.end()) MARGINET_FAIL("evm chain: transfer " + tr.req.key + " of an unknown batch");
    it->second.keys.push_back(tr.req.key);
    transfers_[tr.req.key] = std::move(tr);
  }
  SqliteStatement a(*db_, "SELECT cycle_id, root, tx_hash, done FROM evm_anchors WHERE chain=? AND done=0");
  a.bind(1, cfg_.name);
  while (a.step()) anchors_[a.text(0)] = {a.text(1), a.text(2), a.int64(3) != 0};
}

EvmBatchInfo EvmChain::batch_from_row(SqliteStatement& b) const {
  EvmBatchInfo info;
  info.batch_id = b.text(0);
  info.seq = b.int64(1);
  info.payer = b.text(2);
  info.ledger_size = static_cast<std::uint64_t>(b.int64(3));
  info.ledger_root = b.text(4);
  info.tx_hash = b.text(5);
  info.state = parse_batch_state(b.text(6));
  info.block = static_cast<std::uint64_t>(b.int64(7));
  info.failed_at = static_cast<std::uint64_t>(b.int64(8));
  info.reason = b.text(9);
  return info;
}

std::optional<EvmBatchInfo> EvmChain::stored_batch_of(const std::string& key, bool with_keys) const {
  if (!db_) return std::nullopt;
  // One indexed lookup: status() asks once per instruction as it turns final or failed.
  if (!stored_lookup_)
    stored_lookup_ = std::make_unique<SqliteStatement>(
        *db_,
        "SELECT b.batch_id, b.seq, b.payer, b.ledger_size, b.ledger_root, b.tx_hash, b.state, b.block, b.failed_at,"
        " b.reason FROM evm_transfers t JOIN evm_batches b ON b.chain = t.chain AND b.batch_id = t.batch_id"
        " WHERE t.chain=? AND t.key=?");
  SqliteStatement& q = *stored_lookup_;
  q.bind(1, cfg_.name).bind(2, key);
  if (!q.step()) {
    q.reset();
    return std::nullopt;
  }
  EvmBatchInfo info = batch_from_row(q);
  q.reset();
  if (with_keys) {
    SqliteStatement k(*db_, "SELECT key FROM evm_transfers WHERE chain=? AND batch_id=? ORDER BY ord");
    k.bind(1, cfg_.name).bind(2, info.batch_id);
    while (k.step()) info.keys.push_back(k.text(0));
  }
  return info;
}

void EvmChain::forget_closed() {
  // Final and failed batches live on in the state file only (status() reads them back): the
  // memory holds the open work, however long the scheduler runs.
  if (!db_) return;
  for (auto it = batches_.begin(); it != batches_.end();) {
    if (it->second.state == EvmBatchState::final || it->second.state == EvmBatchState::failed) {
      for (const auto& k : it->second.keys) transfers_.erase(k);
      it = batches_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = anchors_.begin(); it != anchors_.end();) it = it->second.done ? anchors_.erase(it) : std::next(it);
}

std::string EvmChain::ccp_address(const std::string&) const { return cfg_.ccp_account; }

std::string EvmChain::member_address(const std::string& member, const std::string&) const {
  auto it = cfg_.members.find(member);
  return it == cfg_.members.end() ? std::string() : it->second;
}

TransferStatus EvmChain::submit(const TransferRequest& request) {
  if (transfers_.count(request.key) || stored_batch_of(request.key, false)) return status(request.key);
  Transfer tr;
  tr.req = request;
  if (!cfg_.tokens.count(request.asset)) tr.reason = "asset " + request.asset + " is not settled on " + cfg_.name;
  else if (request.from.empty() || request.to.empty())
    tr.reason = "a member without an address on " + cfg_.name + " (members of the chains file)";
  else if (request.amount <= 0) tr.reason = "amount must be > 0";
  const bool refused = !tr.reason.empty();
  transfers_[request.key] = std::move(tr);
  if (!refused) queue_.push_back(request.key);
  return status(request.key);
}

TransferStatus EvmChain::status(const std::string& key) const {
  TransferStatus st;
  auto it = transfers_.find(key);
  if (it == transfers_.end()) {
    const std::optional<EvmBatchInfo> stored = stored_batch_of(key, false);  // a closed batch
    return stored ? batch_status(*stored) : st;                       // else unknown
  }
  if (!it->second.reason.empty()) {
    st.state = TransferState::failed;
    st.reason = it->second.reason;
    return st;
  }
  if (it->second.batch_id.empty()) {
    st.state = TransferState::pending;
    return st;
  }
  return batch_status(batches_.at(it->second.batch_id));
}

TransferStatus EvmChain::batch_status(const EvmBatchInfo& b) const {
  TransferStatus st;
  switch (b.state) {
    case EvmBatchState::unsent:
    case EvmBatchState::sent: st.state = TransferState::pending; break;
    case EvmBatchState::included:
    case EvmBatchState::final:
      st.state = b.state == EvmBatchState::final ? TransferState::final : TransferState::included;
      st.block_height = b.block;
      st.confirmations = head_ >= b.block ? head_ - b.block + 1 : 0;
      break;
    case EvmBatchState::failed:
      st.state = TransferState::failed;
      st.reason = "batch " + b.batch_id.substr(0, 18) + " reverted: " + b.reason;
      break;
  }
  return st;
}

void EvmChain::note_ledger_head(std::uint64_t size, const std::string& root_hex) {
  ledger_size_ = size;
  ledger_root_ = root_hex.rfind("0x", 0) == 0 ? root_hex : "0x" + root_hex;
}

void EvmChain::anchor_cycle(const std::string& cycle_id, const std::string& root_hex) {
  if (anchors_.count(cycle_id)) return;
  if (db_) {
    SqliteStatement q(*db_, "SELECT 1 FROM evm_anchors WHERE chain=? AND cycle_id=?");
    q.bind(1, cfg_.name).bind(2, cycle_id);
    if (q.step()) return;  // anchored (done) already
  }
  Anchor a;
  a.root = root_hex.rfind("0x", 0) == 0 ? root_hex : "0x" + root_hex;
  if (db_) {
    SqliteStatement ins(*db_, "INSERT OR IGNORE INTO evm_anchors(chain, cycle_id, root, tx_hash, done) VALUES (?,?,?,'',0)");
    ins.bind(1, cfg_.name).bind(2, cycle_id).bind(3, a.root);
    ins.run();
  }
  anchors_[cycle_id] = a;
}

void EvmChain::note_error(const std::string& message) {
  last_error_ = message;
  if (message != logged_error_) {
    spdlog::warn("evm chain {}: {} (retrying at each poll)", cfg_.name, message);
    logged_error_ = message;
  }
}

std::string EvmChain::describe(const std::string& revert_data) const {
  return artifacts_ ? artifacts_->describe_revert(revert_data)
                    : (revert_data.empty() ? "reverted without data" : "reverted: " + to_hex(revert_data));
}

void EvmChain::save_batch(const EvmBatchInfo& b) {
  if (!db_) return;
  SqliteStatement up(*db_, "UPDATE evm_batches SET tx_hash=?, state=?, block=?, failed_at=?, reason=? WHERE chain=? AND batch_id=?");
  up.bind(1, b.tx_hash).bind(2, std::string_view(evm_batch_state_name(b.state)));
  up.bind(3, static_cast<std::int64_t>(b.block)).bind(4, static_cast<std::int64_t>(b.failed_at)).bind(5, b.reason);
  up.bind(6, cfg_.name).bind(7, b.batch_id);
  up.run();
}

void EvmChain::form_batches() {
  // Group by payer, in submission order; at most max_legs_per_batch legs each.
  std::vector<std::string> payers;
  std::map<std::string, std::vector<std::string>> by_payer;
  for (const std::string& key : queue_) {
    const std::string& from = transfers_.at(key).req.from;
    if (!by_payer.count(from)) payers.push_back(from);
    by_payer[from].push_back(key);
  }
  std::vector<EvmBatchInfo> formed;
  for (const std::string& payer : payers) {
    const auto& keys = by_payer[payer];
    for (std::size_t i = 0; i < keys.size(); i += cfg_.max_legs_per_batch) {
      EvmBatchInfo b;
      b.keys.assign(keys.begin() + static_cast<std::ptrdiff_t>(i),
                    keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), i + cfg_.max_legs_per_batch)));
      std::string preimage = "marginet-batch-v1\n" + cfg_.name + "\n" + cfg_.dvp_contract;
      for (const auto& k : b.keys) preimage += "\n" + k;
      b.batch_id = keccak256_hex(preimage);
      b.seq = next_seq_ + static_cast<std::int64_t>(formed.size());
      b.payer = payer;
      b.ledger_size = ledger_size_;
      b.ledger_root = ledger_root_;
      formed.push_back(std::move(b));
    }
  }
  // Durable before anything is sent: after a crash the same batch (same id) is sent again.
  if (db_) {
    db_->begin();
    try {
      SqliteStatement ib(*db_,
                         "INSERT INTO evm_batches(chain, batch_id, seq, payer, ledger_size, ledger_root, tx_hash, state,"
                         " block, failed_at, reason) VALUES (?,?,?,?,?,?,'','unsent',0,0,'')");
      SqliteStatement it(*db_,
                         "INSERT INTO evm_transfers(chain, key, batch_id, ord, asset, from_addr, to_addr, amount)"
                         " VALUES (?,?,?,?,?,?,?,?)");
      for (const auto& b : formed) {
        ib.bind(1, cfg_.name).bind(2, b.batch_id).bind(3, b.seq).bind(4, b.payer);
        ib.bind(5, static_cast<std::int64_t>(b.ledger_size)).bind(6, b.ledger_root);
        ib.run();
        std::int64_t ord = 0;
        for (const auto& k : b.keys) {
          const TransferRequest& r = transfers_.at(k).req;
          it.bind(1, cfg_.name).bind(2, k).bind(3, b.batch_id).bind(4, b.seq * 1'000'000 + ord++);
          it.bind(5, r.asset).bind(6, r.from).bind(7, r.to).bind(8, r.amount);
          it.run();
        }
      }
      db_->commit();
    } catch (...) {
      db_->rollback();
      throw;  // nothing recorded: the queue stays, the next poll tries again
    }
  }
  for (auto& b : formed) {
    for (const auto& k : b.keys) transfers_.at(k).batch_id = b.batch_id;
    next_seq_ = std::max(next_seq_, b.seq + 1);
    batches_[b.batch_id] = std::move(b);
  }
  queue_.clear();
}

std::string EvmChain::settle_calldata(const EvmBatchInfo& b) const {
  std::vector<std::vector<std::string>> legs;
  legs.reserve(b.keys.size());
  for (const auto& k : b.keys) {
    const TransferRequest& r = transfers_.at(k).req;
    legs.push_back({abi_address(cfg_.tokens.at(r.asset)), abi_address(r.from), abi_address(r.to),
                    abi_uint(static_cast<std::uint64_t>(r.amount))});
  }
  return AbiCall("settle(bytes32,uint64,bytes32,(address,address,address,uint256)[])")
      .bytes32(b.batch_id)
      .uint(b.ledger_size)
      .bytes32(b.ledger_root)
      .tuple_array(legs)
      .bytes();
}

void EvmChain::send_batch(EvmBatchInfo& b) {
  TxRequest tx;
  tx.from = cfg_.ccp_account;
  tx.to = cfg_.dvp_contract;
  tx.data = settle_calldata(b);
  tx.gas = kGasBase + kGasPerLeg * b.keys.size();
  b.tx_hash = signer_->send(*node_, tx);
  ++b.sends;
  if (b.state == EvmBatchState::unsent) b.state = EvmBatchState::sent;
  save_batch(b);
  spdlog::debug("evm chain {}: batch {} ({} legs) sent as {}", cfg_.name, b.batch_id, b.keys.size(), b.tx_hash);
}

void EvmChain::track_batches() {
  std::vector<EvmBatchInfo*> open;
  for (auto& [id, b] : batches_)
    if (open_state(b.state)) open.push_back(&b);
  if (open.empty()) return;
  // One round trip for every open batch's settledAt.
  std::vector<std::pair<std::string, json>> reqs;
  for (EvmBatchInfo* b : open)
    reqs.emplace_back("eth_call", json::array({{{"to", cfg_.dvp_contract},
                                                 {"data", AbiCall("settledAt(bytes32)").bytes32(b->batch_id).hex()}},
                                                "latest"}));
  const std::vector<json> answers = node_->call_batch(reqs);
  for (std::size_t i = 0; i < open.size(); ++i) {
    EvmBatchInfo& b = *open[i];
    if (answers[i].is_object() && answers[i].contains("error"))
      throw EvmRpcError("settledAt: " + answers[i]["error"].dump(), 0, {});
    const auto settled = static_cast<std::uint64_t>(abi_to_int64(abi_word(from_hex(answers[i].get<std::string>()), 0), "settledAt"));
    const EvmBatchState before = b.state;
    const std::uint64_t block_before = b.block;
    if (settled != 0) {
      b.block = settled;
      b.failed_at = 0;
      b.state = head_ + 1 >= settled + cfg_.finality_depth ? EvmBatchState::final : EvmBatchState::included;
      if (b.state == EvmBatchState::final)
        spdlog::debug("evm chain {}: batch {} final at block {}", cfg_.name, b.batch_id, settled);
    } else {
      if (b.state == EvmBatchState::included) {
        b.state = EvmBatchState::sent;  // a reorg dropped the block that settled it
        b.block = 0;
      }
      const std::optional<TxReceipt> r = node_->receipt(b.tx_hash);
      if (r && !r->success) {
        // Why: the same call replayed on the state the transaction ran on.
        std::string why;
        try {
          node_->eth_call(cfg_.dvp_contract, settle_calldata(b), quantity(r->block_number - 1), cfg_.ccp_account);
          why = "reverted (the replay did not)";
        } catch (const EvmRpcError& e) {
          why = describe(e.revert_data);
        }
        if (why.rfind("BatchAlreadySettled", 0) == 0) {
          send_batch(b);  // settled by a transaction a reorg dropped since: send again
        } else if (head_ + 1 >= r->block_number + cfg_.finality_depth) {
          b.state = EvmBatchState::failed;
          b.block = r->block_number;
          b.reason = why + " (tx " + b.tx_hash + ")";
          spdlog::warn("evm chain {}: batch {} ({} legs) reverted: {}", cfg_.name, b.batch_id, b.keys.size(), why);
        } else {
          b.failed_at = r->block_number;  // wait until the revert itself is final
        }
      } else if (!r && !node_->transaction_known(b.tx_hash)) {
        send_batch(b);  // the node lost it (restart, reorg): same batch id, cannot pay twice
      }
    }
    if (b.state != before || b.block != block_before) save_batch(b);
  }
}

void EvmChain::track_anchors() {
  for (auto& [cycle, a] : anchors_) {
    if (a.done) continue;
    bool send = a.tx_hash.empty();
    if (!send) {
      const std::optional<TxReceipt> r = node_->receipt(a.tx_hash);
      if (r) {
        if (!r->success) {
          // Anchored already (a resend after a crash) is done; any other revert is logged.
          const std::string got = node_->eth_call(
              cfg_.dvp_contract, AbiCall("cycleRoot(bytes32)").bytes32(keccak256_hex(cycle)).bytes());
          if (abi_to_bytes32_hex(abi_word(got, 0)) != a.root)
            spdlog::error("evm chain {}: anchoring cycle {} reverted and the chain holds root {}", cfg_.name, cycle,
                          abi_to_bytes32_hex(abi_word(got, 0)));
        }
        if (head_ + 1 >= r->block_number + cfg_.finality_depth) a.done = true;
      } else if (!node_->transaction_known(a.tx_hash)) {
        send = true;
      }
    }
    if (send) {
      TxRequest tx{cfg_.ccp_account, cfg_.dvp_contract, AbiCall("anchor(string,bytes32)").string(cycle).bytes32(a.root).bytes(),
                   150'000};
      a.tx_hash = signer_->send(*node_, tx);
    }
    if (db_) {
      SqliteStatement up(*db_, "UPDATE evm_anchors SET tx_hash=?, done=? WHERE chain=? AND cycle_id=?");
      up.bind(1, a.tx_hash).bind(2, std::int64_t{a.done ? 1 : 0}).bind(3, cfg_.name).bind(4, cycle);
      up.run();
    }
  }
}

void EvmChain::poll(double) {
  try {
    if (!queue_.empty()) form_batches();
    for (auto& [id, b] : batches_)
      if (b.state == EvmBatchState::unsent) send_batch(b);
    bool work = false;
    for (const auto& [id, b] : batches_) work = work || open_state(b.state);
    for (const auto& [c, a] : anchors_) work = work || !a.done;
    if (cfg_.dev_mine && work) node_->mine(1);
    head_ = node_->block_number();
    track_batches();
    track_anchors();
    forget_closed();
    last_error_.clear();
    logged_error_.clear();
  } catch (const EvmRpcError& e) {
    note_error(std::string(e.what()) + (e.revert_data.empty() ? "" : ": " + describe(e.revert_data)));
  } catch (const EvmNodeUnreachable& e) {
    note_error(e.what());
  } catch (const std::out_of_range& e) {
    note_error(std::string("an answer of the node that does not decode: ") + e.what());
  } catch (const std::invalid_argument& e) {
    note_error(std::string("an answer of the node that does not decode: ") + e.what());
  } catch (const nlohmann::json::exception& e) {
    note_error(std::string("an answer of the node that does not decode: ") + e.what());
  }
}

std::int64_t EvmChain::balance(const std::string& address, const std::string& asset) const {
  auto it = cfg_.tokens.find(asset);
  if (it == cfg_.tokens.end()) throw input_error("evm chain " + cfg_.name + ": no token for asset " + asset);
  return token_balance(*node_, it->second, address);
}

bool EvmChain::busy() const {
  if (!queue_.empty()) return true;
  for (const auto& [id, b] : batches_)
    if (b.state != EvmBatchState::final && b.state != EvmBatchState::failed) return true;
  for (const auto& [c, a] : anchors_)
    if (!a.done) return true;
  return false;
}

std::vector<EvmBatchInfo> EvmChain::batches() const {
  std::vector<EvmBatchInfo> out;
  if (db_) {
    SqliteStatement q(*db_, std::string(kBatchColumns) + " WHERE chain=? ORDER BY seq");
    q.bind(1, cfg_.name);
    while (q.step()) {
      EvmBatchInfo info = batch_from_row(q);
      auto it = batches_.find(info.batch_id);
      if (it != batches_.end()) info = it->second;  // the same, with what is kept in memory only
      SqliteStatement k(*db_, "SELECT key FROM evm_transfers WHERE chain=? AND batch_id=? ORDER BY ord");
      k.bind(1, cfg_.name).bind(2, info.batch_id);
      info.keys.clear();
      while (k.step()) info.keys.push_back(k.text(0));
      out.push_back(std::move(info));
    }
    return out;
  }
  for (const auto& [id, b] : batches_) out.push_back(b);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  return out;
}

std::optional<EvmBatchInfo> EvmChain::batch_of(const std::string& key) const {
  auto it = transfers_.find(key);
  if (it == transfers_.end()) return stored_batch_of(key, true);
  if (it->second.batch_id.empty()) return std::nullopt;
  return batches_.at(it->second.batch_id);
}

std::set<std::string> EvmChain::anchored_cycles() const {
  std::set<std::string> out;
  if (db_) {
    SqliteStatement q(*db_, "SELECT cycle_id FROM evm_anchors WHERE chain=? AND done=1");
    q.bind(1, cfg_.name);
    while (q.step()) out.insert(q.text(0));
  }
  for (const auto& [c, a] : anchors_)
    if (a.done) out.insert(c);
  return out;
}

}  // namespace marginet
