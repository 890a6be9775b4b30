#include "service/settlement/chains/sim_chain.hpp"

#include <cmath>
#include <functional>

#include "models/errors.hpp"
#include "service/settlement/ledger.hpp"

namespace marginet {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a: a stable string hash (std::hash is not guaranteed stable across builds).
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

const char* state_text(TransferState s) { return transfer_state_name(s); }

TransferState state_from(const std::string& s) {
  if (s == "pending") return TransferState::pending;
  if (s == "included") return TransferState::included;
  if (s == "failed") return TransferState::failed;
  MARGINET_FAIL("sim chain: unknown persisted transfer state '" + s + "'");
}

}  // namespace

SimChain::SimChain(SimChainConfig config, SqliteDb* state) : cfg_(std::move(config)), db_(state) {
  const std::string where = "chain '" + cfg_.name + "'";
  if (cfg_.name.empty()) throw input_error("", 0, "name", "a sim chain needs a name");
  if (cfg_.finality_depth < 1) throw input_error("", 0, "finality_depth", where + ": must be at least 1");
  if (cfg_.reorg_depth >= cfg_.finality_depth && cfg_.reorg_probability > 0)
    throw input_error("", 0, "reorg_depth", where + ": must be below finality_depth");
  if (!(cfg_.block_time >= 0) || !std::isfinite(cfg_.block_time))
    throw input_error("", 0, "block_time", where + ": must be a finite number >= 0");
  if (!(cfg_.failure_rate >= 0 && cfg_.failure_rate <= 1))
    throw input_error("", 0, "failure_rate", where + ": must be in [0, 1]");
  if (!(cfg_.reorg_probability >= 0 && cfg_.reorg_probability <= 1))
    throw input_error("", 0, "reorg_probability", where + ": must be in [0, 1]");
  for (const auto& m : cfg_.failing_members) failing_.insert(m);
  if (db_) {
    db_->exec(
        "CREATE TABLE IF NOT EXISTS sim_meta (chain TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
        " PRIMARY KEY(chain, key));"
        "CREATE TABLE IF NOT EXISTS sim_transfers (chain TEXT NOT NULL, key TEXT NOT NULL, asset TEXT NOT NULL,"
        " from_addr TEXT NOT NULL, to_addr TEXT NOT NULL, amount INTEGER NOT NULL, state TEXT NOT NULL,"
        " block_height INTEGER NOT NULL, reason TEXT NOT NULL, ord INTEGER NOT NULL, PRIMARY KEY(chain, key));"
        "CREATE TABLE IF NOT EXISTS sim_balances (chain TEXT NOT NULL, address TEXT NOT NULL,"
        " asset TEXT NOT NULL, amount INTEGER NOT NULL, PRIMARY KEY(chain, address, asset));");
    load();
  }
  if (!initialised_) {
    for (const auto& [asset, amount] : cfg_.ccp_funding) {
      bal(cfg_.ccp_address, asset) = amount;
      dirty_balances_.insert({cfg_.ccp_address, asset});
    }
    initialised_ = true;
  }
}

std::string SimChain::ccp_address(const std::string&) const { return cfg_.ccp_address; }
std::string SimChain::member_address(const std::string& member, const std::string&) const { return member; }

std::int64_t& SimChain::bal(const std::string& address, const std::string& asset) {
  return balances_[{address, asset}];
}

std::int64_t SimChain::balance(const std::string& address, const std::string& asset) const {
  auto it = balances_.find({address, asset});
  return it == balances_.end() ? 0 : it->second;
}

void SimChain::ensure_funded(const std::string& address, const std::string& asset) {
  if (address == cfg_.ccp_address) return;
  if (balances_.count({address, asset})) return;
  auto f = cfg_.member_funding.find(asset);
  bal(address, asset) = f == cfg_.member_funding.end() ? 0 : f->second;
  dirty_balances_.insert({address, asset});
}

double SimChain::unit(const char* what, std::uint64_t a, const std::string& b) const {
  const std::uint64_t h = splitmix64(cfg_.seed ^ splitmix64(fnv1a(what) ^ splitmix64(a ^ fnv1a(b))));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

TransferStatus SimChain::submit(const TransferRequest& request) {
  auto it = transfers_.find(request.key);
  if (it != transfers_.end()) return status(request.key);  // idempotent
  if (request.amount <= 0) throw input_error("", 0, "amount", "transfer " + request.key + ": amount must be > 0");
  ensure_funded(request.from, request.asset);
  ensure_funded(request.to, request.asset);
  Transfer t;
  t.req = request;
  t.ord = next_ord_++;
  mempool_.emplace(t.ord, request.key);
  transfers_.emplace(request.key, std::move(t));
  dirty_transfers_.insert(request.key);
  return status(request.key);
}

TransferStatus SimChain::status(const std::string& key) const {
  TransferStatus s;
  auto it = transfers_.find(key);
  if (it == transfers_.end()) return s;
  const Transfer& t = it->second;
  s.state = t.state;
  s.reason = t.reason;
  if (t.state == TransferState::included) {
    s.block_height = t.block_height;
    s.confirmations = height_ - t.block_height + 1;
    if (s.confirmations >= cfg_.finality_depth) s.state = TransferState::final;
  }
  return s;
}

bool SimChain::has_work() const {
  return !mempool_.empty() || (last_tx_height_ > 0 && height_ < last_tx_height_ + cfg_.finality_depth - 1);
}

void SimChain::inject_reorg(std::uint32_t depth) { injected_reorg_ = depth; }

void SimChain::fail_transfers_from(const std::string& address) { failing_.insert(address); }

void SimChain::set_balance(const std::string& address, const std::string& asset, std::int64_t amount) {
  bal(address, asset) = amount;
  dirty_balances_.insert({address, asset});
}

void SimChain::mine_block() {
  ++height_;
  std::vector<std::string>& block = blocks_[height_];
  std::size_t taken = 0;
  while (!mempool_.empty() && (cfg_.max_transfers_per_block == 0 || taken < cfg_.max_transfers_per_block)) {
    const std::string key = mempool_.begin()->second;
    mempool_.erase(mempool_.begin());
    ++taken;
    Transfer& t = transfers_.at(key);
    dirty_transfers_.insert(key);
    const TransferRequest& r = t.req;
    if (failing_.count(r.from)) {
      t.state = TransferState::failed;
      t.reason = "sender " + r.from + " fails every transfer (injected)";
    } else if (cfg_.failure_rate > 0 && unit("fail", 0, key) < cfg_.failure_rate) {
      t.state = TransferState::failed;
      t.reason = "transfer failed (injected, failure_rate)";
    } else if (bal(r.from, r.asset) < r.amount) {
      t.state = TransferState::failed;
      t.reason = "insufficient funds: " + r.from + " holds " + std::to_string(bal(r.from, r.asset)) + " " +
                 r.asset + " minor units, needs " + std::to_string(r.amount);
    } else {
      bal(r.from, r.asset) -= r.amount;
      bal(r.to, r.asset) += r.amount;
      dirty_balances_.insert({r.from, r.asset});
      dirty_balances_.insert({r.to, r.asset});
      t.state = TransferState::included;
      t.block_height = height_;
      block.push_back(key);
      last_tx_height_ = height_;
    }
  }
}

void SimChain::reorg(std::uint32_t depth) {
  // Never past a final block: at most finality_depth - 1 blocks.
  const std::uint64_t max_depth = std::min<std::uint64_t>(height_, cfg_.finality_depth - 1);
  const std::uint64_t k = std::min<std::uint64_t>(depth, max_depth);
  if (k == 0) return;
  ++reorgs_;
  for (std::uint64_t i = 0; i < k; ++i) {
    auto it = blocks_.find(height_);
    if (it != blocks_.end()) {
      for (auto kit = it->second.rbegin(); kit != it->second.rend(); ++kit) {
        Transfer& t = transfers_.at(*kit);
        bal(t.req.from, t.req.asset) += t.req.amount;
        bal(t.req.to, t.req.asset) -= t.req.amount;
        dirty_balances_.insert({t.req.from, t.req.asset});
        dirty_balances_.insert({t.req.to, t.req.asset});
        t.state = TransferState::pending;
        t.block_height = 0;
        mempool_.emplace(t.ord, *kit);
        dirty_transfers_.insert(*kit);
      }
      blocks_.erase(it);
    }
    --height_;
  }
}

void SimChain::poll(double now) {
  if (!genesis_) genesis_ = now;
  if (injected_reorg_ > 0) {
    reorg(injected_reorg_);
    injected_reorg_ = 0;
  } else {
    std::uint64_t due = 0;
    if (cfg_.block_time > 0) {
      const double elapsed = now - *genesis_;
      const auto target = elapsed > 0 ? static_cast<std::uint64_t>(std::floor(elapsed / cfg_.block_time)) : 0;
      due = target > slots_ ? target - slots_ : 0;
    } else {
      due = has_work() ? 1 : 0;
    }
    // A long idle gap: empty blocks only add height; mine them in bulk.
    while (due > 0) {
      if (!has_work()) {  // empty blocks: only the height moves (a reorg of them changes nothing)
        height_ += due;
        slots_ += due;
        break;
      }
      --due;
      ++slots_;
      if (cfg_.reorg_probability > 0 && cfg_.reorg_depth > 0 && height_ > 0 &&
          unit("reorg", slots_, cfg_.name) < cfg_.reorg_probability) {
        const auto d = 1 + static_cast<std::uint32_t>(unit("depth", slots_, cfg_.name) * cfg_.reorg_depth);
        reorg(std::min(d, cfg_.reorg_depth));
      } else {
        mine_block();
      }
    }
  }
  persist();
}

void SimChain::load() {
  SqliteStatement meta(*db_, "SELECT key, value FROM sim_meta WHERE chain = ?");
  meta.bind(1, cfg_.name);
  while (meta.step()) {
    const std::string k = meta.text(0), v = meta.text(1);
    if (k == "height") height_ = std::stoull(v);
    else if (k == "slots") slots_ = std::stoull(v);
    else if (k == "reorgs") reorgs_ = std::stoull(v);
    else if (k == "next_ord") next_ord_ = std::stoll(v);
    else if (k == "last_tx_height") last_tx_height_ = std::stoull(v);
    else if (k == "genesis") genesis_ = std::stod(v);
    else if (k == "initialised") initialised_ = v == "1";
  }
  SqliteStatement tr(*db_,
                     "SELECT key, asset, from_addr, to_addr, amount, state, block_height, reason, ord"
                     " FROM sim_transfers WHERE chain = ? ORDER BY ord");
  tr.bind(1, cfg_.name);
  while (tr.step()) {
    Transfer t;
    t.req = {tr.text(0), tr.text(1), tr.text(2), tr.text(3), tr.int64(4)};
    t.state = state_from(tr.text(5));
    t.block_height = static_cast<std::uint64_t>(tr.int64(6));
    t.reason = tr.text(7);
    t.ord = tr.int64(8);
    if (t.state == TransferState::pending) mempool_.emplace(t.ord, t.req.key);
    if (t.state == TransferState::included) blocks_[t.block_height].push_back(t.req.key);
    transfers_.emplace(t.req.key, std::move(t));
  }
  SqliteStatement b(*db_, "SELECT address, asset, amount FROM sim_balances WHERE chain = ?");
  b.bind(1, cfg_.name);
  while (b.step()) balances_[{b.text(0), b.text(1)}] = b.int64(2);
}

void SimChain::persist() {
  const std::string meta = std::to_string(height_) + "/" + std::to_string(slots_) + "/" + std::to_string(reorgs_) +
                           "/" + std::to_string(next_ord_) + "/" + std::to_string(last_tx_height_) + "/" +
                           (genesis_ ? "g" : "-") + (initialised_ ? "i" : "-");
  if (!db_ || (dirty_transfers_.empty() && dirty_balances_.empty() && meta == persisted_meta_)) {
    dirty_transfers_.clear();
    dirty_balances_.clear();
    return;
  }
  db_->begin();
  try {
    SqliteStatement t(*db_,
                      "INSERT OR REPLACE INTO sim_transfers(chain, key, asset, from_addr, to_addr, amount, state,"
                      " block_height, reason, ord) VALUES (?,?,?,?,?,?,?,?,?,?)");
    for (const std::string& key : dirty_transfers_) {
      const Transfer& x = transfers_.at(key);
      t.bind(1, cfg_.name).bind(2, key).bind(3, x.req.asset).bind(4, x.req.from).bind(5, x.req.to);
      t.bind(6, x.req.amount).bind(7, std::string_view(state_text(x.state)));
      t.bind(8, static_cast<std::int64_t>(x.block_height)).bind(9, x.reason).bind(10, x.ord);
      t.run();
    }
    SqliteStatement b(*db_, "INSERT OR REPLACE INTO sim_balances(chain, address, asset, amount) VALUES (?,?,?,?)");
    for (const auto& [addr, asset] : dirty_balances_) {
      b.bind(1, cfg_.name).bind(2, addr).bind(3, asset).bind(4, balance(addr, asset));
      b.run();
    }
    SqliteStatement m(*db_, "INSERT OR REPLACE INTO sim_meta(chain, key, value) VALUES (?,?,?)");
    auto put = [&](const char* k, const std::string& v) {
      m.bind(1, cfg_.name).bind(2, std::string_view(k)).bind(3, v);
      m.run();
    };
    put("height", std::to_string(height_));
    put("slots", std::to_string(slots_));
    put("reorgs", std::to_string(reorgs_));
    put("next_ord", std::to_string(next_ord_));
    put("last_tx_height", std::to_string(last_tx_height_));
    if (genesis_) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", *genesis_);
      put("genesis", buf);
    }
    put("initialised", initialised_ ? "1" : "0");
    db_->commit();
  } catch (...) {
    db_->rollback();
    throw;
  }
  dirty_transfers_.clear();
  dirty_balances_.clear();
  persisted_meta_ = meta;
}

}  // namespace marginet
