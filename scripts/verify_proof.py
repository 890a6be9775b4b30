#!/usr/bin/python3
"""Check a ledger inclusion proof printed by `marginet ledger prove ENTRY` (RFC 6962 / RFC 9162).

Run it with Debian's Python 3 (/usr/bin/python3: hashlib and json, and for signed heads the
python3-nacl package that scripts/install-deps.sh installs):

    marginet ledger prove 42 --ledger L.sqlite > proof.json
    /usr/bin/python3 scripts/verify_proof.py proof.json --root HEX   # or: ... | verify_proof.py - --root HEX

    marginet ledger head --ledger L.sqlite > head.json              # a signed tree head
    /usr/bin/python3 scripts/verify_proof.py proof.json --head head.json --pubkey CCP.sign.pub

A proof alone proves nothing: whoever wrote it could have computed a matching root for any
entry. So one of these is required:

--root HEX      a cycle root you trust, published outside the ledger (the cycle root of `marginet
                ledger show`, kind cycle.root, taken when the cycle closed); the proof's per-cycle
                path must lead to it.
--pubkey FILE   the CCP's Ed25519 public key (NAME.sign.pub of `marginet keygen --signing`). The
                proof's "head" part (leaf seq-1 of the whole ledger's tree) must lead to the root
                of a tree head whose signature is valid under that key: the head of --head FILE
                (one JSON object as `marginet ledger head` prints it, or a line of LEDGER.heads),
                or without --head the signed head the proof carries.

Exit 0 and "OK" when the entry names the seq and cycle the proof claims, SHA-256(entry) is the
entry hash, SHA-256(0x00 || entry) is the leaf, and the paths lead where they must. Exit 1 when
the proof or the head does not hold (a forged head, a path that does not lead to its root), 2
for bad usage: no --root or --pubkey, --head without --pubkey, a malformed --root or key file,
PyNaCl missing.
"""
import hashlib, json, sys

def H(b): return hashlib.sha256(b).digest()

class Usage(Exception): pass
class Failed(Exception): pass

def is_hex(s, n): return isinstance(s, str) and len(s) == n and all(c in "0123456789abcdef" for c in s)

def parse_args(argv):
    opts, rest, i = {}, [], 1
    while i < len(argv):
        a = argv[i]
        name = next((n for n in ("--root", "--head", "--pubkey") if a == n or a.startswith(n + "=")), None)
        if name is None:
            if a.startswith("--"): raise Usage("unknown option " + a)
            rest.append(a); i += 1; continue
        if a == name:
            if i + 1 >= len(argv): raise Usage(name + " needs a value")
            opts[name] = argv[i + 1]; i += 2
        else:
            opts[name] = a.split("=", 1)[1]; i += 1
    if len(rest) > 1: raise Usage("one proof file (or -) only")
    return opts, (rest[0] if rest else "-")

def read_public_key(path):
    """The key of a NAME.sign.pub file: `ed25519-public-key = <64 hex>` (or a bare line of 64
    hex digits, as `marginet members keygen` writes it); blank lines and # comments ignored."""
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        raise Usage("%s: cannot read the public key file: %s" % (path, e.strerror))
    key = None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"): continue
        if "=" in line:
            field, value = (x.strip() for x in line.split("=", 1))
        else:
            field, value = "ed25519-public-key", line
        if field != "ed25519-public-key":
            raise Usage("%s:%d: field '%s': not a public key file (expected ed25519-public-key = <64 hex>)" % (path, n, field[:64]))
        if not is_hex(value.lower(), 64):
            raise Usage("%s:%d: field 'ed25519-public-key': expected 64 hex digits" % (path, n))
        key = bytes.fromhex(value)
    if key is None: raise Usage("%s: field 'ed25519-public-key': missing" % path)
    return key

def walk(leaf, index, size, path):
    """RFC 9162 §2.1.3.2: the root a leaf and its audit path imply."""
    fn, sn, r = index, size - 1, leaf
    if not isinstance(index, int) or not isinstance(size, int) or fn < 0 or fn > sn: raise Failed("leaf index outside the tree")
    for h in path:
        if not is_hex(h, 64): raise Failed("audit path element is not 64 hex digits")
        h = bytes.fromhex(h)
        if sn == 0: raise Failed("audit path too long")
        if fn & 1 or fn == sn:
            r = H(b"\x01" + h + r)
            while not fn & 1 and fn != 0: fn >>= 1; sn >>= 1
        else:
            r = H(b"\x01" + r + h)
        fn >>= 1; sn >>= 1
    if sn != 0: raise Failed("audit path too short")
    return r

def check_head(head, key):
    """A tree head's signature: Ed25519 over "marginet-tree-head-v1\\n" size "\\n" root "\\n" at."""
    if not isinstance(head, dict): raise Failed("the tree head is not a JSON object")
    size, root, at, sig = head.get("size"), head.get("root"), head.get("at"), head.get("signature")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1: raise Failed("tree head: field 'size': expected an integer >= 1")
    if not is_hex(root, 64): raise Failed("tree head: field 'root': expected 64 lower-case hex digits")
    if not isinstance(at, str) or not at: raise Failed("tree head: field 'at': missing")
    if not is_hex(sig, 128): raise Failed("tree head: field 'signature': expected 128 lower-case hex digits")
    try:
        import nacl.signing, nacl.exceptions
    except ImportError:
        raise Usage("--pubkey needs PyNaCl (Debian: python3-nacl, installed by scripts/install-deps.sh)")
    message = ("marginet-tree-head-v1\n%d\n%s\n%s" % (size, root, at)).encode("utf-8")
    try:
        nacl.signing.VerifyKey(key).verify(message, bytes.fromhex(sig))
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise Failed("the tree head of size %d is not signed by public key %s: a forged or altered head" % (size, key.hex()))
    return size, root

def main(argv):
    try:
        opts, source = parse_args(argv)
        want_root, head_file, pubkey_file = opts.get("--root"), opts.get("--head"), opts.get("--pubkey")
        if not want_root and not pubkey_file:
            raise Usage("give --root HEX (64 hex digits), a cycle root published outside the ledger, or --pubkey "
                        "NAME.sign.pub [--head HEAD.json] to check the proof against a signed tree head; a proof "
                        "alone proves nothing")
        if head_file and not pubkey_file:
            raise Usage("--head needs --pubkey: a head is trusted only through the CCP's signature")
        if want_root is not None and not is_hex(want_root.lower(), 64):
            raise Usage("--root: expected 64 hex digits")
        key = read_public_key(pubkey_file) if pubkey_file else None
        head = None
        if head_file:
            try:
                head = json.load(open(head_file))
            except OSError as e:
                raise Usage("%s: cannot read the head file: %s" % (head_file, e.strerror))
            except ValueError:
                raise Failed("%s: not a tree head (JSON)" % head_file)
        try:
            p = json.load(sys.stdin if source == "-" else open(source))
        except ValueError:
            raise Failed("the proof is not JSON")
        return check(p, want_root, key, head)
    except Usage as e:
        print("verify_proof.py: " + str(e), file=sys.stderr)
        return 2
    except Failed as e:
        return str(e)

def check(p, want_root, key, head):
    try:
        entry = p["entry"].encode("utf-8")
        lines = p["entry"].split("\n")
        if len(lines) < 3 or lines[1] != str(p["entry_seq"]) or lines[2] != p["cycle_id"]:
            raise Failed("the entry is not entry %s of cycle %r" % (p["entry_seq"], p["cycle_id"]))
        if H(entry).hex() != p["entry_hash"]: raise Failed("entry hash mismatch")
        leaf = H(b"\x00" + entry)
        if leaf.hex() != p["leaf_hash"]: raise Failed("leaf hash mismatch")
        r = walk(leaf, p["leaf_index"], p["tree_size"], p["audit_path"])
        if r.hex() != p["root"]: raise Failed("root mismatch: computed " + r.hex())
        if want_root is not None and r.hex() != want_root.lower(): raise Failed("root differs from --root")
        said = "OK: entry %d is leaf %d of %d under root %s" % (p["entry_seq"], p["leaf_index"], p["tree_size"], r.hex())
        if key is not None:
            g = p.get("head")
            if not isinstance(g, dict):
                raise Failed("the proof has no path under a signed tree head (no head covered entry %s when it was made)" % p["entry_seq"])
            size, root = check_head(head if head is not None else g.get("tree_head"), key)
            if g.get("leaf_index") != p["entry_seq"] - 1: raise Failed("the head path's leaf is not entry %s" % p["entry_seq"])
            if g.get("tree_size") != size:
                raise Failed("the head path is for a tree of %s entries, the head covers %d" % (g.get("tree_size"), size))
            g_root = walk(leaf, g["leaf_index"], g["tree_size"], g.get("audit_path", []))
            if g_root.hex() != root:
                raise Failed("the head path leads to %s, not to the signed head's root %s" % (g_root.hex(), root))
            said += "; leaf %d of %d under the tree head signed by %s" % (g["leaf_index"], size, key.hex())
        print(said)
        return 0
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise Failed("malformed proof: %s %s" % (type(e).__name__, e))

if __name__ == "__main__":
    res = main(sys.argv)
    if isinstance(res, int): sys.exit(res)
    print("FAILED: " + res, file=sys.stderr); sys.exit(1)
