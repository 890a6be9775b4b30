// The clearing store (SPEC §9 part 1): trade validation and canonical encoding, idempotency,
// packages all or nothing, cancels, signatures, the single-writer lock, schema versions, and a
// property test of positions against an independent model.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <msgpack.hpp>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "models/errors.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/clearing/sqlite_clearing_store.hpp"
#include "service/clearing/trade.hpp"
#include "service/clearing/trade_csv.hpp"
#include "service/db/sqlite.hpp"
#include "service/db/writer_lock.hpp"

namespace {

namespace fs = std::filesystem;
using namespace marginet;

// ---- helpers -------------------------------------------------------------------------------

TradeInput make_trade(const std::string& id, const std::string& account, const std::string& instrument,
                      const std::string& quantity, const std::string& price = "100",
                      const std::string& package_id = "", const std::string& source = "desk-a") {
  TradeInput t;
  t.source = source;
  t.trade_id = id;
  t.account = account;
  t.instrument = instrument;
  t.quantity_text = quantity;
  t.price_text = price;
  t.time = "2024-06-28T08:00:00Z";
  t.package_id = package_id;
  return t;
}

/// Runs f and returns the input_error it throws; a test failure when it throws none.
input_error catch_input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an input_error";
  return input_error("(none thrown)");
}

/// SQL through a separate connection (what a person with sqlite3 could do to the file).
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << msg;
}

std::int64_t raw_int(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  EXPECT_EQ(sqlite3_step(st), SQLITE_ROW) << sql;
  const std::int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The same decimal written differently: "-12.5" -> "-012.50", "3" -> "+03.0".
std::string respell(const std::string& q) {
  const bool negative = q[0] == '-';
  std::string out = (negative ? "-0" : "+0") + q.substr(negative ? 1 : 0);
  return out + (q.find('.') == std::string::npos ? ".0" : "0");
}

PositionMap as_map(const std::vector<PositionRow>& rows) {
  PositionMap m;
  for (const PositionRow& r : rows) m[{r.account, r.instrument}] = r.quantity_units;
  return m;
}

class ClearingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "marginet_clearing_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (fs::path(dir_) / "clearing.sqlite").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ClearingStore> open(OpenMode mode = OpenMode::writer, ClearingStoreOptions o = {}) {
    return open_clearing_store(path_, mode, std::move(o));
  }

  std::string dir_;
  std::string path_;
};

// ---- trades: validation and canonical encoding ---------------------------------------------

TEST(CanonicalDecimal, Rules) {
  EXPECT_EQ(canonical_decimal("+001.500"), "1.5");
  EXPECT_EQ(canonical_decimal("-0.0"), "0");
  EXPECT_EQ(canonical_decimal("-0"), "0");
  EXPECT_EQ(canonical_decimal(".5"), "0.5");
  EXPECT_EQ(canonical_decimal("7."), "7");
  EXPECT_EQ(canonical_decimal("-00012"), "-12");
  EXPECT_EQ(canonical_decimal("100"), "100");
  EXPECT_EQ(canonical_decimal("-0.000100"), "-0.0001");
  EXPECT_EQ(canonical_decimal("123456789012345678901234567890.10"), "123456789012345678901234567890.1");
  EXPECT_EQ(canonical_decimal(""), std::nullopt);
  EXPECT_EQ(canonical_decimal("."), std::nullopt);
  EXPECT_EQ(canonical_decimal("-"), std::nullopt);
  EXPECT_EQ(canonical_decimal("1e5"), std::nullopt);
  EXPECT_EQ(canonical_decimal(" 1"), std::nullopt);
  EXPECT_EQ(canonical_decimal("1,000"), std::nullopt);
  EXPECT_EQ(canonical_decimal("--1"), std::nullopt);
  EXPECT_EQ(quantity_text(-150000000), "-1.5");
  EXPECT_EQ(quantity_text(1), "0.00000001");
  EXPECT_EQ(quantity_text(200000000), "2");
}

TEST(TradeValidation, QuantitiesSidesAndFields) {
  TradeInput in = make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1.50", "064250.50");
  in.side = Side::sell;
  const Trade t = parse_trade(in);
  EXPECT_EQ(t.quantity_units, -150000000);
  EXPECT_EQ(t.quantity(), "-1.5");
  EXPECT_EQ(t.price, "64250.5");
  EXPECT_EQ(t.price_value.mantissa, 642505);
  EXPECT_EQ(t.price_value.decimals, 1);

  auto field_of = [](TradeInput bad) {
    Trade out;
    const auto e = validate_trade(bad, out);
    return e ? e->field : std::string("(valid)");
  };
  const TradeInput ok = make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1");
  EXPECT_EQ(field_of(ok), "(valid)");
  TradeInput b = ok;
  b.quantity_text = "1.123456789";  // 9 decimals
  EXPECT_EQ(field_of(b), "quantity");
  b.quantity_text = "1.123456780";  // a trailing zero is exact
  EXPECT_EQ(field_of(b), "(valid)");
  b.quantity_text = "0.000";
  EXPECT_EQ(field_of(b), "quantity");
  b.quantity_text = "100000000000";  // 1e11 contracts = 1e19 units: past int64
  EXPECT_EQ(field_of(b), "quantity");
  b.quantity_text = "-1";
  b.side = Side::buy;
  EXPECT_EQ(field_of(b), "quantity");
  b = ok;
  b.price_text = "-1";
  EXPECT_EQ(field_of(b), "price");
  b.price_text = "1e3";
  EXPECT_EQ(field_of(b), "price");
  b = ok;
  b.time = "2024-02-30T08:00:00Z";
  EXPECT_EQ(field_of(b), "time");
  b.time = "2024-06-28 08:00:00Z";
  EXPECT_EQ(field_of(b), "time");
  b.time = "2024-06-28T08:00:00.1234567891Z";
  EXPECT_EQ(field_of(b), "time");
  b.time = "2024-02-29T23:59:59.5Z";
  EXPECT_EQ(field_of(b), "(valid)");
  b = ok;
  b.trade_id = "";
  EXPECT_EQ(field_of(b), "trade_id");
  b.trade_id = std::string(129, 'x');
  EXPECT_EQ(field_of(b), "trade_id");
  b.trade_id = "a\tb";
  EXPECT_EQ(field_of(b), "trade_id");
  b.trade_id = "\xC3\x28";  // broken UTF-8
  EXPECT_EQ(field_of(b), "trade_id");
  b.trade_id = "\xC0\xAF";  // overlong '/'
  EXPECT_EQ(field_of(b), "trade_id");
  b.trade_id = "caf\xC3\xA9";
  EXPECT_EQ(field_of(b), "(valid)");
  b = ok;
  b.signature_hex = "abcd";
  EXPECT_EQ(field_of(b), "signature");
  b = ok;
  b.package_id = std::string(200, 'p');
  EXPECT_EQ(field_of(b), "package_id");
  EXPECT_THROW(parse_trade(b), input_error);
}

// Byte for byte what Python's msgpack.packb([...], use_bin_type=True) gives (msgpack 1.0.3).
TEST(TradeEncoding, CanonicalBytesMatchPythonMsgpack) {
  auto hex = [](const std::string& s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
      out += d[c >> 4];
      out += d[c & 15];
    }
    return out;
  };
  TradeInput a = make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1.5", "64250.50");
  a.side = Side::sell;
  EXPECT_EQ(hex(canonical_trade_bytes(parse_trade(a))),
            "99b16d617267696e65742d74726164652d7631a66465736b2d61a3542d31a441434331ad4254432d50455250"
            "455455414ca42d312e35a736343235302e35b4323032342d30362d32385430383a30303a30305aa0");
  // str8 (a 40-byte string), UTF-8, the smallest quantity, a zero price, a package.
  TradeInput b = make_trade("T-2", "ACC-\xC3\xA9", std::string(40, 'X'), "0.00000001", "0.000", "RFQ-7");
  b.time = "2024-06-28T08:00:00.125Z";
  EXPECT_EQ(hex(canonical_trade_bytes(parse_trade(b))),
            "99b16d617267696e65742d74726164652d7631a66465736b2d61a3542d32a64143432dc3a9d928585858585858"
            "58585858585858585858585858585858585858585858585858585858585858585858aa302e3030303030303031"
            "a130b8323032342d30362d32385430383a30303a30302e3132355aa55246512d37");
  // The signature is not part of the contents.
  Trade ta = parse_trade(a);
  const std::string digest = trade_digest_hex(ta);
  ta.signature_hex = std::string(128, 'a');
  EXPECT_EQ(trade_digest_hex(ta), digest);
  EXPECT_EQ(digest.size(), 64u);
}

TEST(TradeEncoding, HandWrittenEncodingEqualsMsgpackCxx) {
  // canonical_trade_bytes() writes the MessagePack by hand: compare with msgpack-cxx over every
  // str size class (fixstr, str8, str16, str32; the long ones only reachable without validation).
  for (std::size_t len : {0u, 1u, 31u, 32u, 33u, 128u, 255u, 256u, 65535u, 65536u, 70000u}) {
    Trade t = parse_trade(make_trade("T-1", "ACC1", "BTC-PERPETUAL", "-1.25", "64250.5", "P"));
    t.trade_id = std::string(len, 'x');
    t.package_id = std::string(len / 2, 'p');
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(9);
    for (const std::string& s : {std::string(kTradeEncodingTag), t.source, t.trade_id, t.account, t.instrument,
                                 t.quantity(), t.price, t.time, t.package_id})
      pk.pack(s);
    EXPECT_EQ(canonical_trade_bytes(t), std::string(buf.data(), buf.size())) << len;
  }
}

TEST(TradeSignature, SignAndVerify) {
  const Ed25519Keypair k = ed25519_keypair_from_seed(std::string(64, '1'));
  EXPECT_EQ(k.public_key_hex.size(), 64u);
  EXPECT_EQ(k.secret_key_hex.size(), 128u);
  Trade t = parse_trade(make_trade("T-1", "ACC1", "BTC-PERPETUAL", "2"));
  t.signature_hex = sign_trade_hex(t, k.secret_key_hex);
  EXPECT_EQ(t.signature_hex.size(), 128u);
  EXPECT_EQ(sign_trade_hex(t, std::string(64, '1')), t.signature_hex);  // the seed signs alike
  EXPECT_TRUE(verify_trade_signature(t, k.public_key_hex));
  Trade changed = t;
  changed.quantity_units += 1;
  EXPECT_FALSE(verify_trade_signature(changed, k.public_key_hex));
  EXPECT_FALSE(verify_trade_signature(t, generate_ed25519_keypair().public_key_hex));
  EXPECT_FALSE(verify_trade_signature(t, "zz"));
  EXPECT_THROW(sign_trade_hex(t, "00"), input_error);
}

// ---- the store -----------------------------------------------------------------------------

TEST_F(ClearingStoreTest, RecordsAndKeepsPositions) {
  auto s = open();
  const auto r = s->submit({Submission::trade(make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1.5")),
                            Submission::trade(make_trade("T-2", "ACC1", "BTC-PERPETUAL", "-0.25")),
                            Submission::trade(make_trade("T-3", "ACC2", "ETH-PERPETUAL", "3"))});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].outcome, Outcome::recorded);
  EXPECT_EQ(r[0].journal_seqs, std::vector<std::int64_t>{1});
  EXPECT_EQ(r[1].journal_seqs, std::vector<std::int64_t>{2});
  EXPECT_EQ(r[2].journal_seqs, std::vector<std::int64_t>{3});
  EXPECT_EQ(s->journal_size(), 3);
  const std::vector<PositionRow> want = {{"ACC1", "BTC-PERPETUAL", 125000000}, {"ACC2", "ETH-PERPETUAL", 300000000}};
  EXPECT_EQ(s->positions(), want);
  EXPECT_EQ(s->positions("ACC2"), std::vector<PositionRow>({want[1]}));
  // Unregistered accounts were registered on first use under members of the same name.
  const auto accounts = s->accounts();
  ASSERT_EQ(accounts.size(), 2u);
  EXPECT_EQ(accounts[0].account, "ACC1");
  EXPECT_EQ(accounts[0].member, "ACC1");
  const auto members = s->members();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_FALSE(members[0].public_key_hex.has_value());
  // Journal queries.
  const auto j = s->trades({});
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[1].quantity_units, -25000000);
  EXPECT_EQ(j[1].kind, JournalKind::trade);
  EXPECT_EQ(j[1].price, "100");
  EXPECT_EQ(s->trades({"ACC1", "", 0, 0}).size(), 2u);
  EXPECT_EQ(s->trades({"", "ETH-PERPETUAL", 0, 0}).size(), 1u);
  EXPECT_EQ(s->trades({"", "", 1, 1}).front().seq, 2);
  EXPECT_TRUE(s->verify_journal().ok) << s->verify_journal().summary();
}

TEST_F(ClearingStoreTest, DuplicateAndConflict) {
  auto s = open();
  TradeInput t = make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1.5", "64250.5");
  EXPECT_EQ(s->submit({Submission::trade(t)})[0].outcome, Outcome::recorded);
  // Same contents, written differently: a duplicate, pointing at the original entry.
  TradeInput same = t;
  same.quantity_text = "+1.50000000";
  same.price_text = "064250.500";
  const auto d = s->submit({Submission::trade(same)})[0];
  EXPECT_EQ(d.outcome, Outcome::duplicate);
  EXPECT_EQ(d.journal_seqs, std::vector<std::int64_t>{1});
  EXPECT_EQ(s->journal_size(), 1);
  // Other contents under the same key: a conflict naming what differs; no change.
  TradeInput other = t;
  other.quantity_text = "2";
  other.price_text = "64251";
  const auto c = s->submit({Submission::trade(other)})[0];
  EXPECT_EQ(c.outcome, Outcome::conflict);
  EXPECT_TRUE(contains(c.message, "quantity '2' (recorded '1.5')")) << c.message;
  EXPECT_TRUE(contains(c.message, "price '64251' (recorded '64250.5')")) << c.message;
  EXPECT_FALSE(contains(c.message, "account")) << c.message;
  EXPECT_EQ(c.bad_leg, 0);
  EXPECT_EQ(s->journal_size(), 1);
  EXPECT_EQ(s->positions().front().quantity_units, 150000000);
  // The same trade id from another source is another trade.
  TradeInput elsewhere = t;
  elsewhere.source = "desk-b";
  EXPECT_EQ(s->submit({Submission::trade(elsewhere)})[0].outcome, Outcome::recorded);
  EXPECT_EQ(s->positions().front().quantity_units, 300000000);
}

TEST_F(ClearingStoreTest, PackageAllOrNothing) {
  ClearingStoreOptions o;
  o.instruments = std::unordered_set<std::string>{"BTC-PERPETUAL", "BTC-28JUN24", "BTC-28JUN24-70000-C"};
  auto s = open(OpenMode::writer, o);
  const std::vector<TradeInput> good = {make_trade("P1-a", "ACC1", "BTC-28JUN24-70000-C", "2", "0.0125", "RFQ-1"),
                                        make_trade("P1-b", "ACC1", "BTC-28JUN24", "-2", "64300", "RFQ-1"),
                                        make_trade("P1-c", "ACC2", "BTC-PERPETUAL", "1", "64000", "RFQ-1")};
  // A bad field in the middle leg: nothing of the package, the leg named.
  auto bad = good;
  bad[1].quantity_text = "1.000000001";
  auto r = s->submit({Submission::package(bad)})[0];
  EXPECT_EQ(r.outcome, Outcome::rejected);
  EXPECT_EQ(r.bad_leg, 1);
  EXPECT_TRUE(contains(r.message, "leg 1 (trade 'P1-b')")) << r.message;
  EXPECT_TRUE(contains(r.message, "quantity")) << r.message;
  // An unknown instrument in the last leg.
  bad = good;
  bad[2].instrument = "BTC-XYZ";
  r = s->submit({Submission::package(bad)})[0];
  EXPECT_EQ(r.outcome, Outcome::unknown_instrument);
  EXPECT_EQ(r.bad_leg, 2);
  EXPECT_TRUE(contains(r.message, "'BTC-XYZ'")) << r.message;
  // Malformed packages.
  bad = good;
  bad[2].package_id = "RFQ-2";
  r = s->submit({Submission::package(bad)})[0];
  EXPECT_EQ(r.outcome, Outcome::rejected);
  EXPECT_EQ(r.bad_leg, 2);
  bad = good;
  bad[2].trade_id = "P1-a";
  r = s->submit({Submission::package(bad)})[0];
  EXPECT_EQ(r.outcome, Outcome::rejected);
  EXPECT_EQ(r.bad_leg, 2);
  bad = good;
  for (auto& l : bad) l.package_id = "";
  EXPECT_EQ(s->submit({Submission::package(bad)})[0].outcome, Outcome::rejected);
  EXPECT_EQ(s->submit({Submission{}})[0].outcome, Outcome::rejected);
  EXPECT_EQ(s->journal_size(), 0);
  EXPECT_TRUE(s->positions().empty());
  EXPECT_TRUE(s->accounts().empty());  // the failed legs' accounts were not registered either

  // A bad leg discovered while recording (a position overflow) rolls back the earlier legs too.
  EXPECT_EQ(s->submit({Submission::trade(make_trade("BIG", "ACC2", "BTC-PERPETUAL", "90000000000"))})[0].outcome,
            Outcome::recorded);
  r = s->submit({Submission::package(good)})[0];  // leg 2 adds 1 to a position of 9e10: still fits
  EXPECT_EQ(r.outcome, Outcome::recorded);
  auto over = good;
  for (std::size_t i = 0; i < over.size(); ++i) over[i].trade_id += "-2";
  for (auto& l : over) l.package_id = "RFQ-OVER";
  over[2].quantity_text = "2500000000";  // 9e10 + 1 + 2.5e9 contracts = 9.25e18 units > INT64_MAX
  r = s->submit({Submission::package(over)})[0];
  EXPECT_EQ(r.outcome, Outcome::rejected);
  EXPECT_EQ(r.bad_leg, 2);
  EXPECT_TRUE(contains(r.message, "overflow")) << r.message;
  EXPECT_EQ(s->journal_size(), 4);  // BIG + the 3 legs of RFQ-1
  EXPECT_EQ(as_map(s->positions()), s->rebuild_positions_from_journal());
  EXPECT_TRUE(s->verify_journal().ok) << s->verify_journal().summary();

  // The batch: one bad submission does not stop the others.
  const auto b = s->submit({Submission::trade(make_trade("X-1", "ACC3", "BTC-PERPETUAL", "1")),
                            Submission::trade(make_trade("X-2", "ACC3", "NOPE", "1")),
                            Submission::trade(make_trade("X-3", "ACC3", "BTC-PERPETUAL", "1"))});
  EXPECT_EQ(b[0].outcome, Outcome::recorded);
  EXPECT_EQ(b[1].outcome, Outcome::unknown_instrument);
  EXPECT_EQ(b[2].outcome, Outcome::recorded);
  EXPECT_EQ(b[2].journal_seqs, std::vector<std::int64_t>{6});
}

TEST_F(ClearingStoreTest, PackageResend) {
  auto s = open();
  const std::vector<TradeInput> legs = {make_trade("P-a", "ACC1", "BTC-28JUN24", "1", "64000", "RFQ-9"),
                                        make_trade("P-b", "ACC1", "BTC-PERPETUAL", "-1", "64010", "RFQ-9")};
  const auto first = s->submit({Submission::package(legs)})[0];
  EXPECT_EQ(first.outcome, Outcome::recorded);
  EXPECT_EQ(first.journal_seqs, (std::vector<std::int64_t>{1, 2}));
  const auto again = s->submit({Submission::package(legs)})[0];
  EXPECT_EQ(again.outcome, Outcome::duplicate);
  EXPECT_EQ(again.journal_seqs, first.journal_seqs);
  // One leg sent alone, unchanged: a duplicate too.
  EXPECT_EQ(s->submit({Submission::trade(legs[1])})[0].outcome, Outcome::duplicate);
  // A resend with one leg changed: conflict naming the leg.
  auto changed = legs;
  changed[1].price_text = "64011";
  auto r = s->submit({Submission::package(changed)})[0];
  EXPECT_EQ(r.outcome, Outcome::conflict);
  EXPECT_EQ(r.bad_leg, 1);
  // A resend with a new leg added: partly recorded -> conflict, the new leg not recorded.
  auto more = legs;
  more.push_back(make_trade("P-c", "ACC1", "BTC-28JUN24-70000-C", "1", "0.01", "RFQ-9"));
  r = s->submit({Submission::package(more)})[0];
  EXPECT_EQ(r.outcome, Outcome::conflict);
  EXPECT_EQ(r.bad_leg, 2);
  EXPECT_TRUE(contains(r.message, "partly recorded")) << r.message;
  EXPECT_EQ(s->journal_size(), 2);
}

TEST_F(ClearingStoreTest, Cancel) {
  auto s = open();
  s->submit({Submission::trade(make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1.5")),
             Submission::trade(make_trade("T-2", "ACC1", "BTC-PERPETUAL", "0.5"))});
  const auto c = s->cancel("desk-a", "T-1", "booked twice");
  EXPECT_EQ(c.outcome, Outcome::recorded);
  EXPECT_EQ(c.journal_seqs, std::vector<std::int64_t>{3});
  EXPECT_EQ(s->journal_size(), 3);  // the journal grows; nothing is deleted
  EXPECT_EQ(s->positions().front().quantity_units, 50000000);
  const auto j = s->trades({});
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0].kind, JournalKind::trade);
  EXPECT_EQ(j[0].quantity_units, 150000000);
  EXPECT_EQ(j[2].kind, JournalKind::cancel);
  EXPECT_EQ(j[2].quantity_units, -150000000);
  EXPECT_EQ(j[2].trade_id, "T-1");
  EXPECT_EQ(j[2].reason, "booked twice");
  const auto twice = s->cancel("desk-a", "T-1", "again");
  EXPECT_EQ(twice.outcome, Outcome::duplicate);
  EXPECT_EQ(twice.journal_seqs, std::vector<std::int64_t>{3});
  EXPECT_EQ(s->cancel("desk-a", "T-404", "").outcome, Outcome::not_found);
  EXPECT_EQ(s->cancel("desk-b", "T-2", "").outcome, Outcome::not_found);
  EXPECT_EQ(s->cancel(CancelRequest{"desk-a", "T-2", "", "yesterday"}).outcome, Outcome::rejected);
  // A resend of the cancelled trade is still a duplicate (it is not recorded again).
  EXPECT_EQ(s->submit({Submission::trade(make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1.5"))})[0].outcome,
            Outcome::duplicate);
  // Cancelling the last trade of a position removes the position.
  EXPECT_EQ(s->cancel(CancelRequest{"desk-a", "T-2", "", "2024-06-28T09:00:00Z"}).outcome, Outcome::recorded);
  EXPECT_TRUE(s->positions().empty());
  EXPECT_EQ(s->trades({}).back().time, "2024-06-28T09:00:00Z");
  EXPECT_TRUE(s->rebuild_positions_from_journal().empty());
  const auto v = s->verify_journal();
  EXPECT_TRUE(v.ok) << v.summary();
  EXPECT_EQ(v.journal_entries, 4);
  EXPECT_EQ(v.trades, 2);
}

TEST_F(ClearingStoreTest, Signatures) {
  const Ed25519Keypair key = ed25519_keypair_from_seed(std::string(64, 'a'));
  const Ed25519Keypair other = generate_ed25519_keypair();
  auto s = open();
  s->add_member("M1", key.public_key_hex);
  s->add_account("M1-main", "M1");
  EXPECT_THROW(s->add_member("M1", std::nullopt), input_error);
  EXPECT_THROW(s->add_account("M1-main", "M1"), input_error);
  EXPECT_THROW(s->add_account("X", "nobody"), input_error);
  EXPECT_THROW(s->add_member("M2", std::string("abc")), input_error);

  auto signed_with = [](TradeInput in, const std::string& secret) {
    in.signature_hex = sign_trade_hex(parse_trade(in), secret);
    return in;
  };
  // Valid: recorded, the signature stored with the trade.
  const TradeInput good = signed_with(make_trade("S-1", "M1-main", "BTC-PERPETUAL", "1"), key.secret_key_hex);
  EXPECT_EQ(s->submit({Submission::trade(good)})[0].outcome, Outcome::recorded);
  EXPECT_EQ(s->trades({}).back().signature_hex, good.signature_hex);
  // Tampered quantity: the signature was over 1, the trade says 2.
  TradeInput tampered = signed_with(make_trade("S-2", "M1-main", "BTC-PERPETUAL", "1"), key.secret_key_hex);
  tampered.quantity_text = "2";
  auto r = s->submit({Submission::trade(tampered)})[0];
  EXPECT_EQ(r.outcome, Outcome::bad_signature);
  EXPECT_TRUE(contains(r.message, "does not verify")) << r.message;
  // Wrong key.
  r = s->submit({Submission::trade(signed_with(make_trade("S-3", "M1-main", "BTC-PERPETUAL", "1"), other.secret_key_hex))})[0];
  EXPECT_EQ(r.outcome, Outcome::bad_signature);
  // A registered member with a key, no signature: refused.
  r = s->submit({Submission::trade(make_trade("S-4", "M1-main", "BTC-PERPETUAL", "1"))})[0];
  EXPECT_EQ(r.outcome, Outcome::bad_signature);
  EXPECT_TRUE(contains(r.message, "must be signed")) << r.message;
  // The member's own name as an account (registered on first use under the member): signed too.
  r = s->submit({Submission::trade(make_trade("S-5", "M1", "BTC-PERPETUAL", "1"))})[0];
  EXPECT_EQ(r.outcome, Outcome::bad_signature);
  // An unregistered account/member has no key: accepted without a signature.
  EXPECT_EQ(s->submit({Submission::trade(make_trade("U-1", "NEWCO", "BTC-PERPETUAL", "1"))})[0].outcome,
            Outcome::recorded);
  // A package with one badly signed leg: nothing recorded.
  const auto pkg = s->submit({Submission::package(
      {signed_with(make_trade("S-6", "M1-main", "BTC-PERPETUAL", "1", "100", "PK"), key.secret_key_hex),
       make_trade("S-7", "M1-main", "BTC-PERPETUAL", "1", "100", "PK")})})[0];
  EXPECT_EQ(pkg.outcome, Outcome::bad_signature);
  EXPECT_EQ(pkg.bad_leg, 1);
  EXPECT_EQ(s->journal_size(), 2);

  // Key rotation: old trades still check against the key they were recorded under.
  s->set_member_key("M1", other.public_key_hex);
  EXPECT_EQ(s->submit({Submission::trade(signed_with(make_trade("S-8", "M1-main", "BTC-PERPETUAL", "1"), key.secret_key_hex))})[0].outcome,
            Outcome::bad_signature);
  EXPECT_EQ(s->submit({Submission::trade(signed_with(make_trade("S-9", "M1-main", "BTC-PERPETUAL", "1"), other.secret_key_hex))})[0].outcome,
            Outcome::recorded);
  const auto v = s->verify_journal();
  EXPECT_TRUE(v.ok) << v.summary();
  EXPECT_EQ(v.signatures_checked, 2);
  EXPECT_THROW(s->set_member_key("nobody", std::nullopt), input_error);

  // Tamper with a stored signature through another connection: verify_journal reports it.
  s.reset();
  raw_exec(path_,
           "DROP TRIGGER journal_append_only_update;"
           "UPDATE journal SET signature = '" + std::string(128, '0') + "' WHERE trade_id = 'S-1';");
  auto reader = open(OpenMode::reader);
  const auto bad = reader->verify_journal();
  EXPECT_FALSE(bad.ok);
  EXPECT_TRUE(contains(bad.summary(), "journal entry 1: the signature of trade 'S-1'")) << bad.summary();
}

TEST_F(ClearingStoreTest, SingleWriterLock) {
  auto writer = open();
  writer->submit({Submission::trade(make_trade("T-1", "ACC1", "BTC-PERPETUAL", "1"))});
  const input_error e = catch_input_error([&] { open(); });
  EXPECT_TRUE(contains(e.what(), "clearing store " + path_ + " is locked by another writer (pid " +
                                     std::to_string(getpid()) + ")"))
      << e.what();
  // A reader opens while the writer holds the lock, sees committed state, cannot write.
  auto reader = open(OpenMode::reader);
  EXPECT_EQ(reader->journal_size(), 1);
  EXPECT_THROW(reader->submit({Submission::trade(make_trade("T-2", "ACC1", "BTC-PERPETUAL", "1"))}), usage_error);
  EXPECT_THROW(reader->cancel("desk-a", "T-1", ""), usage_error);
  // The refused writer did not disturb the first one.
  EXPECT_EQ(writer->submit({Submission::trade(make_trade("T-2", "ACC1", "BTC-PERPETUAL", "1"))})[0].outcome,
            Outcome::recorded);
  EXPECT_EQ(reader->journal_size(), 2);
  writer.reset();
  auto again = open();
  EXPECT_EQ(again->journal_size(), 2);
  // The reusable lock on its own.
  const input_error e2 = catch_input_error([&] { WriterLock second(path_, "clearing store"); });
  EXPECT_TRUE(contains(e2.what(), "locked by another writer")) << e2.what();
}

TEST_F(ClearingStoreTest, SchemaVersionAndFileKind) {
  {
    auto s = open();
    EXPECT_EQ(s->schema_version(), kClearingSchemaVersion);
  }
  EXPECT_EQ(raw_int(path_, "PRAGMA user_version"), kClearingSchemaVersion);
  EXPECT_EQ(raw_int(path_, "PRAGMA application_id"), kClearingApplicationId);

  // A newer version than this binary knows: refused, naming the file.
  raw_exec(path_, "PRAGMA user_version = 99");
  const input_error newer = catch_input_error([&] { open(); });
  EXPECT_EQ(newer.file(), path_);
  EXPECT_TRUE(contains(newer.what(), "version 99 is newer")) << newer.what();
  const input_error newer_r = catch_input_error([&] { open(OpenMode::reader); });
  EXPECT_TRUE(contains(newer_r.what(), "version 99 is newer")) << newer_r.what();

  // Another SQLite database: refused.
  const std::string other = (fs::path(dir_) / "other.sqlite").string();
  raw_exec(other, "CREATE TABLE ledger_entries(seq INTEGER PRIMARY KEY)");
  const input_error not_ours = catch_input_error([&] { open_clearing_store(other, OpenMode::writer); });
  EXPECT_EQ(not_ours.file(), other);
  EXPECT_TRUE(contains(not_ours.what(), "not a marginet clearing store")) << not_ours.what();
  // Not a database at all.
  const std::string junk = (fs::path(dir_) / "junk.sqlite").string();
  std::ofstream(junk) << "this is not a database, just text that is long enough to be read as a header.....\n";
  EXPECT_THROW(open_clearing_store(junk, OpenMode::writer), input_error);
  // A reader needs the file.
  EXPECT_THROW(open_clearing_store((fs::path(dir_) / "absent.sqlite").string(), OpenMode::reader), input_error);
}

TEST_F(ClearingStoreTest, ReopenKeepsEverything) {
  const Ed25519Keypair key = ed25519_keypair_from_seed(std::string(64, 'b'));
  std::vector<PositionRow> before;
  std::vector<JournalEntry> journal;
  {
    auto s = open();
    s->add_member("M1", key.public_key_hex);
    s->add_account("A1", "M1");
    TradeInput t = make_trade("T-1", "A1", "BTC-PERPETUAL", "3");
    t.signature_hex = sign_trade_hex(parse_trade(t), key.secret_key_hex);
    s->submit({Submission::trade(t), Submission::trade(make_trade("T-2", "B1", "ETH-PERPETUAL", "-2"))});
    s->cancel("desk-a", "T-2", "error");
    before = s->positions();
    journal = s->trades({});
  }
  auto s = open();
  EXPECT_EQ(s->positions(), before);
  ASSERT_EQ(s->trades({}).size(), journal.size());
  EXPECT_EQ(s->trades({}).back().recorded_at, journal.back().recorded_at);
  const auto members = s->members();  // by name: B1 (created by its first trade), M1
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[1].name, "M1");
  EXPECT_EQ(members[1].public_key_hex, key.public_key_hex);
  EXPECT_FALSE(members[0].public_key_hex.has_value());
  EXPECT_EQ(s->accounts().front().member, "M1");
  EXPECT_EQ(s->cancel("desk-a", "T-2", "").outcome, Outcome::duplicate);
  EXPECT_EQ(s->submit({Submission::trade(make_trade("T-1", "A1", "BTC-PERPETUAL", "3"))})[0].outcome,
            Outcome::duplicate);  // the signature does not count towards the contents
  EXPECT_TRUE(s->verify_journal().ok) << s->verify_journal().summary();
  // The journal refuses changes even through SQL.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM journal WHERE seq = 1", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

// ---- property test -------------------------------------------------------------------------

// Random batches of new trades, duplicates, conflicts, packages (some with a bad leg), resends
// and cancels. Every outcome is predicted by an independent model; at the end the kept
// positions, the rebuilt positions and the model agree to the unit.
TEST_F(ClearingStoreTest, PropertyPositionsEqualJournalAndModel) {
  const Ed25519Keypair key = ed25519_keypair_from_seed(std::string(64, 'c'));
  const std::vector<std::string> instruments = {"BTC-PERPETUAL", "ETH-PERPETUAL", "BTC-28JUN24",
                                                "BTC-28JUN24-70000-C"};
  const std::vector<std::string> accounts = {"A1", "A2", "A3", "A4", "SIGNED-1"};
  ClearingStoreOptions o;
  o.instruments = std::unordered_set<std::string>(instruments.begin(), instruments.end());
  auto s = open(OpenMode::writer, o);
  s->add_member("SIGNED", key.public_key_hex);
  s->add_account("SIGNED-1", "SIGNED");

  std::mt19937_64 rng(20240628);
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  struct Recorded {
    TradeInput input;
    std::int64_t units;
    bool cancelled = false;
  };
  std::vector<Recorded> recorded;  // model of the trades table
  std::map<std::string, std::size_t> by_id;
  PositionMap model;
  auto add = [&model](const std::string& a, const std::string& i, std::int64_t q) {
    std::int64_t& p = model[{a, i}];
    p += q;
    if (p == 0) model.erase({a, i});
  };
  int next_id = 0;
  auto new_trade = [&](const std::string& package_id) {
    TradeInput t = make_trade("T" + std::to_string(next_id++), accounts[pick(accounts.size())],
                              instruments[pick(instruments.size())], "", std::to_string(pick(100000)) + ".25",
                              package_id, pick(4) == 0 ? "desk-b" : "desk-a");
    std::int64_t units = static_cast<std::int64_t>(pick(2000000000)) + 1;
    if (pick(2)) {
      t.side = pick(2) ? Side::buy : Side::sell;
      t.quantity_text = format_money(units, kQuantityScale);  // "12.34000000": trailing zeros are fine
      if (*t.side == Side::sell) units = -units;
    } else {
      if (pick(2)) units = -units;
      t.quantity_text = quantity_text(units);
    }
    if (t.account == "SIGNED-1") t.signature_hex = sign_trade_hex(parse_trade(t), key.secret_key_hex);
    return std::make_pair(t, units);
  };

  std::int64_t ops = 0;
  std::map<Outcome, int> seen;
  while (ops < 3000) {
    std::vector<Submission> batch;
    std::vector<Outcome> expect;
    std::vector<std::function<void()>> on_success;  // model updates, applied in order
    const std::size_t batch_size = 1 + pick(8);
    for (std::size_t b = 0; b < batch_size; ++b, ++ops) {
      const std::size_t kind = pick(100);
      if (kind < 40 || recorded.empty()) {  // a new trade
        auto [t, units] = new_trade("");
        batch.push_back(Submission::trade(t));
        expect.push_back(Outcome::recorded);
        by_id[t.source + "/" + t.trade_id] = recorded.size();
        recorded.push_back({t, units});
        add(t.account, t.instrument, units);
      } else if (kind < 52) {  // a duplicate, maybe written differently
        const Recorded& r = recorded[pick(recorded.size())];
        TradeInput t = r.input;
        if (!t.side) t.quantity_text = respell(t.quantity_text);
        t.signature_hex.clear();  // the signature does not count
        batch.push_back(Submission::trade(t));
        expect.push_back(Outcome::duplicate);
      } else if (kind < 60) {  // a conflict
        TradeInput t = recorded[pick(recorded.size())].input;
        t.price_text = "7" + t.price_text;
        batch.push_back(Submission::trade(t));
        expect.push_back(Outcome::conflict);
      } else if (kind < 75) {  // a good package
        const std::string pid = "PKG" + std::to_string(next_id);
        std::vector<TradeInput> legs;
        const std::size_t n = 2 + pick(3);
        for (std::size_t i = 0; i < n; ++i) {
          auto [t, units] = new_trade(pid);
          legs.push_back(t);
          by_id[t.source + "/" + t.trade_id] = recorded.size();
          recorded.push_back({t, units});
          add(t.account, t.instrument, units);
        }
        batch.push_back(Submission::package(legs));
        expect.push_back(Outcome::recorded);
      } else if (kind < 85) {  // a package with one bad leg
        const std::string pid = "PKG" + std::to_string(next_id);
        std::vector<TradeInput> legs;
        const std::size_t n = 2 + pick(3);
        for (std::size_t i = 0; i < n; ++i) legs.push_back(new_trade(pid).first);
        const std::size_t bad = pick(n);
        const std::size_t how = pick(4);
        Outcome o2 = Outcome::rejected;
        if (how == 0) {
          legs[bad].quantity_text = "0";
        } else if (how == 1) {
          legs[bad].instrument = "NOT-LISTED";
          o2 = Outcome::unknown_instrument;
        } else if (how == 2) {
          legs[bad].price_text = "-5";
        } else {
          legs[bad].account = "SIGNED-1";  // signed by nobody
          legs[bad].signature_hex.clear();
          o2 = Outcome::bad_signature;
        }
        batch.push_back(Submission::package(legs));
        expect.push_back(o2);
      } else if (kind < 90) {  // resend a recorded package, or a lone trade
        const Recorded& r = recorded[pick(recorded.size())];
        std::vector<TradeInput> legs;
        for (const Recorded& x : recorded)
          if (!r.input.package_id.empty() && x.input.package_id == r.input.package_id) legs.push_back(x.input);
        if (legs.empty()) legs.push_back(r.input);
        batch.push_back(Submission::package(legs));
        expect.push_back(Outcome::duplicate);
      } else {  // a cancel, submitted alone after the batch
        Recorded& r = recorded[pick(recorded.size())];
        // Flush the batch first so that the cancel sees it.
        const auto results = s->submit(batch);
        ASSERT_EQ(results.size(), expect.size());
        for (std::size_t i = 0; i < results.size(); ++i) {
          EXPECT_EQ(results[i].outcome, expect[i]) << "op " << ops << ": " << results[i].message;
          ++seen[results[i].outcome];
        }
        batch.clear();
        expect.clear();
        const auto c = s->cancel(r.input.source, r.input.trade_id, "property");
        EXPECT_EQ(c.outcome, r.cancelled ? Outcome::duplicate : Outcome::recorded) << c.message;
        ++seen[c.outcome];
        if (!r.cancelled) add(r.input.account, r.input.instrument, -r.units);
        r.cancelled = true;
        if (pick(5) == 0) {
          EXPECT_EQ(s->cancel("desk-a", "nope-" + std::to_string(ops), "").outcome, Outcome::not_found);
        }
      }
    }
    const auto results = s->submit(batch);
    ASSERT_EQ(results.size(), expect.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].outcome, expect[i]) << "op " << ops << ": " << results[i].message;
      ++seen[results[i].outcome];
    }
  }
  // Every kind of outcome happened.
  for (Outcome o : {Outcome::recorded, Outcome::duplicate, Outcome::conflict, Outcome::rejected,
                    Outcome::bad_signature, Outcome::unknown_instrument})
    EXPECT_GT(seen[o], 10) << to_string(o);

  const PositionMap kept = as_map(s->positions());
  EXPECT_EQ(s->rebuild_positions_from_journal(), kept);
  EXPECT_EQ(kept, model);
  EXPECT_FALSE(model.empty());
  const auto v = s->verify_journal();
  EXPECT_TRUE(v.ok) << v.summary();
  EXPECT_GT(v.signatures_checked, 50);
  EXPECT_EQ(v.journal_entries, s->journal_size());

  // Tamper through a separate connection, while the writer is open: verify_journal reports it.
  std::int64_t signed_seq = 0;
  for (const JournalEntry& e : s->trades({"SIGNED-1", "", 0, 0}))
    if (e.kind == JournalKind::trade && signed_seq == 0) signed_seq = e.seq;
  ASSERT_GT(signed_seq, 0);
  const std::string sig = s->trades({"", "", signed_seq - 1, 1}).front().signature_hex;
  std::string flipped = sig;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  raw_exec(path_, "DROP TRIGGER journal_append_only_update; UPDATE journal SET signature = '" + flipped +
                      "' WHERE seq = " + std::to_string(signed_seq));
  auto v2 = s->verify_journal();
  EXPECT_FALSE(v2.ok);
  EXPECT_TRUE(contains(v2.summary(), "journal entry " + std::to_string(signed_seq) + ": the signature"))
      << v2.summary();
  raw_exec(path_, "UPDATE journal SET signature = '" + sig + "' WHERE seq = " + std::to_string(signed_seq));
  EXPECT_TRUE(s->verify_journal().ok) << s->verify_journal().summary();

  const auto [acc_inst, units] = *kept.begin();
  raw_exec(path_, "UPDATE positions SET quantity_units = quantity_units + 1 WHERE account = '" + acc_inst.first +
                      "' AND instrument = '" + acc_inst.second + "'");
  const auto v3 = s->verify_journal();
  EXPECT_FALSE(v3.ok);
  EXPECT_TRUE(contains(v3.summary(), "position of account '" + acc_inst.first + "' in '" + acc_inst.second +
                                         "': kept " + quantity_text(units + 1) + ", the journal sums to " +
                                         quantity_text(units)))
      << v3.summary();
  // A changed quantity in the journal breaks its digest and the positions.
  raw_exec(path_, "UPDATE journal SET quantity_units = quantity_units + 1 WHERE seq = 1");
  const auto v4 = s->verify_journal();
  EXPECT_TRUE(contains(v4.summary(), "journal entry 1: contents of trade")) << v4.summary();
}

// ---- CSV import ----------------------------------------------------------------------------

TEST_F(ClearingStoreTest, CsvImport) {
  const std::string file = (fs::path(dir_) / "trades.csv").string();
  std::ofstream(file) << "# trades of 28 June\n"
                         "source,trade_id,account,instrument,quantity,price,time,side,package_id\n"
                         "desk-a,T-1,ACC1,BTC-PERPETUAL,-1.5,64250.5,2024-06-28T08:00:00Z,,\n"
                         "desk-a,T-2,ACC1,BTC-28JUN24-70000-C,2,0.0125,2024-06-28T08:00:01Z,buy,RFQ-7\n"
                         "\n"
                         "desk-a,T-4,ACC2,ETH-PERPETUAL,1,3000,2024-06-28T08:00:02Z,,\n"
                         "desk-a,T-3,ACC1,BTC-28JUN24,2,64300,2024-06-28T08:00:01Z,sell,RFQ-7\n";
  std::vector<std::vector<long>> lines;
  const auto subs = read_trade_submissions_csv(file, &lines);
  ASSERT_EQ(subs.size(), 3u);
  EXPECT_EQ(subs[1].legs.size(), 2u);  // RFQ-7's two rows, grouped at the first one
  EXPECT_EQ(subs[1].legs[1].trade_id, "T-3");
  EXPECT_EQ(lines, (std::vector<std::vector<long>>{{3}, {4, 7}, {6}}));
  auto s = open();
  const auto r = s->submit(subs);
  EXPECT_EQ(r[0].outcome, Outcome::recorded);
  EXPECT_EQ(r[1].outcome, Outcome::recorded);
  EXPECT_EQ(r[1].journal_seqs.size(), 2u);
  EXPECT_EQ(r[2].outcome, Outcome::recorded);
  EXPECT_EQ(s->positions("ACC1").size(), 3u);

  auto error_of = [&](const std::string& body) {
    std::ofstream(file) << body;
    return catch_input_error([&] { read_trade_submissions_csv(file); });
  };
  const std::string header = "source,trade_id,account,instrument,quantity,price,time,side,signature\n";
  input_error e = error_of(header +
                           "desk-a,T-1,ACC1,BTC-PERPETUAL,1,100,2024-06-28T08:00:00Z,,\n"
                           "# comment\n"
                           "desk-a,T-2,ACC1,BTC-PERPETUAL,1.123456789,100,2024-06-28T08:00:00Z,,\n");
  EXPECT_EQ(e.file(), file);
  EXPECT_EQ(e.line(), 4);
  EXPECT_EQ(e.field(), "quantity");
  e = error_of(header + "desk-a,T-1,ACC1,BTC-PERPETUAL,1,100,2024-06-28T08:00:00Z,hold,\n");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.field(), "side");
  e = error_of(header + "desk-a,,ACC1,BTC-PERPETUAL,1,100,2024-06-28T08:00:00Z,,\n");
  EXPECT_EQ(e.field(), "trade_id");
  e = error_of(header + "desk-a,T-1,ACC1,BTC-PERPETUAL,1,100,28/06/2024,,\n");
  EXPECT_EQ(e.field(), "time");
  e = error_of(header + "desk-a,T-1,ACC1,BTC-PERPETUAL,1,abc,2024-06-28T08:00:00Z,,\n");
  EXPECT_EQ(e.field(), "price");
  e = error_of(header + "desk-a,T-1,ACC1,BTC-PERPETUAL,-1,1,2024-06-28T08:00:00Z,sell,\n");
  EXPECT_EQ(e.field(), "quantity");
  e = error_of(header + "desk-a,T-1,ACC1,BTC-PERPETUAL,1,1,2024-06-28T08:00:00Z,,xyz\n");
  EXPECT_EQ(e.field(), "signature");
  e = error_of("source,trade_id,account,instrument,quantity,time\n");
  EXPECT_EQ(e.field(), "price");
  EXPECT_EQ(e.line(), 1);
}

// ---- schema v2: pre-trade headroom, migration from v1 --------------------------------------

/// The version-1 schema exactly as v1 binaries wrote it (a frozen copy: migrations must carry
/// files of this shape forward).
constexpr const char* kV1Ddl = R"SQL(
CREATE TABLE members (name TEXT PRIMARY KEY, pubkey_hex TEXT, created_at TEXT NOT NULL);
CREATE TABLE member_keys (id INTEGER PRIMARY KEY, member TEXT NOT NULL REFERENCES members(name),
  pubkey_hex TEXT, after_seq INTEGER NOT NULL, set_at TEXT NOT NULL);
CREATE INDEX member_keys_by_member ON member_keys(member, id);
CREATE TABLE accounts (account TEXT PRIMARY KEY, member TEXT NOT NULL REFERENCES members(name),
  created_at TEXT NOT NULL);
CREATE TABLE journal (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('trade', 'cancel')),
  source TEXT NOT NULL, trade_id TEXT NOT NULL, account TEXT NOT NULL REFERENCES accounts(account),
  instrument TEXT NOT NULL, quantity_units INTEGER NOT NULL, price TEXT NOT NULL, time TEXT NOT NULL,
  package_id TEXT NOT NULL DEFAULT '', signature TEXT, reason TEXT, recorded_at TEXT NOT NULL);
CREATE INDEX journal_by_account ON journal(account, seq);
CREATE TRIGGER journal_append_only_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the clearing journal is append-only'); END;
CREATE TRIGGER journal_append_only_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the clearing journal is append-only'); END;
CREATE TABLE trades (source TEXT NOT NULL, trade_id TEXT NOT NULL,
  journal_seq INTEGER NOT NULL UNIQUE REFERENCES journal(seq), digest TEXT NOT NULL,
  cancelled_seq INTEGER UNIQUE REFERENCES journal(seq), PRIMARY KEY (source, trade_id)) WITHOUT ROWID;
CREATE TABLE positions (account TEXT NOT NULL, instrument TEXT NOT NULL,
  quantity_units INTEGER NOT NULL, PRIMARY KEY (account, instrument)) WITHOUT ROWID;
)SQL";

TEST_F(ClearingStoreTest, MigratesVersion1FileKeepingItsData) {
  // A version-1 file with one member, one account, one trade and its position.
  const Trade t = parse_trade(make_trade("T-1", "A1", "BTC-PERPETUAL", "1.5", "64000"));
  raw_exec(path_, std::string(kV1Ddl) +
                      "INSERT INTO members VALUES ('M1', NULL, '2024-06-28T08:00:00.000Z');"
                      "INSERT INTO accounts VALUES ('A1', 'M1', '2024-06-28T08:00:00.000Z');"
                      "INSERT INTO journal(kind, source, trade_id, account, instrument, quantity_units, price,"
                      " time, package_id, signature, reason, recorded_at) VALUES ('trade', 'desk-a', 'T-1', 'A1',"
                      " 'BTC-PERPETUAL', 150000000, '64000', '2024-06-28T08:00:00Z', '', NULL, NULL,"
                      " '2024-06-28T08:00:00.000Z');"
                      "INSERT INTO trades(source, trade_id, journal_seq, digest) VALUES ('desk-a', 'T-1', 1, '" +
                      trade_digest_hex(t) +
                      "');"
                      "INSERT INTO positions VALUES ('A1', 'BTC-PERPETUAL', 150000000);"
                      "PRAGMA user_version = 1; PRAGMA application_id = " +
                      std::to_string(kClearingApplicationId) + ";");
  // A reader does not migrate: it asks for a writer.
  const input_error old = catch_input_error([&] { open(OpenMode::reader); });
  EXPECT_TRUE(contains(old.what(), "needs migrating to " + std::to_string(kClearingSchemaVersion))) << old.what();
  EXPECT_EQ(raw_int(path_, "PRAGMA user_version"), 1);
  {
    auto s = open();  // the writer migrates
    EXPECT_EQ(s->schema_version(), kClearingSchemaVersion);
    EXPECT_EQ(s->journal_size(), 1);
    EXPECT_EQ(s->positions(), (std::vector<PositionRow>{{"A1", "BTC-PERPETUAL", 150000000}}));
    const auto accounts = s->accounts();
    ASSERT_EQ(accounts.size(), 1u);
    EXPECT_EQ(accounts[0].member, "M1");
    EXPECT_FALSE(accounts[0].pretrade_headroom.has_value());
    EXPECT_TRUE(s->verify_journal().ok) << s->verify_journal().summary();
    // The old trade is still known: a resend is a duplicate.
    const auto r = s->submit({Submission::trade(make_trade("T-1", "A1", "BTC-PERPETUAL", "1.5", "64000"))});
    EXPECT_EQ(r[0].outcome, Outcome::duplicate) << r[0].message;
    s->set_pretrade_headroom("A1", 2500.5);
  }
  EXPECT_EQ(raw_int(path_, "PRAGMA user_version"), kClearingSchemaVersion);
  auto r = open(OpenMode::reader);
  EXPECT_EQ(r->pretrade_headroom("A1"), 2500.5);
}

TEST_F(ClearingStoreTest, PretradeHeadroom) {
  auto s = open();
  s->add_member("M1", std::nullopt);
  s->add_account("A1", "M1");
  s->add_account("A2", "M1");
  EXPECT_FALSE(s->pretrade_headroom("A1").has_value());
  EXPECT_FALSE(s->pretrade_headroom("nobody").has_value());
  s->set_pretrade_headroom("A1", 1e6);
  s->set_pretrade_headroom("A2", 0.0);
  EXPECT_EQ(s->pretrade_headroom("A1"), 1e6);
  EXPECT_EQ(s->pretrade_headroom("A2"), 0.0);
  const auto accounts = s->accounts();
  ASSERT_EQ(accounts.size(), 2u);
  EXPECT_EQ(accounts[0].pretrade_headroom, 1e6);
  EXPECT_EQ(accounts[1].pretrade_headroom, 0.0);
  s->set_pretrade_headroom("A1", std::nullopt);
  EXPECT_FALSE(s->pretrade_headroom("A1").has_value());

  EXPECT_EQ(catch_input_error([&] { s->set_pretrade_headroom("nobody", 1.0); }).field(), "account");
  EXPECT_EQ(catch_input_error([&] { s->set_pretrade_headroom("A1", -1.0); }).field(), "pretrade_headroom");
  EXPECT_THROW(s->set_pretrade_headroom("A1", std::nan("")), input_error);
  EXPECT_THROW(s->set_pretrade_headroom("A1", HUGE_VAL), input_error);
  EXPECT_FALSE(s->pretrade_headroom("A1").has_value());  // refused changes left it as it was
  // Readers see it and cannot change it.
  auto r = open(OpenMode::reader);
  EXPECT_EQ(r->pretrade_headroom("A2"), 0.0);
  EXPECT_THROW(r->set_pretrade_headroom("A2", 1.0), usage_error);
}

TEST_F(ClearingStoreTest, WriterSeesItsOwnAccountAndKeyChanges) {
  auto s = open();
  // An account created inside a submission that is then rolled back is gone; the next
  // submission of the same batch creates it again.
  ASSERT_EQ(s->submit({Submission::trade(make_trade("BIG", "ACC2", "BTC-PERPETUAL", "90000000000"))})[0].outcome,
            Outcome::recorded);
  auto over = make_trade("O-1", "ACC9", "ETH-PERPETUAL", "1", "1", "P-O");
  auto over2 = make_trade("O-2", "ACC2", "BTC-PERPETUAL", "90000000000", "1", "P-O");
  const auto r = s->submit({Submission::package({over, over2}),
                            Submission::trade(make_trade("N-1", "ACC9", "ETH-PERPETUAL", "2"))});
  EXPECT_EQ(r[0].outcome, Outcome::rejected) << r[0].message;
  EXPECT_EQ(r[1].outcome, Outcome::recorded) << r[1].message;
  ASSERT_EQ(s->accounts().size(), 2u);
  EXPECT_TRUE(s->verify_journal().ok) << s->verify_journal().summary();
  // A key set on the member of an account this writer has used applies to its next trade.
  const Ed25519Keypair key = ed25519_keypair_from_seed(std::string(64, 'c'));
  s->set_member_key("ACC9", key.public_key_hex);
  EXPECT_EQ(s->submit({Submission::trade(make_trade("N-2", "ACC9", "ETH-PERPETUAL", "1"))})[0].outcome,
            Outcome::bad_signature);
  TradeInput signed_in = make_trade("N-3", "ACC9", "ETH-PERPETUAL", "1");
  signed_in.signature_hex = sign_trade_hex(parse_trade(signed_in), key.secret_key_hex);
  EXPECT_EQ(s->submit({Submission::trade(signed_in)})[0].outcome, Outcome::recorded);
  s->set_member_key("ACC9", std::nullopt);
  EXPECT_EQ(s->submit({Submission::trade(make_trade("N-4", "ACC9", "ETH-PERPETUAL", "1"))})[0].outcome,
            Outcome::recorded);
  EXPECT_TRUE(s->verify_journal().ok) << s->verify_journal().summary();
}

TEST_F(ClearingStoreTest, VerifyChecksTheReferencesTheWriterKeeps) {
  {
    auto s = open();
    s->add_member("M1", ed25519_keypair_from_seed(std::string(64, 'd')).public_key_hex);
    s->add_account("A1", "M1");
    ASSERT_TRUE(s->verify_journal().ok);
  }
  raw_exec(path_, "DELETE FROM members WHERE name = 'M1'");
  auto r = open(OpenMode::reader);
  const JournalVerifyReport rep = r->verify_journal();
  EXPECT_FALSE(rep.ok);
  EXPECT_TRUE(contains(rep.summary(), "account 'A1': member 'M1' does not exist")) << rep.summary();
  EXPECT_TRUE(contains(rep.summary(), "key history row 1: member 'M1' does not exist")) << rep.summary();
}

TEST_F(ClearingStoreTest, ReaderOpensReadOnlyAndChangesNothing) {
  {
    auto w = open();
    w->submit({Submission::trade(make_trade("T-1", "A1", "BTC-PERPETUAL", "1"))});
    // While the writer runs (WAL, -shm present): a reader sees what is committed.
    auto r = open(OpenMode::reader);
    EXPECT_EQ(r->journal_size(), 1);
    w->submit({Submission::trade(make_trade("T-2", "A1", "BTC-PERPETUAL", "1"))});
    EXPECT_EQ(r->journal_size(), 2);
    EXPECT_EQ(r->positions(), (std::vector<PositionRow>{{"A1", "BTC-PERPETUAL", 200000000}}));
  }
  // No writer: the last close removed -wal and -shm; a read-only connection recreates the -shm
  // (the directory is writable) and reads.
  EXPECT_FALSE(fs::exists(path_ + "-wal"));
  EXPECT_EQ(open(OpenMode::reader)->journal_size(), 2);
  // A file in rollback-journal mode stays so: the reader does not switch it to WAL (a read-write
  // connection with query_only would have).
  raw_exec(path_, "PRAGMA journal_mode = DELETE");
  {
    auto r = open(OpenMode::reader);
    EXPECT_EQ(r->journal_size(), 2);
    EXPECT_TRUE(r->verify_journal().ok);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))), "delete");
  sqlite3_finalize(st);
  sqlite3_close(db);
  // The SqliteDb option on its own: writes are refused by SQLite.
  SqliteDb ro(path_, SqliteOptions{SqliteAccess::read_only, true});
  EXPECT_TRUE(ro.read_only());
  EXPECT_THROW(ro.exec("DELETE FROM positions"), logic_error);
  EXPECT_THROW(SqliteDb((fs::path(dir_) / "absent.sqlite").string(), SqliteOptions{SqliteAccess::read_only, true}),
               input_error);
  // A writer turns it back to WAL.
  EXPECT_EQ(open()->journal_size(), 2);
}

}  // namespace
