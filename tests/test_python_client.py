#!/usr/bin/env python3
"""The Python client (python/marginet_client) against the real `marginet serve`: margin results
identical to the offline `marginet margin --format json` on the same files; what-if identical to
`marginet whatif`; error replies raise ServiceError with the code; ping/status.

Run by tests/test_python_client.cpp (CTest) with MARGINET_EXE, MARGINET_DATA (a generated book:
instruments.csv, market.csv, marks.csv, positions.csv) and MARGINET_SOURCE_DIR in the environment.
"""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

SOURCE = os.environ["MARGINET_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SOURCE, "python"))

from marginet_client import Client, ServiceError, read_positions_csv  # noqa: E402

EXE = os.environ["MARGINET_EXE"]
DATA = os.environ["MARGINET_DATA"]
REF = ["--instruments", f"{DATA}/instruments.csv", "--market", f"{DATA}/market.csv", "--marks", f"{DATA}/marks.csv"]


def start_server(*args):
    """`marginet serve` on a free loopback port: (process, endpoint)."""
    server = subprocess.Popen([EXE, "serve", "--bind", "tcp://127.0.0.1:*", "--device", "cpu", "--quiet", *args] + REF,
                              stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # "marginet serve: listening on ENDPOINT"
    if "listening on " not in line:
        server.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return server, line.split("listening on ", 1)[1].strip()


def stop_server(server):
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


class PythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.endpoint = start_server("--model", "deribit-pm", "--positions", f"{DATA}/positions.csv")
        cls.client = Client(cls.endpoint, timeout_ms=30000)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        stop_server(cls.server)

    def offline(self, *args):
        out = subprocess.run([EXE, *args, "--device", "cpu", "--quiet", "--format", "json"] + REF,
                             check=True, capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout)

    def test_ping_and_status(self):
        self.assertEqual(self.client.ping()["type"], "ping.result")
        status = self.client.status()
        self.assertEqual(status["model"], "deribit-pm")
        self.assertIn("latency_us", status)
        outbox = status["outbox"]  # no --scheduler here: an empty outbox
        self.assertEqual(set(outbox), {"scheduler", "unacked", "unsettled", "oldest_unacked", "oldest_unacked_age_s",
                                       "acks_received", "reports_applied"})
        self.assertFalse(outbox["scheduler"])

    def test_margin_identical_to_offline(self):
        expected = self.offline("margin", "--model", "deribit-pm", "--positions", f"{DATA}/positions.csv")
        got = self.client.margin(read_positions_csv(f"{DATA}/positions.csv"))["accounts"]
        self.assertEqual(len(got), len(expected))
        for g, e in zip(got, expected):
            self.assertEqual(g, e)  # floats compare exactly: float64 on the wire, shortest text in JSON

    def test_whatif_identical_to_offline(self):
        positions = read_positions_csv(f"{DATA}/positions.csv")
        account = positions[0][0]
        trades_path = f"{DATA}/py_trades.csv"
        with open(trades_path, "w") as f:
            f.write(f"instrument,quantity\n{positions[0][1]},-3\n")
        expected = self.offline("whatif", "--model", "deribit-pm", "--positions", f"{DATA}/positions.csv",
                                "--account", account, "--trades", trades_path)
        book = [(i, q) for a, i, q in positions if a == account]
        got = self.client.whatif(account, [(positions[0][1], -3.0)], positions=book)
        for key in ("account", "model", "im_change", "mm_change", "before", "after"):
            self.assertEqual(got[key], expected[key], key)
        cached = self.client.whatif(account, [(positions[0][1], -3.0)])  # from the server's book
        self.assertEqual(cached["after"], expected["after"])

    def test_errors_raise_with_codes(self):
        with self.assertRaises(ServiceError) as ctx:
            self.client.margin([("A", "NO-SUCH-INSTRUMENT", 1.0)])
        self.assertEqual(ctx.exception.code, "unknown_instrument")
        self.client.send_raw(b"\xdd\xff\xff\xff\xff")
        reply = self.client.receive_raw(10000)
        self.assertIsNotNone(reply)
        import msgpack
        self.assertEqual(msgpack.unpackb(reply)["code"], "too_large")
        self.assertEqual(self.client.call({"v": 7, "type": "ping"})["code"], "unsupported_version")
        self.assertEqual(self.client.ping()["type"], "ping.result")

    def test_example_session_runs(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(SOURCE, "python"))
        out = subprocess.run([sys.executable, os.path.join(SOURCE, "python/examples/margin_session.py"),
                              "--connect", self.endpoint, "--positions", f"{DATA}/positions.csv"],
                             capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("accounts margined", out.stdout)
        self.assertIn("error reply: code=unknown_instrument", out.stdout)


class CannedClient(Client):
    """A Client whose transport is a list of canned replies (no server): what it sends is kept
    decoded in ``sent``; each reply gets the request's id."""

    def __init__(self, replies):
        super().__init__("tcp://127.0.0.1:9", timeout_ms=1000)  # never connected to
        self.replies = list(replies)
        self.sent = []
        self.frames = []

    def send_raw(self, frame):
        import msgpack
        self.frames.append(frame)
        self.sent.append(msgpack.unpackb(frame, raw=False))

    def receive_raw(self, timeout_ms=None):
        import msgpack
        if not self.replies:
            return None
        reply = dict(self.replies.pop(0))
        reply["v"] = 1
        reply["id"] = self.sent[-1]["id"]
        return msgpack.packb(reply, use_bin_type=True)


class PythonCollateralAndCalls(unittest.TestCase):
    """The collateral and call methods: the requests they build and the replies they decode
    (docs/protocol.md "Collateral and calls"), against canned replies: no server needed."""

    def test_deposit_and_withdraw_requests(self):
        import decimal
        check = {"im": 41000.5, "value_before": 90000.0, "value_after": 60000.0, "units": "USD"}
        c = CannedClient([
            {"type": "collateral.deposit.result", "outcome": "recorded", "account": "ACC1", "asset": "BTC",
             "amount": "1.5", "balance": "1.50000000", "movement_seq": 1, "cycle_id": ""},
            {"type": "collateral.withdraw.result", "outcome": "recorded", "account": "ACC1", "asset": "BTC",
             "amount": "0.5", "balance": "1.00000000", "movement_seq": 2, "cycle_id": "wd-1", "check": check},
            {"type": "error", "code": "insufficient_collateral", "message": "IM would exceed the collateral value",
             "check": check},
        ])
        with c:
            d = c.deposit("ACC1", "BTC", "1.5", reference="wire-7731")
            self.assertEqual(d["balance"], "1.50000000")
            self.assertEqual(c.sent[0], {"v": 1, "type": "collateral.deposit", "id": c.sent[0]["id"],
                                         "account": "ACC1", "asset": "BTC", "amount": "1.5", "reference": "wire-7731"})
            self.assertEqual(list(c.sent[0])[:3], ["v", "type", "id"])  # the header first
            w = c.withdraw("ACC1", "BTC", decimal.Decimal("0.50"))
            self.assertEqual(c.sent[1]["amount"], "0.50")
            self.assertNotIn("reference", c.sent[1])
            self.assertEqual(w["check"]["value_after"], 60000.0)
            refused = c.withdraw("ACC1", "BTC", "excess")  # refusals are replies, not exceptions
            self.assertEqual(c.sent[2]["amount"], "excess")
            self.assertEqual(refused["code"], "insufficient_collateral")
            self.assertEqual(refused["check"]["im"], 41000.5)
            with self.assertRaises(TypeError):
                c.deposit("ACC1", "BTC", 1.5)  # a float would not be exact
            self.assertEqual(len(c.sent), 3)

    def test_balances_and_calls_decode_as_rows(self):
        from marginet_client import rows
        columns = ["account", "im", "mm", "collateral_value", "call", "settled", "state", "instruction_id"]
        run = {"type": "calls.run.result", "run_id": "EOD-1", "kind": "eod", "at": "2024-06-28T08:00:00Z",
               "model": "deribit-pm", "asset": "USD", "scale": 2, "units": "USD", "cycle_id": "calls-EOD-1",
               "cycle_state": "pending", "total_call": "1234.57", "outcome": "recorded", "compute_ms": 12.5,
               "columns": columns,
               "rows": [["ACC1", 5000.0, 4000.0, 3765.43, "1234.57", "0.00", "pending", "calls-EOD-1/ACC1/USD/in/margin_call"],
                        ["ACC2", 10.0, 8.0, 50.0, "0.00", "0.00", "none", ""]]}
        query = dict(run, type="calls.query.result")
        del query["outcome"]
        c = CannedClient([
            {"type": "collateral.query.result", "columns": ["account", "asset", "amount", "amount_minor", "scale"],
             "rows": [["ACC1", "BTC", "1.00000000", 100000000, 8]]},
            run, query,
            {"type": "error", "code": "no_store", "message": "calls.run needs --store"},
        ])
        with c:
            balances = rows(c.collateral("ACC1"))
            self.assertEqual(c.sent[0]["account"], "ACC1")
            self.assertEqual(balances, [{"account": "ACC1", "asset": "BTC", "amount": "1.00000000",
                                         "amount_minor": 100000000, "scale": 8}])
            r = c.calls_run(kind="eod", run_id="EOD-1")
            self.assertEqual((c.sent[1]["type"], c.sent[1]["kind"], c.sent[1]["run_id"]), ("calls.run", "eod", "EOD-1"))
            calls = rows(r)
            self.assertEqual(calls[0]["call"], "1234.57")
            self.assertEqual(calls[1]["state"], "none")
            self.assertEqual(r["total_call"], "1234.57")
            q = c.calls_query()
            self.assertEqual(c.sent[2], {"v": 1, "type": "calls.query", "id": c.sent[2]["id"]})
            self.assertNotIn("outcome", q)
            self.assertEqual(rows(q), calls)
            with self.assertRaises(ServiceError) as ctx:
                c.calls_run()
            self.assertEqual(ctx.exception.code, "no_store")
            self.assertEqual(c.sent[3]["kind"], "on_demand")
            with self.assertRaises(ValueError):
                c.calls_run(kind="weekly")


class PythonTradeCapture(unittest.TestCase):
    """Signed trades from Python: the server (a C++ canonical encoding) accepts the signature the
    Python client computed, refuses an unsigned or tampered trade of a member with a key, and
    records a package whole. Needs python3-nacl (PyNaCl) for the signing."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        try:
            import nacl.signing
        except ImportError:
            raise unittest.SkipTest("python3-nacl not installed: signed trades not tested")
        cls.dir = tempfile.mkdtemp(prefix="marginet_py_capture_")
        cls.store = os.path.join(cls.dir, "clearing.sqlite")
        seed = bytes(range(32))
        cls.secret = seed.hex()
        with open(os.path.join(cls.dir, "MM.sign.pub"), "w") as f:
            f.write(nacl.signing.SigningKey(seed).verify_key.encode().hex() + "\n")
        for args in (["members", "add", "MM", "--pubkey", os.path.join(cls.dir, "MM.sign.pub")],
                     ["accounts", "add", "MM-1", "--member", "MM"]):
            subprocess.run([EXE, *args, "--store", cls.store], check=True, capture_output=True, timeout=60)
        cls.server, endpoint = start_server("--model", "span16", "--store", cls.store)
        cls.client = Client(endpoint, timeout_ms=30000)
        with open(f"{DATA}/instruments.csv") as f:
            rows = [r for r in f if r.strip() and not r.startswith("#")]
        cls.instrument = rows[1].split(",")[0]

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        stop_server(cls.server)
        import shutil
        shutil.rmtree(cls.dir, ignore_errors=True)

    def trade(self, trade_id, quantity="1.5", **extra):
        t = {"source": "py", "trade_id": trade_id, "account": "MM-1", "instrument": self.instrument,
             "quantity": quantity, "price": "0.0125", "time": "2024-06-28T08:00:00Z"}
        t.update(extra)
        return t

    def test_signed_trade_is_recorded(self):
        reply = self.client.submit_trade(self.trade("PY-1", side="sell", quantity="2.50"), signing_key=self.secret)
        self.assertEqual(reply["type"], "trade.submit.result", reply)
        self.assertEqual(reply["outcome"], "recorded")
        rows = self.client.positions("MM-1")["rows"]
        self.assertIn(["MM-1", self.instrument, "-2.5"], rows)

    def test_unsigned_and_tampered_are_refused(self):
        self.assertEqual(self.client.submit_trade(self.trade("PY-2"))["code"], "bad_signature")
        from marginet_client import sign_trade
        leg = self.trade("PY-3")
        leg["signature"] = sign_trade(leg, self.secret)
        leg["quantity"] = "15"
        self.assertEqual(self.client.call({"type": "trade.submit", "trade": leg})["code"], "bad_signature")

    def test_signed_package(self):
        reply = self.client.submit_package("PY-RFQ", [self.trade("PY-4a", "1"), self.trade("PY-4b", "-1", price="0.02")],
                                           signing_key=self.secret)
        self.assertEqual(reply["outcome"], "recorded", reply)
        self.assertEqual([leg["trade_id"] for leg in reply["legs"]], ["PY-4a", "PY-4b"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
