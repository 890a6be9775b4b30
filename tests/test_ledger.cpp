// The settlement ledger: hash chain, per-cycle RFC 6962 roots, inclusion proofs (checked by
// the shipped Python checker too), and tamper evidence: one changed byte in one row, through
// SQLite or straight in the file, makes `ledger verify` fail naming that entry.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "models/errors.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/merkle.hpp"
#include "tests/run_command.hpp"

namespace {

using namespace marginet;
namespace fs = std::filesystem;
namespace mt = marginet::testing;
using json = nlohmann::json;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("marginet_ledger_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Two cycles, c1 closed (7 entries + root entry), c2 open (5 entries), interleaved.
void fill(SqliteDb& db, Ledger& ledger) {
  db.begin();
  for (int i = 0; i < 4; ++i)
    ledger.append("c1", "instruction.state", "2024-06-28T08:00:00Z",
                  json({{"instruction", "c1/M" + std::to_string(i) + "/BTC/in"}, {"to", "final"}}).dump());
  for (int i = 0; i < 2; ++i)
    ledger.append("c2", "instruction.state", "2024-06-28T08:00:01Z",
                  json({{"instruction", "c2/M" + std::to_string(i) + "/ETH/out"}, {"to", "submitted"}}).dump());
  for (int i = 4; i < 7; ++i)
    ledger.append("c1", "instruction.state", "2024-06-28T08:00:02Z",
                  json({{"instruction", "c1/M" + std::to_string(i) + "/BTC/in"}, {"to", "final"}}).dump());
  ledger.close_cycle("c1", "2024-06-28T08:00:03Z");
  for (int i = 2; i < 5; ++i)
    ledger.append("c2", "instruction.state", "2024-06-28T08:00:04Z",
                  json({{"instruction", "c2/M" + std::to_string(i) + "/ETH/out"}, {"to", "submitted"}}).dump());
  db.commit();
}

TEST(Ledger, EntriesAreHashChainedAndVerify) {
  const auto dir = fresh_dir("chain");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  fill(db, ledger);
  const auto es = ledger.entries();
  ASSERT_EQ(es.size(), 13u);
  EXPECT_EQ(es[0].prev_hash, std::string(64, '0'));
  for (std::size_t i = 0; i < es.size(); ++i) {
    EXPECT_EQ(es[i].seq, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(es[i].hash, merkle::to_hex(merkle::sha256(ledger_entry_bytes(es[i]))));
    if (i > 0) {
      EXPECT_EQ(es[i].prev_hash, es[i - 1].hash);
    }
  }
  const auto rep = ledger.verify();
  EXPECT_TRUE(rep.ok) << rep.message;
  EXPECT_EQ(rep.entries, 13);
  EXPECT_EQ(rep.cycles_checked, 1);
}

TEST(Ledger, AppendOutsideATransactionIsABug) {
  const auto dir = fresh_dir("notx");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  EXPECT_THROW(ledger.append("c1", "k", "t", "{}"), marginet::logic_error);
}

TEST(Ledger, CycleRootIsTheRfc6962RootOfItsEntries) {
  const auto dir = fresh_dir("root");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  fill(db, ledger);
  std::vector<merkle::Hash> leaves;
  for (const auto& e : ledger.entries())
    if (e.cycle_id == "c1") leaves.push_back(merkle::leaf_hash(ledger_entry_bytes(e)));
  ASSERT_EQ(leaves.size(), 7u);
  EXPECT_EQ(ledger.cycle_root("c1").value(), merkle::to_hex(merkle::tree_root(leaves)));
  // The root is also chained: a ledger-level cycle.root entry records it.
  const auto root_entry = ledger.entry(10).value();  // 9 entries, then the root
  EXPECT_EQ(root_entry.kind, "cycle.root");
  EXPECT_EQ(root_entry.cycle_id, "");
  EXPECT_EQ(json::parse(root_entry.body)["root"], ledger.cycle_root("c1").value());
  EXPECT_FALSE(ledger.cycle_root("c2").has_value());
}

TEST(Ledger, EveryEntryHasAnInclusionProofThatLeadsToItsRoot) {
  const auto dir = fresh_dir("prove");
  SqliteDb db((dir / "l.sqlite").string());
  Ledger ledger(db);
  fill(db, ledger);
  for (const auto& e : ledger.entries()) {
    if (e.cycle_id.empty()) {
      EXPECT_THROW(ledger.prove(e.seq), input_error);
      continue;
    }
    const InclusionProof p = ledger.prove(e.seq);
    EXPECT_EQ(p.cycle_closed, e.cycle_id == "c1");
    EXPECT_EQ(p.tree_size, e.cycle_id == "c1" ? 7u : 5u);
    std::vector<merkle::Hash> path;
    for (const auto& h : p.audit_path) path.push_back(merkle::from_hex(h).value());
    const auto root = merkle::root_from_audit_path(p.leaf_index, p.tree_size,
                                                   merkle::leaf_hash(p.entry_bytes), path);
    ASSERT_TRUE(root.has_value());
    EXPECT_EQ(merkle::to_hex(*root), p.root) << "entry " << e.seq;
  }
  EXPECT_EQ(ledger.prove(1).root, ledger.cycle_root("c1").value());
  EXPECT_THROW(ledger.prove(99), input_error);
  EXPECT_THROW(ledger.prove(0), input_error);   // not entry 1
  EXPECT_THROW(ledger.prove(-1), input_error);
  EXPECT_FALSE(ledger.entry(0).has_value());
}

TEST(Ledger, ChangingOneByteOfARowThroughSqliteIsNamed) {
  const auto dir = fresh_dir("tamper_sql");
  {
    SqliteDb db((dir / "l.sqlite").string());
    Ledger ledger(db);
    fill(db, ledger);
  }
  struct Case { const char* sql; std::int64_t seq; };
  const Case cases[] = {
      {"UPDATE ledger_entries SET body = replace(body, 'final', 'fina1') WHERE seq = 3", 3},
      {"UPDATE ledger_entries SET at = '2024-06-28T08:00:09Z' WHERE seq = 10", 10},
      {"UPDATE ledger_entries SET hash = '1' || substr(hash, 2) WHERE seq = 6", 6},
      {"UPDATE ledger_entries SET cycle_id = 'c9' WHERE seq = 12", 12},
  };
  for (const Case& c : cases) {
    fs::copy_file(dir / "l.sqlite", dir / "t.sqlite", fs::copy_options::overwrite_existing);
    SqliteDb db((dir / "t.sqlite").string());
    db.exec(c.sql);
    Ledger ledger(db);
    const auto rep = ledger.verify();
    EXPECT_FALSE(rep.ok) << c.sql;
    EXPECT_EQ(rep.first_bad_seq, c.seq) << c.sql << ": " << rep.message;
    EXPECT_NE(rep.message.find("entry " + std::to_string(c.seq)), std::string::npos) << rep.message;
  }
  // A deleted row breaks the sequence; a rewritten recorded root is caught too.
  {
    fs::copy_file(dir / "l.sqlite", dir / "t.sqlite", fs::copy_options::overwrite_existing);
    SqliteDb db((dir / "t.sqlite").string());
    db.exec("DELETE FROM ledger_entries WHERE seq = 5");
    Ledger ledger(db);
    const auto rep = ledger.verify();
    EXPECT_FALSE(rep.ok);
    EXPECT_EQ(rep.first_bad_seq, 6) << rep.message;
  }
  {
    fs::copy_file(dir / "l.sqlite", dir / "t.sqlite", fs::copy_options::overwrite_existing);
    SqliteDb db((dir / "t.sqlite").string());
    db.exec("UPDATE ledger_cycle_roots SET root = '00' || substr(root, 3) WHERE cycle_id = 'c1'");
    Ledger ledger(db);
    EXPECT_FALSE(ledger.verify().ok);
  }
}

// Flip one byte of a row in the database file itself (after the WAL is checkpointed into it).
TEST(Ledger, ChangingOneByteInTheFileIsNamedByTheCli) {
  const auto dir = fresh_dir("tamper_file");
  const std::string path = (dir / "l.sqlite").string();
  {
    SqliteDb db(path);
    Ledger ledger(db);
    fill(db, ledger);
  }  // closing the last connection checkpoints the WAL into the file
  auto ok = mt::run_marginet("ledger verify --ledger " + path);
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("ok: 13 entries, 1 cycle roots"), std::string::npos) << ok.output;

  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string needle = "c2/M3/ETH/out";  // in entry 12's body only (no index on bodies)
  const auto pos = bytes.find(needle);
  ASSERT_NE(pos, std::string::npos);
  ASSERT_EQ(bytes.find(needle, pos + 1), std::string::npos);
  bytes[pos + 3] = 'N';  // "M3" -> "N3"
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto bad = mt::run_marginet("ledger verify --ledger " + path);
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("entry 12"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("FAILED"), std::string::npos) << bad.output;
}

TEST(Ledger, TheShippedPythonCheckerAcceptsProofsAndRejectsForgeries) {
  // Debian's python3 when present (a version manager's shim costs half a second per call).
  const std::string python = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  if (mt::run_command(python + " -c 'import hashlib, json'").status != 0) GTEST_SKIP() << "no python3";
  const auto dir = fresh_dir("python");
  const std::string path = (dir / "l.sqlite").string();
  {
    SqliteDb db(path);
    Ledger ledger(db);
    fill(db, ledger);
  }
  const std::string checker = std::string(MARGINET_SOURCE_DIR) + "/scripts/verify_proof.py";
  for (int seq : {1, 7, 9, 13}) {  // first, middle, last of c1; one of the open c2
    const std::string proof = (dir / ("p" + std::to_string(seq) + ".json")).string();
    auto r = mt::run_marginet("ledger prove " + std::to_string(seq) + " --ledger " + path + " --out " + proof);
    ASSERT_EQ(r.status, 0) << r.output;
    std::ifstream in(proof);
    json p = json::parse(in);
    // The trusted root: the closed cycle's root recorded in the ledger; for the open cycle, the
    // root of its entries so far (what a reader would take from `ledger prove` at that moment).
    std::string root = p["root"];
    if (p["cycle_closed"].get<bool>()) {
      SqliteDb db(path);
      Ledger ledger(db);
      root = ledger.cycle_root(p["cycle_id"]).value();
    }
    auto v = mt::run_command(python + " " + checker + " " + proof + " --root " + root);
    EXPECT_EQ(v.status, 0) << "entry " << seq << ": " << v.output;
    EXPECT_NE(v.output.find("OK"), std::string::npos) << v.output;
    // Without a trusted root a proof proves nothing: refused (exit 2).
    auto none = mt::run_command(python + " " + checker + " " + proof);
    EXPECT_EQ(none.status, 2) << none.output;
    // Forge: change the entry text, or the root, or one path element; claim another entry; or
    // forge a whole self-consistent proof (a one-leaf tree whose root is the forged leaf).
    for (int f = 0; f < 5; ++f) {
      json q = p;
      if (f == 0) q["entry"] = q["entry"].get<std::string>() + " ";
      if (f == 1) q["root"] = std::string(64, 'a');
      if (f == 2 && !q["audit_path"].empty()) q["audit_path"][0] = std::string(64, 'b');
      if (f == 2 && q["audit_path"].empty()) continue;
      if (f == 3) q["entry_seq"] = q["entry_seq"].get<int>() + 1;
      if (f == 4) {
        const std::string text = q["entry"].get<std::string>() + " forged";
        const std::string leaf = merkle::to_hex(merkle::leaf_hash(text));
        q["entry"] = text;
        q["entry_hash"] = merkle::to_hex(merkle::sha256(text));
        q["leaf_hash"] = leaf;
        q["leaf_index"] = 0;
        q["tree_size"] = 1;
        q["audit_path"] = json::array();
        q["root"] = leaf;
      }
      const std::string forged = (dir / "forged.json").string();
      std::ofstream(forged) << q.dump();
      auto x = mt::run_command(python + " " + checker + " " + forged + " --root " + root);
      EXPECT_EQ(x.status, 1) << "forgery " << f << " of entry " << seq << " accepted: " << x.output;
    }
  }
  // The closed cycle's proof matches the root published in the ledger.
  auto r = mt::run_marginet("ledger prove 3 --ledger " + path, false);
  const json p = json::parse(r.output);
  SqliteDb db(path);
  Ledger ledger(db);
  EXPECT_EQ(p["root"], ledger.cycle_root("c1").value());
  EXPECT_EQ(p["cycle_closed"], true);
}

TEST(Ledger, CliRejectsMissingFilesAndNonLedgers) {
  const auto dir = fresh_dir("cli");
  auto r = mt::run_marginet("ledger verify --ledger " + (dir / "nope.sqlite").string());
  EXPECT_EQ(r.status, 2) << r.output;
  {
    SqliteDb db((dir / "other.sqlite").string());
    db.exec("CREATE TABLE t(x)");
  }
  r = mt::run_marginet("ledger verify --ledger " + (dir / "other.sqlite").string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("not a marginet ledger"), std::string::npos) << r.output;
  r = mt::run_marginet("ledger frobnicate");
  EXPECT_EQ(r.status, 2) << r.output;
}

}  // namespace
