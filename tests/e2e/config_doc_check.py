"""docs/config.md agrees with the key table: every key `bpt help config --tsv` lists has
a row (dataset keys as <ds>.KEY) with the same type and default. Usage:
config_doc_check.py BPT docs/config.md"""
import re, subprocess, sys

bpt, doc = sys.argv[1], sys.argv[2]
rows = {}
for line in open(doc, encoding="utf-8"):
    if not line.startswith("| `"):
        continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 4:
        continue
    for name in re.findall(r"`([^`]+)`", cells[0]):
        rows[name] = (cells[1], cells[2])
out = subprocess.run([bpt, "help", "config", "--tsv"], capture_output=True, text=True, check=True).stdout
bad, n = [], 0
for line in out.splitlines():
    name, typ, default, use, _ = line.split("\t", 4)
    cands = [name] + ["<ds>." + name[len(ds):] for ds in ("train_dataset.", "eval_dataset.") if name.startswith(ds)]
    row = next((rows[c] for c in cands if c in rows), None)
    n += 1
    if row is None:
        bad.append(f"{name}: no row in {doc}")
        continue
    dtype, ddef = row
    ddef = ddef.strip("`")
    if len(ddef) >= 2 and ddef[0] == ddef[-1] == "'" and ddef != "''":
        ddef = ddef[1:-1]   # a quoted default (' ')
    want = default if default else "''"
    if not (ddef == want or (use == "ignored" and ddef == "")):
        bad.append(f"{name}: default {ddef!r} in the docs, {want!r} in the table")
    if dtype != typ:
        bad.append(f"{name}: type {dtype!r} in the docs, {typ!r} in the table")
for b in bad:
    print(b)
print(f"{n} keys: {'all agree with' if not bad else str(len(bad)) + ' disagree with'} {doc}")
sys.exit(1 if bad else 0)
