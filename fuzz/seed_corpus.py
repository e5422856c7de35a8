#!/usr/bin/env python3
"""Build the fuzz seed corpus from the shared test vectors.

Usage:  python3 fuzz/seed_corpus.py [VECTORS_DIR]

VECTORS_DIR defaults to $ESCROWD_VECTORS, else ../shared/vectors beside the
checkout (the same rule as crates/bsv-format/tests/common/mod.rs). Seeds are
written to fuzz/corpus/<target>/<sha1 of the bytes>, one file per distinct
input; fuzz/corpus/ is gitignored, so no vector data is ever committed.

What each target gets (the input layout is the one its fuzz_targets/*.rs reads):
  raw_tx       raw transactions (tx_valid/tx_invalid, sighash rows, EF cases'
               raw_hex, conformance serialization raw_hex)
  ef           EF transactions (ef_cases ef_hex, conformance ef hex)
  script       flags u32le | tx_version u32le | amount u64le | len u16le |
               unlocking (len bytes) | locking: the node's script-test rows
               with their flags, version and amount (node test ASM compiled
               here), tx_valid prevout scripts, sighash script codes, and EF
               inputs' locking scripts with the real unlocking scripts
  bump         BRC-74 BUMPs (bump_cases, conformance merkle-path bump_hex)
  beef_v1      V1 BEEF bodies, the 4-byte magic 0100beef stripped
  beef_v2      V2 BEEF bodies, the magic 0200beef stripped
  beef_atomic  Atomic BEEFs with the 01010101 prefix stripped
               (subject txid 32 bytes, then a whole V1/V2 BEEF)
"""

import hashlib
import json
import os
import re
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "crates" / "bsv-format" / "src"
OPCODES_RS = SRC / "script" / "opcodes.rs"
INTERPRETER_RS = SRC / "script" / "interpreter" / "mod.rs"

TARGETS = ["raw_tx", "ef", "script", "bump", "beef_v1", "beef_v2", "beef_atomic"]
MAGIC = {"beef_v1": "0100beef", "beef_v2": "0200beef", "beef_atomic": "01010101"}
EF_MARKER = "0000000000ef"


def vectors_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    env = os.environ.get("ESCROWD_VECTORS")
    if env:
        return Path(env)
    return HERE.parent.parent / "shared" / "vectors"


def walk(value, key=""):
    """Yields (key, string) for every string in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, key)
    elif isinstance(value, str):
        yield key, value


def is_hex(s: str) -> bool:
    return len(s) % 2 == 0 and len(s) >= 2 and re.fullmatch(r"[0-9a-fA-F]+", s) is not None


# --- node test ASM (script_tests*.json) -> bytes ---------------------------

def opcode_table():
    table = {}
    for name, val in re.findall(r"pub const (OP_\w+): u8 = (0x[0-9a-fA-F]+);", OPCODES_RS.read_text()):
        table[name] = int(val, 16)
        table[name[3:]] = int(val, 16)
    return table


def push(data: bytes) -> bytes:
    n = len(data)
    if n < 0x4C:
        return bytes([n]) + data
    if n <= 0xFF:
        return b"\x4c" + bytes([n]) + data
    if n <= 0xFFFF:
        return b"\x4d" + struct.pack("<H", n) + data
    return b"\x4e" + struct.pack("<I", n) + data


def scriptnum(n: int) -> bytes:
    if n == 0:
        return b""
    neg, a, out = n < 0, abs(n), bytearray()
    while a:
        out.append(a & 0xFF)
        a >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if neg else 0)
    elif neg:
        out[-1] |= 0x80
    return bytes(out)


def compile_asm(text: str, ops) -> bytes | None:
    out = bytearray()
    for tok in text.split():
        if re.fullmatch(r"-?\d+", tok):
            n = int(tok)
            if n == 0:
                out.append(0)
            elif n == -1:
                out.append(0x4F)
            elif 1 <= n <= 16:
                out.append(0x50 + n)
            else:
                out += push(scriptnum(n))
        elif tok.startswith("0x"):
            if not is_hex(tok[2:]):
                return None
            out += bytes.fromhex(tok[2:])
        elif len(tok) >= 2 and tok[0] == "'" and tok[-1] == "'":
            out += push(tok[1:-1].encode())
        elif tok in ops:
            out.append(ops[tok])
        else:
            return None
    return bytes(out)


def flag_table():
    bits = {n: 1 << int(b) for n, b in re.findall(r"pub const (\w+): VerifyFlags = VerifyFlags\(1 << (\d+)\);", INTERPRETER_RS.read_text())}
    bits["NONE"] = 0
    return bits


def parse_flags(text: str, table) -> int:
    out = 0
    for name in filter(None, (t.strip() for t in text.split(","))):
        out |= table.get(name, 0)
    return out


def script_seed(unlocking: bytes, locking: bytes, flags: int = 0, version: int = 1, amount: int = 0) -> bytes:
    unlocking = unlocking[:0xFFFF]
    head = struct.pack("<IIQH", flags & 0xFFFFFFFF, version & 0xFFFFFFFF, amount, len(unlocking))
    return head + unlocking + locking


# --- a tiny raw-tx reader, only to pair EF unlocking scripts with locking ones

def read_varint(b: bytes, i: int):
    f = b[i]
    if f < 0xFD:
        return f, i + 1
    w = {0xFD: 2, 0xFE: 4, 0xFF: 8}[f]
    return int.from_bytes(b[i + 1:i + 1 + w], "little"), i + 1 + w


def unlocking_scripts(raw: bytes):
    i = 4
    n, i = read_varint(raw, i)
    out = []
    for _ in range(n):
        i += 36
        ln, i = read_varint(raw, i)
        out.append(raw[i:i + ln])
        i += ln + 4
    return out


def main() -> int:
    vdir = vectors_dir()
    if not vdir.is_dir():
        print(f"vectors not found at {vdir} (pass a path or set ESCROWD_VECTORS)", file=sys.stderr)
        return 1
    seeds = {t: set() for t in TARGETS}
    ops = opcode_table()
    flags_by_name = flag_table()

    def add_beef(h: str):
        h = h.lower()
        for t, m in MAGIC.items():
            if h.startswith(m):
                seeds[t].add(bytes.fromhex(h[len(m):]))
                if t == "beef_atomic" and len(h) > 72:
                    inner = h[72:]
                    for t2 in ("beef_v1", "beef_v2"):
                        if inner.startswith(MAGIC[t2]):
                            seeds[t2].add(bytes.fromhex(inner[8:]))

    def add_tx(h: str):
        b = bytes.fromhex(h)
        if len(b) > 10 and b[4:10].hex() == EF_MARKER:
            seeds["ef"].add(b)
        else:
            seeds["raw_tx"].add(b)

    # Every hex string in every JSON file, classified by its key and content.
    for path in sorted(vdir.rglob("*.json")):
        doc = json.loads(path.read_text())
        rel = path.relative_to(vdir).as_posix()
        for key, s in walk(doc):
            if not is_hex(s):
                continue
            low = s.lower()
            if low.startswith(("0100beef", "0200beef", "01010101")) and "beef" in (key + rel).lower():
                add_beef(low)
            elif "bump" in key.lower() or (rel.startswith("bump/") and key == "hex"):
                seeds["bump"].add(bytes.fromhex(low))
            elif key in ("raw_hex", "ef_hex", "raw_transaction", "hex") and rel.startswith(("ef/", "conformance/serialization")):
                add_tx(low)
        # Row-based node fixtures.
        if rel.startswith("tx/"):
            for row in doc:
                if len(row) >= 2 and isinstance(row[1], str) and is_hex(row[1]):
                    add_tx(row[1])
                    if isinstance(row[0], list):
                        for prev in row[0]:
                            if len(prev) >= 3 and isinstance(prev[2], str):
                                lock = compile_asm(prev[2], ops)
                                if lock is not None:
                                    seeds["script"].add(script_seed(b"", lock))
        if rel.startswith("sighash/"):
            for row in doc[1:]:
                if len(row) >= 2 and is_hex(row[0]):
                    add_tx(row[0])
                    if row[1] == "" or is_hex(row[1]):
                        seeds["script"].add(script_seed(b"", bytes.fromhex(row[1])))
        if rel.startswith("script/"):
            has_version = "bitcoin-sv" in rel
            for row in doc:
                if len(row) < 4:
                    continue
                amount = 0
                cols = row
                if isinstance(row[0], list):
                    amount = round(float(row[0][-1]) * 1e8) if row[0] else 0
                    cols = row[1:]
                version = 1
                if has_version:
                    try:
                        version = int(cols[0])
                    except (TypeError, ValueError):
                        continue
                    cols = cols[1:]
                if len(cols) < 3 or not all(isinstance(c, str) for c in cols[:3]):
                    continue
                sig, pub = compile_asm(cols[0], ops), compile_asm(cols[1], ops)
                if sig is not None and pub is not None:
                    flags = parse_flags(cols[2], flags_by_name)
                    seeds["script"].add(script_seed(sig, pub, flags, version, amount))
        if rel == "ef/ef_cases.json":
            for case in doc["cases"]:
                raw = bytes.fromhex(case["raw_hex"])
                for unlock, inp in zip(unlocking_scripts(raw), case["inputs"]):
                    seeds["script"].add(script_seed(unlock, bytes.fromhex(inp["source_locking_script_hex"])))

    out = HERE / "corpus"
    for t, items in seeds.items():
        d = out / t
        d.mkdir(parents=True, exist_ok=True)
        for b in items:
            (d / hashlib.sha1(b).hexdigest()).write_bytes(b)
        print(f"{t:12} {len(items):5} seeds -> {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
