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
