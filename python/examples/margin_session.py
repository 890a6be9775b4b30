#!/usr/bin/env python3
"""A notebook-style session with the marginet margin service.

Start a server first, e.g. on the generated demo book or your own files:

    marginet serve --bind tcp://127.0.0.1:7400 --instruments instruments.csv \
        --market market.csv --marks marks.csv --positions positions.csv --model deribit-pm

then run, cell by cell in an editor that understands `# %%`, or all at once:

    PYTHONPATH=python python3 python/examples/margin_session.py \
        --connect tcp://127.0.0.1:7400 --positions positions.csv
"""

# %% Setup
import argparse
import time

from marginet_client import Client, ServiceError, read_positions_csv

parser = argparse.ArgumentParser()
parser.add_argument("--connect", default="tcp://127.0.0.1:7400")
parser.add_argument("--positions", required=True, help="positions.csv (account,instrument,quantity)")
args = parser.parse_args()
client = Client(args.connect, timeout_ms=60000)

# %% Is it up? What is it running?
t0 = time.perf_counter()
client.ping()
print(f"ping: {(time.perf_counter() - t0) * 1e3:.2f} ms")
status = client.status()
print(f"backend {status['backend']} ({status['device']}), model {status['model']}, "
      f"{status['instruments']} instruments, book of {status['book_accounts']} accounts")

# %% End-of-day margin of every portfolio in the file (one request, one engine pass)
positions = read_positions_csv(args.positions)
result = client.margin(positions)
accounts = result["accounts"]
print(f"{len(accounts)} accounts margined in {result['batch']['compute_us'] / 1e3:.2f} ms")
for a in sorted(accounts, key=lambda a: -a["im"])[:5]:
    print(f"  {a['account']:>12}  IM {a['im']:>14,.2f}  MM {a['mm']:>14,.2f}  worst scenario {a['worst_scenario']}")

# %% Pre-trade what-if for the account with the largest margin: sell one more unit of its biggest position
biggest = max(accounts, key=lambda a: a["im"])["account"]
book = [(i, q) for acc, i, q in positions if acc == biggest]
instrument, quantity = max(book, key=lambda p: abs(p[1]))
t0 = time.perf_counter()
w = client.whatif(biggest, [(instrument, -1.0 if quantity > 0 else 1.0)], positions=book)
print(f"what-if {biggest} {instrument}: IM {w['before']['im']:,.2f} -> {w['after']['im']:,.2f} "
      f"(change {w['im_change']:+,.2f}) in {(time.perf_counter() - t0) * 1e3:.2f} ms end to end")

# %% Greeks of the traded instrument
g = client.greeks([instrument])
row = dict(zip(g["columns"], g["rows"][0]))
print({k: row[k] for k in ("id", "price", "delta", "gamma", "vega", "iv")})

# %% Errors come back as typed replies
try:
    client.margin([("X", "NO-SUCH-INSTRUMENT", 1.0)])
except ServiceError as e:
    print(f"error reply: code={e.code}: {e.message}")

client.close()
