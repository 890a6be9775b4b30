// Signed tree heads of the settlement ledger (ledger.hpp, signing.hpp): the Ed25519 key files,
// the incremental whole-ledger root, heads signed at cycle closes and published to LEDGER.heads,
// and what they catch that the hash chain alone cannot: a ledger truncated, emptied or rewritten
// whole (every hash and root recomputed) by someone who can write the file but holds no key.
// Through the library, the real binary (`keygen --signing`, `ledger verify --pubkey`, `ledger
// head`, `ledger prove`) and the shipped Python checker (scripts/verify_proof.py --head --pubkey).

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "models/errors.hpp"
#include "service/db/sqlite.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/merkle.hpp"
#include "service/settlement/signing.hpp"
#include "tests/run_command.hpp"

namespace {

using namespace marginet;
namespace fs = std::filesystem;
namespace mt = marginet::testing;
using json = nlohmann::json;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("marginet_heads_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string entry_body(const std::string& cycle, int i) {
  return json({{"instruction", cycle + "/M" + std::to_string(i) + "/BTC/in"}, {"to", "final"}}).dump();
}

/// Three cycles closed, one transaction each, heads published after each commit; c4 stays open
/// (one entry in c2's transaction, one after the last close). Returns the seq of each cycle.root
/// entry: the sizes of the three heads when a key is set.
std::vector<std::int64_t> fill_three_cycles(SqliteDb& db, Ledger& ledger) {
  std::vector<std::int64_t> root_seqs;
  for (int c = 1; c <= 3; ++c) {
    const std::string id = "c" + std::to_string(c);
    const std::string at = "2024-06-28T08:0" + std::to_string(c) + ":00Z";
    db.begin();
    for (int i = 0; i < 2 + c; ++i) {
      ledger.append(id, "instruction.state", at, entry_body(id, i));
      if (c == 2 && i == 1) ledger.append("c4", "instruction.state", at, entry_body("c4", 0));
    }
    ledger.close_cycle(id, at);
    root_seqs.push_back(ledger.size());
    db.commit();
    ledger.publish_heads();
  }
  db.begin();
  ledger.append("c4", "instruction.state", "2024-06-28T08:04:00Z", entry_body("c4", 1));
  db.commit();
  return root_seqs;
}

/// The whole-ledger root of the first `size` entries, from the entries themselves.
std::string root_of_first(const Ledger& ledger, std::int64_t size) {
  std::vector<merkle::Hash> leaves;
  for (const auto& e : ledger.entries(1, size)) leaves.push_back(merkle::leaf_hash(ledger_entry_bytes(e)));
  return merkle::to_hex(merkle::tree_root(leaves));
}

/// What someone with write access and no key can do: change entry `seq`'s body and recompute
/// every hash, prev_hash, cycle root and cycle.root entry after it, so the chain verifies.
void rewrite_consistently(SqliteDb& db, std::int64_t seq, const std::string& new_body) {
  std::vector<LedgerEntry> es;
  {
    Ledger reader(db);
    es = reader.entries();
  }
  es.at(static_cast<std::size_t>(seq - 1)).body = new_body;
  std::map<std::string, std::vector<merkle::Hash>> cycle_leaves;
  std::string prev(64, '0');
  db.begin();
  for (LedgerEntry& e : es) {
    e.prev_hash = prev;
    if (e.kind == "cycle.root") {
      json b = json::parse(e.body);
      const std::string c = b["cycle_id"];
      std::vector<merkle::Hash> leaves = cycle_leaves[c];
      leaves.resize(b["tree_size"].get<std::size_t>());
      const std::string root = merkle::to_hex(merkle::tree_root(leaves));
      b["root"] = root;
      e.body = b.dump();
      SqliteStatement u(db, "UPDATE ledger_cycle_roots SET root = ? WHERE cycle_id = ?");
      u.bind(1, root).bind(2, c);
      u.run();
    }
    e.hash = merkle::to_hex(merkle::sha256(ledger_entry_bytes(e)));
    if (!e.cycle_id.empty()) cycle_leaves[e.cycle_id].push_back(merkle::leaf_hash(ledger_entry_bytes(e)));
    SqliteStatement u(db, "UPDATE ledger_entries SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?");
    u.bind(1, e.body).bind(2, e.prev_hash).bind(3, e.hash).bind(4, e.seq);
    u.run();
    prev = e.hash;
  }
  db.commit();
}

LedgerVerifyOptions with_key(const SigningKey& key) {
  LedgerVerifyOptions o;
  o.public_key = key.public_key;
  return o;
}

// --- keys ---------------------------------------------------------------------------------

TEST(LedgerHeads, SigningKeyFilesRoundTrip) {
  const auto dir = fresh_dir("keys");
  const SigningKey key = generate_signing_key();
  const std::string name = (dir / "ccp").string();
  write_signing_key_files(key, name);

  struct stat st {};
  ASSERT_EQ(::stat((name + ".sign.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((name + ".sign.pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(slurp(name + ".sign.pub"), "ed25519-public-key = " + key.public_key.hex() + "\n");
  const std::string secret_text = slurp(name + ".sign.key");
  EXPECT_EQ(secret_text.rfind("ed25519-secret-key = ", 0), 0u) << "the secret key line comes first";
  EXPECT_TRUE(contains(secret_text, "\npublic-key = " + key.public_key.hex() + "\n"));

  const SigningKey back = read_signing_key(name + ".sign.key");
  EXPECT_EQ(back.secret, key.secret);
  EXPECT_EQ(back.public_key, key.public_key);
  EXPECT_EQ(read_verify_key(name + ".sign.pub"), key.public_key);

  const std::string sig = sign_message_hex(back, "marginet-tree-head-v1\n1\nab\nt");
  EXPECT_EQ(sig.size(), 128u);
  EXPECT_TRUE(verify_message_hex(key.public_key, "marginet-tree-head-v1\n1\nab\nt", sig));
  EXPECT_FALSE(verify_message_hex(key.public_key, "marginet-tree-head-v1\n1\nab\nu", sig));
  EXPECT_FALSE(verify_message_hex(generate_signing_key().public_key, "marginet-tree-head-v1\n1\nab\nt", sig));
  EXPECT_FALSE(verify_message_hex(key.public_key, "marginet-tree-head-v1\n1\nab\nt", sig.substr(2)));
  EXPECT_FALSE(verify_message_hex(key.public_key, "marginet-tree-head-v1\n1\nab\nt", std::string(128, 'z')));

  // Never over an existing key; nothing written then.
  EXPECT_THROW(write_signing_key_files(generate_signing_key(), name), usage_error);
  EXPECT_EQ(read_verify_key(name + ".sign.pub"), key.public_key);
  spit(dir / "half.sign.pub", "x\n");
  EXPECT_THROW(write_signing_key_files(generate_signing_key(), (dir / "half").string()), usage_error);
  EXPECT_FALSE(fs::exists(dir / "half.sign.key"));

  // `members keygen` files (bare hex) are the same kind of key.
  spit(dir / "bare.sign.pub", key.public_key.hex() + "\n");
  EXPECT_EQ(read_verify_key((dir / "bare.sign.pub").string()), key.public_key);
}

TEST(LedgerHeads, BadKeyFilesAreRefusedNamingFileAndField) {
  const auto dir = fresh_dir("badkeys");
  const SigningKey key = generate_signing_key();
  write_signing_key_files(key, (dir / "ok").string());
  const std::string secret_line = slurp(dir / "ok.sign.key").substr(0, slurp(dir / "ok.sign.key").find('\n') + 1);
  const std::string pub_hex = key.public_key.hex();
  std::string other_pub = generate_signing_key().public_key.hex();
  struct Case {
    const char* what;
    std::string text;
    bool secret;        // read as a secret key file (else as a public one)
    std::string field;  // expected in the message
  };
  std::string corrupt = secret_line;
  corrupt[30] = corrupt[30] == '0' ? '1' : '0';  // a seed digit: the public half no longer belongs to it
  const std::vector<Case> cases = {
      {"empty secret", "", true, "ed25519-secret-key"},
      {"short secret", "ed25519-secret-key = abcd\n", true, "ed25519-secret-key"},
      {"non-hex secret", "ed25519-secret-key = " + std::string(128, 'g') + "\n", true, "ed25519-secret-key"},
      {"damaged secret", corrupt, true, "ed25519-secret-key"},
      {"another public key", secret_line + "public-key = " + other_pub + "\n", true, "public-key"},
      {"unknown field", secret_line + "colour = blue\n", true, "colour"},
      {"twice", secret_line + secret_line, true, "ed25519-secret-key"},
      {"a public file as secret", "ed25519-public-key = " + pub_hex + "\n", true, "ed25519-public-key"},
      {"a secret file as public", secret_line, false, "ed25519-secret-key"},
      {"empty public", "\n# nothing\n", false, "ed25519-public-key"},
      {"short public", "ed25519-public-key = " + pub_hex.substr(2) + "\n", false, "ed25519-public-key"},
      {"garbage", std::string("\x01\x02\xff not a key\n"), false, ""},
  };
  for (const Case& c : cases) {
    const fs::path p = dir / "case.key";
    spit(p, c.text);
    try {
      if (c.secret)
        (void)read_signing_key(p.string());
      else
        (void)read_verify_key(p.string());
      ADD_FAILURE() << c.what << ": accepted";
    } catch (const input_error& e) {
      EXPECT_TRUE(contains(e.what(), p.string())) << c.what << ": " << e.what();
      if (!c.field.empty()) {
        EXPECT_TRUE(contains(e.what(), "field '" + c.field + "'")) << c.what << ": " << e.what();
      }
      // A message never quotes a secret.
      EXPECT_FALSE(contains(e.what(), secret_line.substr(21, 128))) << c.what << ": " << e.what();
    }
  }
  EXPECT_THROW(read_signing_key((dir / "missing.sign.key").string()), input_error);
  EXPECT_THROW(read_verify_key(dir.string()), input_error);  // a folder
  spit(dir / "huge.sign.pub", std::string(100 * 1024, 'a'));
  EXPECT_THROW(read_verify_key((dir / "huge.sign.pub").string()), input_error);
}

// --- the incremental root ----------------------------------------------------------------

TEST(LedgerHeads, FrontierRootIsTheRfc6962RootForSizes0To300) {
  std::vector<merkle::Hash> leaves;
  MerkleFrontier f;
  EXPECT_EQ(f.root(), merkle::tree_root(leaves));
  for (int n = 1; n <= 300; ++n) {
    leaves.push_back(merkle::leaf_hash("leaf " + std::to_string(n)));
    f.append(leaves.back());
    ASSERT_EQ(f.size(), static_cast<std::uint64_t>(n));
    ASSERT_EQ(merkle::to_hex(f.root()), merkle::to_hex(merkle::tree_root(leaves))) << "size " << n;
  }
}

TEST(LedgerHeads, LedgerRootFollowsAppendsReloadsAndRollbacks) {
  const auto dir = fresh_dir("ledger_root");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  std::vector<merkle::Hash> leaves;
  EXPECT_EQ(ledger.tree_root(), merkle::to_hex(merkle::tree_root(leaves)));
  db.begin();
  for (int n = 1; n <= 300; ++n) {
    const std::string cycle = n % 3 == 0 ? "" : "c" + std::to_string(n % 2);
    ledger.append(cycle, "instruction.state", "2024-06-28T08:00:00Z", entry_body("c", n));
    leaves.push_back(merkle::leaf_hash(ledger_entry_bytes(ledger.entry(n).value())));
    ASSERT_EQ(ledger.tree_root(), merkle::to_hex(merkle::tree_root(leaves))) << "size " << n;
  }
  db.commit();
  {
    Ledger again(db);  // rebuilt from the entries
    EXPECT_EQ(again.tree_root(), ledger.tree_root());
  }
  // A rolled-back transaction: after reload() the root is the committed one again, from the
  // committed state (publish_heads() marks it) and from entry 1 (a new Ledger, never marked).
  ledger.publish_heads();
  for (bool from_scratch : {false, true}) {
    const std::string committed = merkle::to_hex(merkle::tree_root(leaves));
    Ledger fresh(db);  // its frontier is first built in the transaction below: nothing known committed
    Ledger& l = from_scratch ? fresh : ledger;
    db.begin();
    l.append("c9", "instruction.state", "2024-06-28T08:00:01Z", entry_body("c9", 1));
    EXPECT_NE(l.tree_root(), committed);
    db.rollback();
    l.reload();
    EXPECT_EQ(l.tree_root(), committed) << (from_scratch ? "from entry 1" : "from the committed state");
    db.begin();
    l.append("c9", "instruction.state", "2024-06-28T08:00:01Z", entry_body("c9", 2));
    db.commit();
    leaves.push_back(merkle::leaf_hash(ledger_entry_bytes(l.entry(static_cast<std::int64_t>(leaves.size()) + 1).value())));
    EXPECT_EQ(l.tree_root(), merkle::to_hex(merkle::tree_root(leaves)));
  }
}

// --- heads ---------------------------------------------------------------------------------

TEST(LedgerHeads, ThreeClosedCyclesVerifyWithTheRightKeyOnly) {
  const auto dir = fresh_dir("three");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  const SigningKey key = generate_signing_key();
  ledger.set_signing_key(key);
  const auto sizes = fill_three_cycles(db, ledger);

  const auto heads = ledger.heads();
  ASSERT_EQ(heads.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(heads[i].size, sizes[i]);
    EXPECT_EQ(ledger.entry(heads[i].size).value().kind, "cycle.root") << "a head ends at its cycle.root entry";
    EXPECT_EQ(heads[i].root, root_of_first(ledger, heads[i].size));
    EXPECT_EQ(heads[i].public_key, key.public_key.hex());
    EXPECT_EQ(heads[i].at, "2024-06-28T08:0" + std::to_string(i + 1) + ":00Z");
    EXPECT_TRUE(verify_tree_head(heads[i], key.public_key));
    EXPECT_EQ(heads[i].signature,
              sign_message_hex(key, "marginet-tree-head-v1\n" + std::to_string(heads[i].size) + "\n" +
                                        heads[i].root + "\n" + heads[i].at));
  }
  EXPECT_EQ(ledger.latest_head().value(), heads.back());
  EXPECT_EQ(ledger.size(), sizes.back() + 1) << "c4's last entry is after the last head";

  const auto ok = ledger.verify(with_key(key));
  EXPECT_TRUE(ok.ok) << ok.message;
  EXPECT_TRUE(ok.signatures_checked);
  EXPECT_EQ(ok.heads, 3);
  EXPECT_EQ(ok.published_heads, 3);
  EXPECT_EQ(ok.cycles_checked, 3);
  EXPECT_TRUE(contains(ok.message, "every signature valid")) << ok.message;

  const SigningKey other = generate_signing_key();
  const auto bad = ledger.verify(with_key(other));
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.bad_head_size, sizes[0]) << bad.message;
  EXPECT_TRUE(contains(bad.message, "head " + std::to_string(sizes[0]))) << bad.message;

  const auto unchecked = ledger.verify(LedgerVerifyOptions{});
  EXPECT_TRUE(unchecked.ok) << unchecked.message;
  EXPECT_FALSE(unchecked.signatures_checked);
  EXPECT_TRUE(contains(unchecked.message, "3 tree heads, signatures not checked")) << unchecked.message;

  // A head row removed (no heads file to tell): the key still catches the cycle closed after
  // the last head left.
  fs::remove(ledger.heads_path());
  db.exec("DELETE FROM ledger_heads WHERE size = " + std::to_string(sizes[2]));
  const auto gone = ledger.verify(with_key(key));
  EXPECT_FALSE(gone.ok);
  EXPECT_EQ(gone.first_bad_seq, sizes[2]) << gone.message;
  EXPECT_TRUE(contains(gone.message, "cycle 'c3' was closed after the last signed head (size " +
                                         std::to_string(sizes[1]) + ")"))
      << gone.message;
}

TEST(LedgerHeads, ALedgerClosedWithoutAKeyFailsWithAKey) {
  const auto dir = fresh_dir("nokey");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  const auto sizes = fill_three_cycles(db, ledger);
  EXPECT_TRUE(ledger.heads().empty());
  EXPECT_FALSE(ledger.latest_head().has_value());
  EXPECT_FALSE(fs::exists(ledger.heads_path())) << "no heads, no file";
  EXPECT_TRUE(ledger.verify(LedgerVerifyOptions{}).ok);
  const auto rep = ledger.verify(with_key(generate_signing_key()));
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, sizes[0]);
  EXPECT_TRUE(contains(rep.message, "cycle 'c1' was closed after the last signed head (none)")) << rep.message;
}

class LedgerHeadsTamper : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    path_ = (dir_ / "l.sqlite").string();
    SqliteDb db(path_);
    Ledger ledger(db);
    ledger.set_signing_key(key_);
    sizes_ = fill_three_cycles(db, ledger);
    entries_ = ledger.size();
  }
  void TearDown() override { fs::remove_all(dir_); }
  LedgerVerifyReport verify(const LedgerVerifyOptions& o) {
    SqliteDb db(path_);
    Ledger ledger(db);
    return ledger.verify(o);
  }
  fs::path dir_;
  std::string path_;
  SigningKey key_ = generate_signing_key();
  std::vector<std::int64_t> sizes_;
  std::int64_t entries_ = 0;
};

TEST_F(LedgerHeadsTamper, TruncationIsDetectedThroughTheHeadsFile) {
  ASSERT_TRUE(verify(with_key(key_)).ok);
  {
    // Cut the ledger back to the end of c2, cleanly: entries, c3's recorded root, the heads
    // rows beyond. The chain is consistent; only the published heads know better.
    SqliteDb db(path_);
    db.exec("DELETE FROM ledger_entries WHERE seq > " + std::to_string(sizes_[1]) +
            "; DELETE FROM ledger_cycle_roots WHERE cycle_id = 'c3'; DELETE FROM ledger_heads WHERE size > " +
            std::to_string(sizes_[1]));
    Ledger ledger(db);
    EXPECT_TRUE(ledger.verify().ok) << "the hash chain alone does not see it";
  }
  for (bool key : {true, false}) {
    const auto rep = verify(key ? with_key(key_) : LedgerVerifyOptions{});
    EXPECT_FALSE(rep.ok);
    EXPECT_EQ(rep.bad_head_size, sizes_[2]) << rep.message;
    EXPECT_TRUE(contains(rep.message, "head " + std::to_string(sizes_[2]) + " (heads file line 3) covers " +
                                          std::to_string(sizes_[2]) + " entries, the ledger has " +
                                          std::to_string(sizes_[1]) + ": the ledger was truncated"))
        << rep.message;
  }
}

TEST_F(LedgerHeadsTamper, TruncationKeepingTheHeadRowsIsNamed) {
  {
    SqliteDb db(path_);
    db.exec("DELETE FROM ledger_entries WHERE seq > " + std::to_string(sizes_[1]) +
            "; DELETE FROM ledger_cycle_roots WHERE cycle_id = 'c3'");
  }
  fs::remove(path_ + ".heads");
  const auto rep = verify(with_key(key_));
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.bad_head_size, sizes_[2]);
  EXPECT_TRUE(contains(rep.message, "(ledger_heads) covers")) << rep.message;
  EXPECT_TRUE(contains(rep.message, "truncated")) << rep.message;
}

TEST_F(LedgerHeadsTamper, EmptyingIsDetected) {
  {
    SqliteDb db(path_);
    db.exec("DELETE FROM ledger_entries; DELETE FROM ledger_cycle_roots; DELETE FROM ledger_heads");
    Ledger ledger(db);
    EXPECT_TRUE(ledger.verify().ok) << "an empty ledger is a valid chain";
  }
  for (bool key : {true, false}) {
    const auto rep = verify(key ? with_key(key_) : LedgerVerifyOptions{});
    EXPECT_FALSE(rep.ok);
    EXPECT_EQ(rep.entries, 0);
    EXPECT_EQ(rep.bad_head_size, sizes_[2]);
    EXPECT_TRUE(contains(rep.message, "the ledger is empty but the heads file " + path_ + ".heads holds 3 heads"))
        << rep.message;
    EXPECT_TRUE(contains(rep.message, "emptied")) << rep.message;
  }
}

TEST_F(LedgerHeadsTamper, AFullRewriteIsDetected) {
  // The rewrite: entry 2's body changed, everything after recomputed. The chain verifies.
  const std::string forged = json({{"instruction", "c1/M1/BTC/in"}, {"to", "defaulted"}}).dump();
  std::vector<std::string> new_roots;
  {
    SqliteDb db(path_);
    rewrite_consistently(db, 2, forged);
    Ledger ledger(db);
    ASSERT_EQ(ledger.entry(2).value().body, forged);
    const auto chain = ledger.verify();
    ASSERT_TRUE(chain.ok) << chain.message;
    ASSERT_EQ(chain.cycles_checked, 3);
    for (std::int64_t s : sizes_) new_roots.push_back(root_of_first(ledger, s));
  }
  const fs::path pristine = dir_ / "rewritten.sqlite";
  {
    SqliteDb db(path_);
    db.exec("VACUUM INTO '" + pristine.string() + "'");
  }
  const SigningKey attacker = generate_signing_key();
  enum Variant { old_heads, new_roots_garbage_sig, new_roots_old_sig, attackers_key };
  for (Variant v : {old_heads, new_roots_garbage_sig, new_roots_old_sig, attackers_key}) {
    fs::copy_file(pristine, path_, fs::copy_options::overwrite_existing);
    {
      SqliteDb db(path_);
      for (std::size_t i = 0; i < sizes_.size() && v != old_heads; ++i) {
        std::string sig;
        std::string pub = key_.public_key.hex();
        if (v == new_roots_garbage_sig) sig = std::string(128, 'a');
        if (v == attackers_key) {
          sig = sign_message_hex(attacker, tree_head_message(sizes_[i], new_roots[i], "2024-06-28T08:00:00Z"));
          pub = attacker.public_key.hex();
        }
        SqliteStatement u(db,
                          v == new_roots_old_sig
                              ? "UPDATE ledger_heads SET root = ?1 WHERE size = ?4"
                              : "UPDATE ledger_heads SET root = ?1, signature = ?2, public_key = ?3, at = "
                                "'2024-06-28T08:00:00Z' WHERE size = ?4");
        u.bind(1, new_roots[i]);
        if (v != new_roots_old_sig) u.bind(2, sig).bind(3, pub);
        u.bind(4, sizes_[i]);
        u.run();
      }
    }
    // With the key, from the table alone (no heads file).
    fs::rename(path_ + ".heads", dir_ / "published.heads");
    const auto rep = verify(with_key(key_));
    EXPECT_FALSE(rep.ok) << "variant " << v;
    EXPECT_EQ(rep.bad_head_size, sizes_[0]) << "variant " << v << ": " << rep.message;
    const std::string want = v == old_heads ? "the ledger was rewritten"
                             : v == attackers_key ? "names another signer"
                                                  : "the signature is not valid under public key";
    EXPECT_TRUE(contains(rep.message, want)) << "variant " << v << ": " << rep.message;
    // Without a key, the published heads still disagree with the rewritten ledger.
    LedgerVerifyOptions o;
    o.heads_file = (dir_ / "published.heads").string();
    const auto nokey = verify(o);
    EXPECT_FALSE(nokey.ok) << "variant " << v;
    // The table's head comes first when it still holds the old root; else the file's.
    const std::string where = v == old_heads ? " (ledger_heads)" : " (heads file line 1)";
    EXPECT_TRUE(contains(nokey.message, "head " + std::to_string(sizes_[0]) + where + ": its root"))
        << "variant " << v << ": " << nokey.message;
    // The published heads with the key too (the first failure: the table's head).
    o.public_key = key_.public_key;
    EXPECT_FALSE(verify(o).ok) << "variant " << v;
    fs::rename(dir_ / "published.heads", path_ + ".heads");
  }
  // The attacker also rewrites the heads file, with heads of their own key: the CCP's key
  // refuses them.
  {
    SqliteDb db(path_);  // the attackers_key variant: table heads signed by the attacker
    Ledger ledger(db);
    std::string lines;
    for (const TreeHead& h : ledger.heads()) lines += tree_head_json(h) + "\n";
    spit(path_ + ".heads", lines);
    const auto rep = ledger.verify(with_key(key_));
    EXPECT_FALSE(rep.ok);
    EXPECT_TRUE(contains(rep.message, "names another signer")) << rep.message;
    const auto theirs = ledger.verify(with_key(attacker));
    EXPECT_TRUE(theirs.ok) << "consistent under the attacker's key: " << theirs.message;
  }
}

TEST_F(LedgerHeadsTamper, HeadsFileDisagreeingWithTheTableIsNamed) {
  // A head of the file the table lacks.
  {
    SqliteDb db(path_);
    db.exec("DELETE FROM ledger_heads WHERE size = " + std::to_string(sizes_[0]));
  }
  auto rep = verify(LedgerVerifyOptions{});
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.bad_head_size, sizes_[0]);
  EXPECT_TRUE(contains(rep.message, "(heads file line 1) is not in the ledger's heads table")) << rep.message;
  // A table head with another time than the published one (signature of its own: the key
  // catches that first).
  {
    SqliteDb db(path_);
    db.exec("UPDATE ledger_heads SET at = '2030-01-01T00:00:00Z' WHERE size = " + std::to_string(sizes_[1]));
  }
  rep = verify(LedgerVerifyOptions{});
  EXPECT_FALSE(rep.ok);
  rep = verify(with_key(key_));
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.bad_head_size, sizes_[1]) << rep.message;
  EXPECT_TRUE(contains(rep.message, "head " + std::to_string(sizes_[1]) + " (ledger_heads): the signature is not valid"))
      << rep.message;
  // A damaged line of the file is named.
  std::string text = slurp(path_ + ".heads");
  text.replace(text.find("\"root\":\"") + 8, 1, "Z");
  spit(path_ + ".heads", text);
  rep = verify(LedgerVerifyOptions{});
  EXPECT_FALSE(rep.ok);
  EXPECT_TRUE(contains(rep.message, path_ + ".heads:1: field 'root'")) << rep.message;
}

// --- publishing ----------------------------------------------------------------------------

TEST(LedgerHeads, PublishHeadsIsIdempotentCrashSafeAndRepairsATornLine) {
  const auto dir = fresh_dir("publish");
  const std::string path = (dir / "l.sqlite").string();
  const SigningKey key = generate_signing_key();
  SqliteDb db(path);
  Ledger ledger(db);
  ledger.set_signing_key(key);
  fill_three_cycles(db, ledger);  // publishes after each commit
  const std::string heads_file = path + ".heads";
  EXPECT_EQ(ledger.heads_path(), heads_file);
  const std::string three = slurp(heads_file);
  {
    std::istringstream in(three);
    std::string line;
    std::vector<TreeHead> read;
    long n = 0;
    while (std::getline(in, line)) read.push_back(parse_tree_head(line, heads_file, ++n));
    EXPECT_EQ(read, ledger.heads());
  }
  EXPECT_EQ(ledger.publish_heads(), 0u);
  EXPECT_EQ(slurp(heads_file), three);
  {
    Ledger other(db);  // another process: scans the file, finds it complete
    EXPECT_EQ(other.publish_heads(), 0u);
  }
  EXPECT_EQ(slurp(heads_file), three);

  // Committed, not yet published (the scheduler died between commit and publish): the next
  // call, in a new process, publishes it.
  db.begin();
  ledger.append("c5", "instruction.state", "2024-06-28T08:05:00Z", entry_body("c5", 0));
  ledger.close_cycle("c5", "2024-06-28T08:05:00Z");
  db.commit();
  const std::string four_expected = three + tree_head_json(ledger.latest_head().value()) + "\n";
  {
    Ledger restarted(db);
    EXPECT_EQ(restarted.publish_heads(), 1u);
  }
  EXPECT_EQ(slurp(heads_file), four_expected);
  EXPECT_EQ(ledger.publish_heads(), 0u) << "the file changed under this Ledger: read again, nothing to add";
  EXPECT_EQ(slurp(heads_file), four_expected);

  // A torn last line (a write cut short): cut off and written again, by this Ledger (the file's
  // length changed) and by a new one.
  for (bool fresh : {false, true}) {
    spit(heads_file, four_expected.substr(0, four_expected.size() - 40));
    Ledger restarted(db);
    Ledger& l = fresh ? restarted : ledger;
    EXPECT_EQ(l.publish_heads(), 1u);
    EXPECT_EQ(slurp(heads_file), four_expected);
    EXPECT_EQ(l.publish_heads(), 0u);
  }
  // Heads are published only once committed.
  db.begin();
  EXPECT_THROW(ledger.publish_heads(), marginet::logic_error);
  db.rollback();

  // A heads file holding a head the ledger lacks (the ledger replaced under a published log):
  // refused, the file left as it is.
  const fs::path other_dir = fresh_dir("publish_other");
  const std::string other_path = (other_dir / "l.sqlite").string();
  fs::copy_file(heads_file, other_path + ".heads");
  {
    SqliteDb odb(other_path);
    Ledger fresh_ledger(odb);
    fresh_ledger.set_signing_key(key);
    odb.begin();
    fresh_ledger.append("x1", "instruction.state", "2024-06-28T09:00:00Z", entry_body("x1", 0));
    fresh_ledger.close_cycle("x1", "2024-06-28T09:00:00Z");
    odb.commit();
    try {
      fresh_ledger.publish_heads();
      ADD_FAILURE() << "published over a contradicting heads file";
    } catch (const input_error& e) {
      EXPECT_TRUE(contains(e.what(), other_path + ".heads:1")) << e.what();
      EXPECT_TRUE(contains(e.what(), "not publishing over this heads file")) << e.what();
    }
  }
  EXPECT_EQ(slurp(other_path + ".heads"), four_expected);
  fs::remove_all(other_dir);
}

// --- proofs --------------------------------------------------------------------------------

TEST(LedgerHeads, ProofsCarryAPathUnderASignedHead) {
  const auto dir = fresh_dir("prove");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  const SigningKey key = generate_signing_key();
  ledger.set_signing_key(key);
  const auto sizes = fill_three_cycles(db, ledger);
  const TreeHead latest = ledger.latest_head().value();
  for (const auto& e : ledger.entries()) {
    if (e.cycle_id.empty()) continue;
    const InclusionProof p = ledger.prove(e.seq);
    if (e.seq > latest.size) {
      EXPECT_FALSE(p.head.has_value()) << "entry " << e.seq << " comes after the latest head";
      continue;
    }
    ASSERT_TRUE(p.head.has_value()) << "entry " << e.seq;
    EXPECT_EQ(p.head->head, latest);
    EXPECT_EQ(p.head->leaf_index, static_cast<std::size_t>(e.seq - 1));
    EXPECT_EQ(p.head->tree_size, static_cast<std::size_t>(latest.size));
    std::vector<merkle::Hash> path;
    for (const auto& h : p.head->audit_path) path.push_back(merkle::from_hex(h).value());
    const auto root = merkle::root_from_audit_path(p.head->leaf_index, p.head->tree_size,
                                                   merkle::leaf_hash(p.entry_bytes), path);
    ASSERT_TRUE(root.has_value());
    EXPECT_EQ(merkle::to_hex(*root), latest.root) << "entry " << e.seq;
  }
  // Under an earlier head, by size; a head that does not cover the entry, or no such head.
  const InclusionProof first = ledger.prove(1, sizes[0]);
  ASSERT_TRUE(first.head.has_value());
  EXPECT_EQ(first.head->head.size, sizes[0]);
  EXPECT_EQ(first.head->tree_size, static_cast<std::size_t>(sizes[0]));
  EXPECT_THROW(ledger.prove(sizes[1] - 1, sizes[0]), input_error);
  EXPECT_THROW(ledger.prove(1, sizes[0] + 1), input_error);
}

// --- the binary and the Python checker ------------------------------------------------------

class LedgerHeadsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_dir(std::string("cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ledger_ = (dir_ / "settle.sqlite").string();
    key_name_ = (dir_ / "ccp").string();
    const auto k = mt::run_marginet("keygen --signing " + key_name_);
    ASSERT_EQ(k.status, 0) << k.output;
    SqliteDb db(ledger_);
    Ledger ledger(db);
    ledger.set_signing_key(read_signing_key(key_name_ + ".sign.key"));
    EXPECT_TRUE(contains(k.output, "ed25519-public-key = " + read_verify_key(key_name_ + ".sign.pub").hex()))
        << k.output;
    sizes_ = fill_three_cycles(db, ledger);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string ledger_, key_name_;
  std::vector<std::int64_t> sizes_;
};

TEST_F(LedgerHeadsCli, KeygenVerifyAndHead) {
  // keygen --signing never overwrites; needs a name; not together with a CURVE name.
  auto r = mt::run_marginet("keygen --signing " + key_name_);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "exists; not overwriting")) << r.output;
  EXPECT_EQ(mt::run_marginet("keygen").status, 2);
  EXPECT_EQ(mt::run_marginet("keygen " + (dir_ / "x").string() + " --signing " + (dir_ / "y").string()).status, 2);
  EXPECT_FALSE(fs::exists(dir_ / "y.sign.key"));

  const std::string pub = key_name_ + ".sign.pub";
  auto ok = mt::run_marginet("ledger verify --ledger " + ledger_ + " --pubkey " + pub);
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_TRUE(contains(ok.output, "ok: " + std::to_string(sizes_[2] + 1) + " entries, 3 cycle roots; 3 tree heads, "
                                       "every signature valid"))
      << ok.output;
  auto plain = mt::run_marginet("ledger verify --ledger " + ledger_);
  EXPECT_EQ(plain.status, 0) << plain.output;
  EXPECT_TRUE(contains(plain.output, "signatures not checked")) << plain.output;
  auto js = mt::run_marginet("ledger verify --format json --ledger " + ledger_ + " --pubkey " + pub, false);
  ASSERT_EQ(js.status, 0) << js.output;
  const json j = json::parse(js.output);
  EXPECT_EQ(j["heads"], 3);
  EXPECT_EQ(j["published_heads"], 3);
  EXPECT_EQ(j["signatures_checked"], true);

  // Another key; a bad key file; a heads file that is not there.
  ASSERT_EQ(mt::run_marginet("keygen --signing " + (dir_ / "other").string()).status, 0);
  auto other = mt::run_marginet("ledger verify --ledger " + ledger_ + " --pubkey " + (dir_ / "other.sign.pub").string());
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_TRUE(contains(other.output, "field 'head " + std::to_string(sizes_[0]) + "'")) << other.output;
  EXPECT_TRUE(contains(other.output, "FAILED")) << other.output;
  spit(dir_ / "bad.sign.pub", "ed25519-public-key = 12\n");
  auto badkey = mt::run_marginet("ledger verify --ledger " + ledger_ + " --pubkey " + (dir_ / "bad.sign.pub").string());
  EXPECT_EQ(badkey.status, 2) << badkey.output;
  EXPECT_TRUE(contains(badkey.output, (dir_ / "bad.sign.pub").string() + ":1: field 'ed25519-public-key'"))
      << badkey.output;
  EXPECT_EQ(mt::run_marginet("ledger verify --ledger " + ledger_ + " --heads " + (dir_ / "none").string()).status, 2);

  // ledger head: the latest, or by size; exit 1 when there is none.
  auto h = mt::run_marginet("ledger head --ledger " + ledger_, false);
  ASSERT_EQ(h.status, 0) << h.output;
  SqliteDb db(ledger_);
  Ledger ledger(db);
  EXPECT_EQ(h.output, tree_head_json(ledger.latest_head().value()) + "\n");
  auto h1 = mt::run_marginet("ledger head --size " + std::to_string(sizes_[0]) + " --ledger " + ledger_, false);
  ASSERT_EQ(h1.status, 0) << h1.output;
  EXPECT_EQ(parse_tree_head(h1.output, "stdout", 1), ledger.heads().front());
  const std::string empty = (dir_ / "empty.sqlite").string();
  {
    SqliteDb edb(empty);
    Ledger e(edb);
  }
  auto none = mt::run_marginet("ledger head --ledger " + empty);
  EXPECT_EQ(none.status, 1) << none.output;
  EXPECT_TRUE(contains(none.output, "has no signed tree head")) << none.output;

  // Truncated through SQLite: the CLI names it.
  db.exec("DELETE FROM ledger_entries WHERE seq > " + std::to_string(sizes_[1]) +
          "; DELETE FROM ledger_cycle_roots WHERE cycle_id = 'c3'; DELETE FROM ledger_heads WHERE size > " +
          std::to_string(sizes_[1]));
  auto cut = mt::run_marginet("ledger verify --ledger " + ledger_ + " --pubkey " + pub);
  EXPECT_EQ(cut.status, 2) << cut.output;
  EXPECT_TRUE(contains(cut.output, "field 'head " + std::to_string(sizes_[2]) + "'")) << cut.output;
  EXPECT_TRUE(contains(cut.output, "the ledger was truncated")) << cut.output;
}

TEST_F(LedgerHeadsCli, ProveAddsAHeadObjectAndThePythonCheckerChecksIt) {
  const std::string proof = (dir_ / "p2.json").string();
  auto r = mt::run_marginet("ledger prove 2 --ledger " + ledger_ + " --out " + proof);
  ASSERT_EQ(r.status, 0) << r.output;
  json p;
  {
    std::ifstream in(proof);
    p = json::parse(in);
  }
  // The per-cycle fields as before, then "head".
  std::vector<std::string> keys;
  for (auto it = p.begin(); it != p.end(); ++it) keys.push_back(it.key());
  std::vector<std::string> sorted_expected = {"audit_path", "cycle_closed", "cycle_id", "entry", "entry_hash", "entry_seq",
                                              "head", "leaf_hash", "leaf_index", "root", "tree_size"};
  EXPECT_EQ(keys, sorted_expected);  // nlohmann::json sorts keys
  EXPECT_EQ(p["head"]["leaf_index"], 1);
  EXPECT_EQ(p["head"]["tree_size"], sizes_[2]);
  EXPECT_EQ(p["head"]["tree_head"]["size"], sizes_[2]);
  {
    auto raw = mt::run_marginet("ledger prove 2 --ledger " + ledger_, false);
    const std::string& out = raw.output;
    EXPECT_LT(out.find("\"cycle_closed\""), out.find("\"head\"")) << "head comes after the per-cycle fields";
  }
  // An entry after the latest head: no "head".
  auto late = mt::run_marginet("ledger prove " + std::to_string(sizes_[2] + 1) + " --ledger " + ledger_, false);
  ASSERT_EQ(late.status, 0) << late.output;
  EXPECT_FALSE(json::parse(late.output).contains("head"));
  const std::string late_proof = (dir_ / "late.json").string();
  spit(late_proof, late.output);

  const std::string python = "/usr/bin/python3";
  if (mt::run_command(python + " -c 'import hashlib, json, nacl.signing'").status != 0)
    GTEST_SKIP() << "no /usr/bin/python3 with PyNaCl (python3-nacl; scripts/install-deps.sh installs it)";
  const std::string checker = std::string(MARGINET_SOURCE_DIR) + "/scripts/verify_proof.py";
  const std::string head = (dir_ / "head.json").string();
  ASSERT_EQ(mt::run_marginet("ledger head --ledger " + ledger_ + " --out " + head).status, 0);
  const std::string pub = key_name_ + ".sign.pub";
  auto check = [&](const std::string& proof_file, const std::string& args) {
    return mt::run_command(python + " " + checker + " " + proof_file + " " + args);
  };

  auto good = check(proof, "--head " + head + " --pubkey " + pub);
  EXPECT_EQ(good.status, 0) << good.output;
  EXPECT_TRUE(contains(good.output, "OK: entry 2")) << good.output;
  EXPECT_TRUE(contains(good.output, "under the tree head signed by")) << good.output;
  EXPECT_EQ(check(proof, "--pubkey " + pub).status, 0) << "the head the proof carries, checked by its signature";
  EXPECT_EQ(check(proof, "--pubkey " + pub + " --root " + p["root"].get<std::string>()).status, 0);

  // Forged heads: any changed field breaks the signature; a head signed by another key.
  const json h = json::parse(slurp(head));
  ASSERT_EQ(mt::run_marginet("keygen --signing " + (dir_ / "mallory").string()).status, 0);
  const SigningKey mallory = read_signing_key((dir_ / "mallory").string() + ".sign.key");
  for (int f = 0; f < 5; ++f) {
    json x = h;
    std::string root = x["root"];
    root[0] = root[0] == 'a' ? 'b' : 'a';
    if (f == 0) x["root"] = root;
    if (f == 1) x["size"] = x["size"].get<int>() - 1;
    if (f == 2) x["at"] = "2030-01-01T00:00:00Z";
    if (f == 3) x["signature"] = std::string(128, 'c');
    if (f == 4) {
      x["signature"] = sign_message_hex(
          mallory, tree_head_message(x["size"].get<std::int64_t>(), x["root"].get<std::string>(), x["at"].get<std::string>()));
      x["public_key"] = mallory.public_key.hex();
    }
    const std::string forged = (dir_ / "forged_head.json").string();
    spit(forged, x.dump());
    auto v = check(proof, "--head " + forged + " --pubkey " + pub);
    EXPECT_EQ(v.status, 1) << "forged head " << f << " accepted: " << v.output;
    EXPECT_TRUE(contains(v.output, "FAILED")) << v.output;
    // Mallory's head holds under Mallory's key: what is trusted is the key a verifier brings.
    if (f == 4) {
      EXPECT_EQ(check(proof, "--head " + forged + " --pubkey " + (dir_ / "mallory.sign.pub").string()).status, 0);
    }
    // The same forgery carried inside the proof.
    json q = p;
    q["head"]["tree_head"] = x;
    const std::string forged_proof = (dir_ / "forged_proof.json").string();
    spit(forged_proof, q.dump());
    EXPECT_EQ(check(forged_proof, "--pubkey " + pub).status, 1) << "embedded forged head " << f;
  }
  // Proofs that do not match the head: a changed path element, another tree size, another
  // leaf, a genuine head of another size.
  for (int f = 0; f < 3; ++f) {
    json q = p;
    if (f == 0) q["head"]["audit_path"][0] = std::string(64, 'b');
    if (f == 1) q["head"]["tree_size"] = q["head"]["tree_size"].get<int>() - 1;
    if (f == 2) q["head"]["leaf_index"] = 0;
    const std::string bad = (dir_ / "bad_proof.json").string();
    spit(bad, q.dump());
    auto v = check(bad, "--head " + head + " --pubkey " + pub);
    EXPECT_EQ(v.status, 1) << "proof " << f << " accepted: " << v.output;
  }
  const std::string first_head = (dir_ / "first_head.json").string();
  ASSERT_EQ(mt::run_marginet("ledger head --size " + std::to_string(sizes_[0]) + " --ledger " + ledger_ + " --out " +
                             first_head)
                .status,
            0);
  EXPECT_EQ(check(proof, "--head " + first_head + " --pubkey " + pub).status, 1)
      << "a proof against the latest head does not hold under an earlier one";
  const std::string proof1 = (dir_ / "p2_first.json").string();
  ASSERT_EQ(mt::run_marginet("ledger prove 2 --head-size " + std::to_string(sizes_[0]) + " --ledger " + ledger_ +
                             " --out " + proof1)
                .status,
            0);
  EXPECT_EQ(check(proof1, "--head " + first_head + " --pubkey " + pub).status, 0) << "but its own proof does";
  // No head covers the entry; usage errors (exit 2).
  EXPECT_EQ(check(late_proof, "--pubkey " + pub).status, 1);
  EXPECT_EQ(check(proof, "--head " + head).status, 2) << "a head without a key proves nothing";
  EXPECT_EQ(check(proof, "").status, 2);
  EXPECT_EQ(check(proof, "--head " + head + " --pubkey " + key_name_ + ".sign.key").status, 2)
      << "a secret key file is not a public key file";
}

}  // namespace
