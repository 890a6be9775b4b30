#!/usr/bin/env python3
"""Check a ledger inclusion proof printed by `marginet ledger prove ENTRY` (RFC 6962 / RFC 9162).

    marginet ledger prove 42 --ledger L.sqlite > proof.json
    /usr/bin/python3 scripts/verify_proof.py proof.json --root HEX   # or: ... | verify_proof.py - --root HEX

--root is required: a root you trust, published outside the ledger (the cycle root of `marginet
ledger show`, kind cycle.root, taken when the cycle closed). A proof alone proves nothing: whoever
wrote it could have computed a matching root for any entry.

Exit 0 and "OK" when the entry names the seq and cycle the proof claims, SHA-256(entry) is the
entry hash, SHA-256(0x00 || entry) is the leaf, and the audit path leads to --root. Exit 1 when
the proof does not hold, 2 when --root is missing or malformed. Needs only Python's hashlib and
json.
"""
import hashlib, json, sys

def H(b): return hashlib.sha256(b).digest()

def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--root")]
    want_root = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--root=")), None)
    if "--root" in argv: want_root = argv[argv.index("--root") + 1]; args.remove(want_root)
    if not want_root or len(want_root) != 64 or any(c not in "0123456789abcdefABCDEF" for c in want_root):
        print("verify_proof.py: give --root HEX (64 hex digits): the root you trust, published outside "
              "the ledger; a proof alone proves nothing", file=sys.stderr)
        return 2
    p = json.load(sys.stdin if not args or args[0] == "-" else open(args[0]))
    entry = p["entry"].encode("utf-8")
    lines = p["entry"].split("\n")
    if len(lines) < 3 or lines[1] != str(p["entry_seq"]) or lines[2] != p["cycle_id"]:
        return "the entry is not entry %s of cycle %r" % (p["entry_seq"], p["cycle_id"])
    if H(entry).hex() != p["entry_hash"]: return "entry hash mismatch"
    leaf = H(b"\x00" + entry)
    if leaf.hex() != p["leaf_hash"]: return "leaf hash mismatch"
    fn, sn, r = p["leaf_index"], p["tree_size"] - 1, leaf
    if fn > sn: return "leaf index outside the tree"
    for h in p["audit_path"]:
        h = bytes.fromhex(h)
        if sn == 0: return "audit path too long"
        if fn & 1 or fn == sn:
            r = H(b"\x01" + h + r)
            while not fn & 1 and fn != 0: fn >>= 1; sn >>= 1
        else:
            r = H(b"\x01" + r + h)
        fn >>= 1; sn >>= 1
    if sn != 0: return "audit path too short"
    if r.hex() != p["root"]: return "root mismatch: computed " + r.hex()
    if r.hex() != want_root.lower(): return "root differs from --root"
    print("OK: entry %d is leaf %d of %d under root %s" % (p["entry_seq"], p["leaf_index"], p["tree_size"], r.hex()))
    return 0

if __name__ == "__main__":
    res = main(sys.argv)
    if isinstance(res, int): sys.exit(res)
    print("FAILED: " + res, file=sys.stderr); sys.exit(1)
