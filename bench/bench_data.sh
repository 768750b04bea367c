#!/usr/bin/env bash
# bench_data.sh — tokenization speed of `bpt data prepare` (one rank) against the
# Python sentencepiece and tokenizers packages on the same JSONL text, and the
# loader's share of a training step.
#   bench/bench_data.sh [MB]
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-16}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
python3 - "$W" "$MB" <<'PY'
import json, random, sys
random.seed(0)
w, mb = sys.argv[1], int(sys.argv[2])
syl = "ka ri to mo na se lu pe di an er in on qu zh é ü ö 東 京 数 据".split()
words = ["".join(random.choices(syl, k=random.randint(1, 4))) for _ in range(6000)] + ["🙂", "1987", "42", "the", "of"]
with open(f"{w}/c.jsonl", "w") as f:
    size = 0
    while size < mb * 1e6:
        t = " ".join(random.choices(words, k=random.randint(20, 200)))
        line = json.dumps({"text": t}, ensure_ascii=False) + "\n"
        f.write(line); size += len(line.encode())
import sentencepiece as spm
from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
lines = [json.loads(l)["text"] for _, l in zip(range(20000), open(f"{w}/c.jsonl"))]
open(f"{w}/train.txt", "w").write("\n".join(lines))
spm.SentencePieceTrainer.train(input=f"{w}/train.txt", model_prefix=f"{w}/sp", vocab_size=2000, model_type="bpe",
                               byte_fallback=True, character_coverage=1.0, minloglevel=2)
tok = Tokenizer(models.BPE()); tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train([f"{w}/train.txt"], trainers.BpeTrainer(vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
tok.save(f"{w}/tokenizer.json")
PY
echo "text: $MB MB of JSONL (ASCII, accented Latin, CJK, emoji), vocab 2000, one core"
echo
echo "| tokenizer | bpt data prepare (1 rank, C) | Python package, one thread |"
echo "|---|---:|---:|"
for t in sp.model tokenizer.json; do
    c=$(OMP_NUM_THREADS=1 src/bpt data prepare --input "$W/c.jsonl" --tokenizer "$W/$t" --output "$W/o.h5" | sed -n 's/.*(\([0-9.]*\) MB\/s.*/\1/p')
    p=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false python3 - "$W" "$t" <<'PY'
import json, sys, time, os
w, t = sys.argv[1], sys.argv[2]
texts = [json.loads(l)["text"] for l in open(f"{w}/c.jsonl")]
nbytes = os.path.getsize(f"{w}/c.jsonl")
if t == "sp.model":
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=f"{w}/{t}")
    t0 = time.time(); [sp.encode(x) for x in texts]; dt = time.time() - t0
else:
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(f"{w}/{t}")
    t0 = time.time(); [tk.encode(x) for x in texts]; dt = time.time() - t0
print(f"{nbytes / 1e6 / dt:.1f}")
PY
)
    echo "| $t | $c MB/s | $p MB/s (encode per document, JSON parsing not counted) |"
done
