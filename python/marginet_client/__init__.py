"""A small Python client of the marginet margin service (docs/protocol.md).

Uses Debian's python3-zmq and python3-msgpack only::

    from marginet_client import Client, read_positions_csv
    with Client("tcp://127.0.0.1:7400") as c:
        c.ping()
        result = c.margin(read_positions_csv("positions.csv"))
        for a in result["accounts"]:
            print(a["account"], a["im"])

Every request is one msgpack map {"v": 1, "type": ..., "id": ...}; replies are matched to
requests by id. An ``error`` reply raises ServiceError (with ``code``); no reply within the
timeout raises TimeoutError.

Trade capture (a server started with ``--store``)::

    trade = {"source": "desk-a", "trade_id": "T-1", "account": "ACC1",
             "instrument": "BTC-PERPETUAL", "quantity": "-1.5", "price": "64250.5",
             "time": "2024-06-28T08:00:00Z"}
    c.submit_trade(trade, signing_key=open("ACC1.sign.key").read())   # signing: python3-nacl
    c.submit_package("RFQ-7", [leg1, leg2])                            # all legs or none

Collateral and margin calls (a server with ``--store``; docs/protocol.md "Collateral and calls")::

    c.deposit("ACC1", "BTC", "1.5", reference="wire-7731")      # exact decimal text
    reply = c.withdraw("ACC1", "USDC", "excess")                 # all that IM leaves free
    if reply["type"] == "error":                                 # insufficient_collateral
        print(reply["code"], reply["check"])                     # im, value_before/after (USD)
    balances = rows(c.collateral("ACC1"))                        # [{"account", "asset", ...}]
    run = c.calls_run(kind="eod", run_id="EOD-2024-06-28")
    for call in rows(run):
        print(call["account"], call["call"], call["state"])

Signing a trade needs Debian's python3-nacl (PyNaCl); everything else needs only python3-zmq
and python3-msgpack.
"""

import csv
import decimal
import itertools
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1

__all__ = ["Client", "ServiceError", "read_positions_csv", "portfolios", "canonical_decimal",
           "canonical_trade_bytes", "sign_trade", "rows", "exact_amount", "PROTOCOL_VERSION"]

CALL_RUN_KINDS = ("eod", "intraday", "on_demand")

QUANTITY_SCALE = 8  # decimals of a quantity (service/clearing/trade.hpp kQuantityScale)


def canonical_decimal(text):
    """Decimal text in the canonical form of the clearing store: no '+', no leading zeros, no
    trailing zeros or point, never '-0' ("064250.50" -> "64250.5")."""
    d = decimal.Decimal(str(text).strip())
    if not d.is_finite():
        raise ValueError(f"not a decimal: {text!r}")
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s


def canonical_trade_bytes(trade, package_id=""):
    """The bytes a trade's Ed25519 signature covers (service/clearing/trade.hpp): a msgpack array
    of nine strings. ``trade``: a leg as sent (quantity signed, or positive with ``side``)."""
    quantity = canonical_decimal(trade["quantity"])
    if trade.get("side") == "sell":
        quantity = canonical_decimal("-" + quantity)
    return msgpack.packb(["marginet-trade-v1", trade["source"], trade["trade_id"], trade["account"],
                          trade["instrument"], quantity, canonical_decimal(trade["price"]), trade["time"],
                          package_id or trade.get("package_id", "")], use_bin_type=True)


def sign_trade(trade, signing_key, package_id=""):
    """Hex Ed25519 signature of a trade. ``signing_key``: the hex secret key of
    ``marginet members keygen`` (128 digits) or its 32-byte seed (64 digits). Needs python3-nacl."""
    import nacl.signing  # Debian: python3-nacl
    key = bytes.fromhex(signing_key.strip())
    signer = nacl.signing.SigningKey(key[:32])
    return signer.sign(canonical_trade_bytes(trade, package_id)).signature.hex()


def rows(reply):
    """The ``rows`` of a tabular reply (collateral.query.result, calls.run.result,
    calls.query.result, positions.query.result, trades.query.result) as dicts keyed by its
    ``columns``."""
    columns = reply["columns"]
    return [dict(zip(columns, row)) for row in reply["rows"]]


def exact_amount(amount):
    """An amount as the exact decimal text the protocol wants: str, int or decimal.Decimal (a
    float is refused: it would not be exact)."""
    if isinstance(amount, bool) or isinstance(amount, float):
        raise TypeError(f"amount {amount!r}: give decimal text, an int or a decimal.Decimal, not a float")
    if isinstance(amount, decimal.Decimal):
        if not amount.is_finite():
            raise ValueError(f"not a decimal: {amount!r}")
        return format(amount, "f")
    return str(amount)


class ServiceError(Exception):
    """The service answered with an ``error`` reply."""

    def __init__(self, code, message, reply=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reply = reply


def read_positions_csv(path):
    """positions.csv (account,instrument,quantity; '#' comments) as a list of (account, instrument, quantity)."""
    rows = []
    with open(path, newline="") as f:
        lines = (line for line in f if line.strip() and not line.lstrip().startswith("#"))
        for row in csv.DictReader(lines):
            rows.append((row["account"].strip(), row["instrument"].strip(), float(row["quantity"])))
    return rows


def portfolios(positions):
    """Group (account, instrument, quantity) rows into the `portfolios` of a margin request."""
    order, by_account = [], {}
    for account, instrument, quantity in positions:
        if account not in by_account:
            by_account[account] = []
            order.append(account)
        by_account[account].append([instrument, quantity])
    return [{"account": a, "positions": by_account[a]} for a in order]


class Client:
    """One DEALER connection to ``marginet serve``."""

    def __init__(self, endpoint="tcp://127.0.0.1:7400", timeout_ms=30000, server_public_key=None,
                 client_public_key=None, client_secret_key=None, context=None):
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if server_public_key:
            self._socket.curve_serverkey = server_public_key.encode() if isinstance(server_public_key, str) else server_public_key
            self._socket.curve_publickey = client_public_key.encode() if isinstance(client_public_key, str) else client_public_key
            self._socket.curve_secretkey = client_secret_key.encode() if isinstance(client_secret_key, str) else client_secret_key
        self._socket.connect(endpoint)
        self._endpoint = endpoint
        self._timeout_ms = timeout_ms
        self._ids = itertools.count(1)

    def close(self):
        self._socket.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw ----------------------------------------------------------------------------------
    def send_raw(self, frame: bytes):
        self._socket.send(frame)

    def receive_raw(self, timeout_ms=None):
        if not self._socket.poll(self._timeout_ms if timeout_ms is None else timeout_ms):
            return None
        return self._socket.recv_multipart()[-1]

    def call(self, request: dict) -> dict:
        """Send a request (v and id filled in) and return its reply, ``error`` included."""
        # v, type, id and priority first: the server reads them without decoding the payload.
        payload = dict(request)
        request = {"v": payload.pop("v", PROTOCOL_VERSION)}
        if "type" in payload:
            request["type"] = payload.pop("type")
        request["id"] = payload.pop("id") if "id" in payload else next(self._ids)
        if "priority" in payload:
            request["priority"] = payload.pop("priority")
        request.update(payload)
        self.send_raw(msgpack.packb(request, use_bin_type=True))
        deadline = time.monotonic() + self._timeout_ms / 1000.0
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0:
                break
            frame = self.receive_raw(left)
            if frame is None:
                break
            reply = msgpack.unpackb(frame, raw=False, strict_map_key=False)
            if isinstance(reply, dict) and reply.get("id") == request["id"]:
                return reply
        raise TimeoutError(f"no reply from {self._endpoint} within {self._timeout_ms} ms")

    def _checked(self, request):
        reply = self.call(request)
        if reply.get("type") == "error":
            raise ServiceError(reply.get("code"), reply.get("message"), reply)
        return reply

    # -- typed requests -----------------------------------------------------------------------
    def ping(self):
        return self._checked({"type": "ping"})

    def status(self):
        return self._checked({"type": "status"})

    def margin(self, positions, priority="normal", cycle_id=None):
        """``positions``: (account, instrument, quantity) rows, or ready-made portfolios (dicts)."""
        positions = list(positions)
        ports = positions if positions and isinstance(positions[0], dict) else portfolios(positions)
        request = {"type": "margin", "priority": priority, "portfolios": ports}
        if cycle_id:
            request["cycle_id"] = cycle_id
        return self._checked(request)

    def whatif(self, account, trades, positions=None, priority="high"):
        """``trades`` and ``positions``: (instrument, quantity) pairs."""
        request = {"type": "whatif", "account": account, "priority": priority,
                   "trades": [[i, float(q)] for i, q in trades]}
        if positions is not None:
            request["positions"] = [[i, float(q)] for i, q in positions]
        return self._checked(request)

    def greeks(self, instruments=None):
        request = {"type": "greeks"}
        if instruments:
            request["instruments"] = list(instruments)
        return self._checked(request)

    def net(self, assets, trades, cycle_id=None):
        """``assets``: (asset, scale); ``trades``: (trade_id, buyer, seller, base, quote, quantity, price) as text."""
        request = {"type": "net", "assets": [[a, int(s)] for a, s in assets],
                   "trades": [[str(x) for x in t] for t in trades]}
        if cycle_id:
            request["cycle_id"] = cycle_id
        return self._checked(request)

    # -- trade capture (server with --store) ----------------------------------------------------
    def submit_trade(self, trade, signing_key=None):
        """One trade (a dict: source, trade_id, account, instrument, quantity, price, time[, side]).
        Returns the reply: ``trade.submit.result`` or an ``error`` (conflict, bad_signature, ...)."""
        leg = {k: str(v) for k, v in trade.items()}
        if signing_key:
            leg["signature"] = sign_trade(leg, signing_key)
        return self.call({"type": "trade.submit", "trade": leg})

    def submit_package(self, package_id, legs, signing_key=None):
        """The legs of an RFQ or block trade, recorded all or nothing (the pre-trade check applies)."""
        out = []
        for trade in legs:
            leg = {k: str(v) for k, v in trade.items()}
            leg["package_id"] = package_id
            if signing_key:
                leg["signature"] = sign_trade(leg, signing_key, package_id)
            out.append(leg)
        return self.call({"type": "trade.submit", "package": {"package_id": package_id, "legs": out}})

    def cancel_trade(self, source, trade_id, reason=None):
        request = {"type": "trade.cancel", "source": source, "trade_id": trade_id}
        if reason:
            request["reason"] = reason
        return self.call(request)

    def positions(self, account=None):
        request = {"type": "positions.query"}
        if account:
            request["account"] = account
        return self._checked(request)

    # -- collateral and margin calls (server with --store) ----------------------------------------
    def deposit(self, account, asset, amount, reference=None):
        """Credits ``amount`` (exact decimal text, int or Decimal) of ``asset`` to ``account``.
        ``reference`` makes it idempotent (the same again: outcome "duplicate"). Returns the
        reply: ``collateral.deposit.result`` or an ``error`` (conflict, bad_request, ...)."""
        return self.call(self._collateral_change("collateral.deposit", account, asset, amount, reference))

    def withdraw(self, account, asset, amount, reference=None):
        """Debits ``amount`` of ``asset`` (or ``"excess"``: all that IM leaves free) and pays it out
        through the scheduler. Returns the reply: ``collateral.withdraw.result`` (with ``check``:
        im, value_before, value_after, units) or an ``error`` — ``insufficient_collateral`` carries
        the same ``check``."""
        return self.call(self._collateral_change("collateral.withdraw", account, asset, amount, reference))

    @staticmethod
    def _collateral_change(type_, account, asset, amount, reference):
        request = {"type": type_, "account": account, "asset": asset,
                   "amount": amount if amount == "excess" else exact_amount(amount)}
        if reference:
            request["reference"] = reference
        return request

    def collateral(self, account=None):
        """Balances (``collateral.query.result``: columns account, asset, amount, amount_minor,
        scale); every account when ``account`` is None. ``rows(reply)`` gives dicts."""
        request = {"type": "collateral.query"}
        if account:
            request["account"] = account
        return self._checked(request)

    def calls_run(self, kind="on_demand", run_id=None):
        """Margins every account of the store's book and makes the margin calls
        (``calls.run.result``). ``kind``: "eod", "intraday" or "on_demand"; ``run_id``: the run's
        id (an existing id answers that run, outcome "duplicate"; None: the server makes one)."""
        if kind not in CALL_RUN_KINDS:
            raise ValueError(f"kind {kind!r}: expected one of {', '.join(CALL_RUN_KINDS)}")
        request = {"type": "calls.run", "kind": kind}
        if run_id:
            request["run_id"] = run_id
        return self._checked(request)

    def calls_query(self, run_id=None):
        """A call run with its calls' settlement state (``calls.query.result``); the latest run
        when ``run_id`` is None."""
        request = {"type": "calls.query"}
        if run_id:
            request["run_id"] = run_id
        return self._checked(request)

    def market_update(self, underlyings=None, marks=None):
        request = {"type": "market.update", "priority": "high"}
        if underlyings:
            request["underlyings"] = list(underlyings)
        if marks:
            request["marks"] = list(marks)
        return self._checked(request)
