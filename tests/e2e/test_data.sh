#!/usr/bin/env bash
# The data pipeline: bpt data prepare (JSONL -> HDF5 tokens, in parallel, the same file
# on any number of ranks), the text processor's masks reaching the loss, real
# tokenizers equal to the reference packages end to end, and bad inputs.
. "$(dirname "$0")/lib.sh"
need_python numpy h5py
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
python3 - "$WORK" <<'PY'
import json, random, sys
random.seed(3)
w = "the quick brown fox jumps over a lazy dog café naïve 東京 🙂 model data  tabs\t".split(" ")
with open(f"{sys.argv[1]}/a.jsonl", "w") as f:
    for i in range(2000):
        f.write(json.dumps({"prompt": " ".join(random.choices(w, k=4)), "text": " ".join(random.choices(w, k=30))},
                           ensure_ascii=False) + "\n")
        if i % 400 == 5: f.write("{broken json\n")
with open(f"{sys.argv[1]}/b.jsonl", "w") as f:
    for i in range(500): f.write(json.dumps({"prompt": f"q{i}", "text": f"answer {i}\n"}) + "\n")
PY
IN="$WORK/a.jsonl,$WORK/b.jsonl"

# prepare on 1 and 3 ranks: the same file; [prompt] gives /loss_mask; malformed lines counted
"$BPT" data prepare --input "$IN" --fields "[prompt],text" --output "$WORK/p1.h5" > "$WORK/p1.out" &&
"$MPIRUN" $MPIRUN_FLAGS -np 3 "$BPT" data prepare --input "$IN" --fields "[prompt],text" --output "$WORK/p3.h5" > "$WORK/p3.out" &&
python3 - "$WORK" <<'PY' && ok "prepare: 1 and 3 ranks write the same tokens, mask, document offsets; 5 malformed lines counted" || fail "prepare"
import h5py, json, sys, numpy as np
w = sys.argv[1]
a, b = h5py.File(f"{w}/p1.h5"), h5py.File(f"{w}/p3.h5")
for k in ("tokens", "loss_mask", "doc_offsets"):
    assert np.array_equal(a[k][()], b[k][()]), k
assert a["tokens"].dtype == np.uint16 and a.attrs["malformed_lines"] == 5 and a.attrs["num_documents"] == 2500
# the byte tokenizer: prompt bytes (mask 0) then text bytes (mask 1), documents in order
docs = [json.loads(l) for f in ("a", "b") for l in open(f"{w}/{f}.jsonl") if not l.startswith("{broken")]
want, mask, offs = [], [], []
for d in docs:
    offs.append(len(want))
    p, t = d["prompt"].encode(), d["text"].encode()
    want += list(p) + list(t); mask += [0] * len(p) + [1] * len(t)
assert np.array_equal(a["tokens"][()], np.array(want)) and np.array_equal(a["loss_mask"][()], np.array(mask))
assert np.array_equal(a["doc_offsets"][()], np.array(offs))
PY
grep -q "skipped 5 malformed lines (first at .*a.jsonl line 7: not valid JSON at column 2)" "$WORK/p1.out" &&
    ok "prepare reports the malformed lines and the first one" || fail "malformed report: $(cat "$WORK/p1.out")"

# documents with no tokens (an empty text) are documents too: /doc_offsets has one entry
# per well-formed line, on 1 and on 3 ranks (empty ones at the start, the end and rank boundaries)
python3 - "$WORK" <<'PY'
import json, sys
with open(f"{sys.argv[1]}/z.jsonl", "w") as f:
    for i in range(301):
        f.write(json.dumps({"text": "" if i % 3 == 0 or i > 296 else f"doc {i}"}) + "\n")
        if i % 50 == 7: f.write("\n")
PY
"$BPT" data prepare --input "$WORK/z.jsonl" --output "$WORK/z1.h5" > /dev/null &&
"$MPIRUN" $MPIRUN_FLAGS -np 3 "$BPT" data prepare --input "$WORK/z.jsonl" --output "$WORK/z3.h5" > /dev/null &&
python3 - "$WORK" <<'PY' && ok "documents without tokens keep their /doc_offsets entry, on 1 and 3 ranks" || fail "zero-token documents in /doc_offsets"
import h5py, json, sys, numpy as np
w = sys.argv[1]
docs = [json.loads(l)["text"].encode() for l in open(f"{w}/z.jsonl") if l.strip()]
offs, n = [], 0
for d in docs:
    offs.append(n); n += len(d)
for r in (1, 3):
    f = h5py.File(f"{w}/z{r}.h5")
    assert f["doc_offsets"][()].tolist() == offs, (r, f["doc_offsets"][()].tolist()[:12], offs[:12])
    assert f.attrs["num_documents"] == len(docs) == 301 and f.attrs["num_tokens"] == n
PY
"$BPT" data inspect "$WORK/p3.h5" | grep -q "documents   2500" && ok "data inspect" || fail "data inspect"

# text processor: fields_from_example, prepend_text, a+b with subfield_separator, <|eos|>
printf '%s\n' '{"f": "[q],a+b", "q": "Q?", "a": "x", "b": "y"}' '{"f": "a,[<|eos|>]", "a": "zz"}' '{"q": "no f"}' > "$WORK/fx.jsonl"
"$BPT" data prepare --input "$WORK/fx.jsonl" --fields_from_example f --prepend_text ">" --subfield_separator "+" \
    --output "$WORK/fx.h5" > "$WORK/fx.out" 2>&1 &&
python3 - "$WORK/fx.h5" <<'PY' && ok "text processor: fields_from_example, prepend_text, a+b, [<|eos|>], a line without its key skipped" || fail "text processor cases: $(cat "$WORK/fx.out")"
import h5py, numpy as np
f = h5py.File(__import__("sys").argv[1])
toks, mask = f["tokens"][()].tolist(), f["loss_mask"][()].tolist()
want = list(b">Q?") + list(b"x+y") + list(b">zz") + [1]      # eos = llama.eos_token_id = 1 (bytes has none)
wmask = [0, 0, 0] + [1, 1, 1] + [1, 1, 1] + [0]
assert toks == want and mask == wmask, (toks, mask)
assert f.attrs["malformed_lines"] == 1 and f.attrs["num_documents"] == 2
PY

# the mask reaches the loss: bpt eval counts exactly the unmasked targets of its window
"$BPT" train --config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --llama.vocab_size=256 \
    --train_dataset.hdf5_dataset.path="$WORK/p1.h5" --train_dataset.hdf5_dataset.seq_length=128 \
    --train_dataset.hdf5_dataset.batch_size=4 --eval_steps=0 --total_steps=1 --save_model_freq=1 \
    --logger.output_dir="$WORK/m" > /dev/null 2>&1
ev=$("$BPT" eval --config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --llama.vocab_size=256 \
     --eval_dataset.hdf5_dataset.path="$WORK/p1.h5" --eval_dataset.hdf5_dataset.seq_length=128 \
     --eval_dataset.hdf5_dataset.batch_size=4 --eval_steps=2 --load_checkpoint=params::"$WORK/m/ckpt/step_1.h5")
python3 - "$WORK/p1.h5" "$ev" <<'PY' && ok "masked targets are left out of the loss: $ev" || fail "mask in the loss: $ev"
import h5py, json, sys
m = h5py.File(sys.argv[1])["loss_mask"][()]
want = int(m[1:2 * 4 * 128 + 1].sum())        # targets of two global batches of 4 x 128
got = json.loads(sys.argv[2])["tokens"]
assert got == want and want < 2 * 4 * 128, (got, want)
PY

# shuffled windows over a mixture of two files: 6 steps on one rank == 3 steps on one
# rank, checkpoint, and 3 more on a 2x1x1 mesh (the loader state is mesh-independent)
S=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --llama.vocab_size=256 --dtype=fp32
   --train_dataset.hdf5_dataset.path="$WORK/p1.h5,$WORK/p3.h5" --train_dataset.weights=2,1 --train_dataset.shuffle=true
   --train_dataset.hdf5_dataset.seq_length=64 --train_dataset.hdf5_dataset.batch_size=4 --eval_steps=0
   --log_freq=1 --checkpointer.save_optimizer_state=true --peak_flops=1e11)
"$BPT" train "${S[@]}" --total_steps=6 --logger.output_dir="$WORK/s1" > /dev/null 2>&1 &&
"$BPT" train "${S[@]}" --total_steps=3 --save_model_freq=3 --logger.output_dir="$WORK/s2" > /dev/null 2>&1 &&
"$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" train "${S[@]}" --total_steps=6 --mesh_dim=2,1,1 --autoresume=true \
    --logger.output_dir="$WORK/s2" > "$WORK/s2.out" 2>&1 && grep -q "at step 3" "$WORK/s2.out" &&
python3 - "$WORK/s1/metrics.jsonl" "$WORK/s2/metrics.jsonl" <<'PY' && ok "shuffled mixture: resumed on another mesh, the same batches (losses within 1e-5)" || fail "shuffled resume on another mesh"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in b] == list(range(6))
assert all(abs(x["loss"] - y["loss"]) <= 1e-5 * x["loss"] for x, y in zip(a, b)), [(x["loss"], y["loss"]) for x, y in zip(a, b)]
assert all(x["dataset_tokens_consumed"] == y["dataset_tokens_consumed"] for x, y in zip(a, b))
PY

# type: json streams the JSONL and tokenizes it on the fly with 3 threads: the same
# batches as type: text (tokenized at open), also resumed on another mesh
J=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --llama.vocab_size=256 --dtype=fp32
   --train_dataset.text_dataset.path="$WORK/a.jsonl" --train_dataset.text_processor.fields="[prompt],text"
   --train_dataset.text_dataset.seq_length=64 --train_dataset.text_dataset.batch_size=4 --eval_steps=0
   --log_freq=1 --checkpointer.save_optimizer_state=true --peak_flops=1e11)
"$BPT" train "${J[@]}" --train_dataset.type=text --total_steps=8 --logger.output_dir="$WORK/jt" > /dev/null 2>&1 &&
"$BPT" train "${J[@]}" --train_dataset.type=json --train_dataset.json_dataset.tokenizer_processes=3 --total_steps=4 \
    --save_model_freq=4 --logger.output_dir="$WORK/jj" > /dev/null 2>&1 &&
"$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" train "${J[@]}" --train_dataset.type=json --train_dataset.json_dataset.tokenizer_processes=2 \
    --total_steps=8 --mesh_dim=2,1,1 --autoresume=true --logger.output_dir="$WORK/jj" > "$WORK/jj.out" 2>&1 &&
grep -q "at step 4" "$WORK/jj.out" &&
python3 - "$WORK/jt/metrics.jsonl" "$WORK/jj/metrics.jsonl" <<'PY' && ok "type json (streamed, threads) equals type text, and resumes on another mesh" || fail "json streaming"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in b] == list(range(8)), [r["step"] for r in b]
assert all(abs(x["loss"] - y["loss"]) <= 1e-5 * x["loss"] for x, y in zip(a, b)), [(x["loss"], y["loss"]) for x, y in zip(a, b)]
PY
: > "$WORK/none.jsonl"
expect_error "empty streamed json dataset" "none.jsonl: no tokens" "$BPT" train "${J[@]}" --train_dataset.type=json \
    --train_dataset.text_dataset.path="$WORK/none.jsonl" --total_steps=1 --logger.output_dir="$WORK/jn"

# real tokenizers end to end: prepare with a SentencePiece model and a tokenizer.json
if python3 -c 'import sentencepiece, tokenizers' 2>/dev/null; then
    python3 - "$WORK" <<'PY'
import sys, json, sentencepiece as spm
from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
w = sys.argv[1]
lines = [json.loads(l)["text"] for l in open(f"{w}/a.jsonl") if not l.startswith("{broken")]
open(f"{w}/corpus.txt", "w").write("\n".join(lines))
spm.SentencePieceTrainer.train(input=f"{w}/corpus.txt", model_prefix=f"{w}/sp", vocab_size=300, model_type="bpe",
                               byte_fallback=True, character_coverage=1.0, minloglevel=2)
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train([f"{w}/corpus.txt"], trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
tok.save(f"{w}/tokenizer.json")
PY
    "$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" data prepare --input "$IN" --tokenizer "$WORK/sp.model" --output "$WORK/sp.h5" > /dev/null &&
    "$MPIRUN" $MPIRUN_FLAGS -np 2 "$BPT" data prepare --input "$IN" --tokenizer "$WORK/tokenizer.json" --output "$WORK/bpe.h5" > /dev/null &&
    python3 - "$WORK" <<'PY' && ok "prepare with SentencePiece and tokenizer.json equals the reference packages, document by document" || fail "real tokenizers in prepare"
import sys, json, h5py, numpy as np, sentencepiece as spm
from tokenizers import Tokenizer
w = sys.argv[1]
docs = [json.loads(l)["text"] for f in ("a", "b") for l in open(f"{w}/{f}.jsonl") if not l.startswith("{broken")]
sp, bpe = spm.SentencePieceProcessor(model_file=f"{w}/sp.model"), Tokenizer.from_file(f"{w}/tokenizer.json")
for path, enc in ((f"{w}/sp.h5", lambda t: sp.encode(t)), (f"{w}/bpe.h5", lambda t: bpe.encode(t).ids)):
    want = [i for d in docs for i in enc(d)]
    got = h5py.File(path)["tokens"][()]
    assert np.array_equal(got, np.array(want)), path
PY
    head -c 2000 "$WORK/sp.model" > "$WORK/sp-cut.model"
    expect_error "truncated SentencePiece model" "^bpt: [^ ]*/sp-cut.model: SentencePiece model is truncated.* at byte offset [0-9]+" \
        "$BPT" data prepare --input "$IN" --tokenizer "$WORK/sp-cut.model" --output "$WORK/x.h5"
else
    echo "note: sentencepiece/tokenizers not installed; the real-tokenizer part is skipped"
fi

# bad inputs: one line each
python3 -c "import h5py, numpy as np; h5py.File('$WORK/big.h5', 'w')['tokens'] = np.array([1, 2, 3, 70000, 5], dtype=np.uint32)"
expect_error "token id >= vocabulary" "big.h5.*70000 at offset 3" "$BPT" train --config "$TOP/jobs/configs/demo.yaml" \
    --train_dataset.hdf5_dataset.path="$WORK/big.h5" --eval_steps=0 --total_steps=1
# token files that are not what they should be: the message says what is wrong
python3 - "$WORK" <<'PY2'
import sys, h5py, numpy as np
w = sys.argv[1]
h5py.File(f"{w}/notok.h5", "w")["ids"] = np.arange(10, dtype=np.uint16)
h5py.File(f"{w}/grp.h5", "w").create_group("tokens")
h5py.File(f"{w}/str.h5", "w")["tokens"] = np.array([b"ab", b"cd"])
h5py.File(f"{w}/lzf.h5", "w").create_dataset("tokens", data=np.arange(1000, dtype=np.uint16) % 256, compression="lzf")
h5py.File(f"{w}/good.h5", "w")["tokens"] = np.arange(100000, dtype=np.uint16) % 256
d = open(f"{w}/good.h5", "rb").read()
open(f"{w}/cut.h5", "wb").write(d[:len(d) // 2])
PY2
expect_error "inspect: missing file" "nope.h5: no such file" "$BPT" data inspect "$WORK/nope.h5"
expect_error "inspect: no /tokens" "notok.h5: no /tokens dataset" "$BPT" data inspect "$WORK/notok.h5"
expect_error "inspect: /tokens a group" "grp.h5: /tokens is a group, not a dataset" "$BPT" data inspect "$WORK/grp.h5"
expect_error "inspect: /tokens of strings" "str.h5: /tokens holds strings, expected integer" "$BPT" data inspect "$WORK/str.h5"
expect_error "inspect: truncated" "cut.h5: truncated HDF5 file \\([0-9]+ bytes; its superblock says [0-9]+\\)$" "$BPT" data inspect "$WORK/cut.h5"
expect_error "train: truncated token file, no locking hint" "train_dataset: .*cut.h5: truncated HDF5 file [^H]*$" \
    "$BPT" train --config "$TOP/jobs/configs/demo.yaml" --train_dataset.hdf5_dataset.path="$WORK/cut.h5" --eval_steps=0 --total_steps=1
expect_error "train: /tokens compressed with a filter HDF5 lacks" "lzf.h5: /tokens is compressed with HDF5 filter 32000 \\(lzf\\)" \
    "$BPT" train --config "$TOP/jobs/configs/demo.yaml" --train_dataset.hdf5_dataset.path="$WORK/lzf.h5" --eval_steps=0 --total_steps=1
printf 'not a protobuf at all' > "$WORK/bad.model"
expect_error "tokenizer file is not what it claims (one prefix)" "^bpt: [^ ]*/bad.model: not a SentencePiece model" \
    "$BPT" data prepare --input "$IN" --tokenizer "$WORK/bad.model" --output "$WORK/x.h5"
# tokenizer.json files: ids far past the vocabulary, and a LLaMA-2 one (as transformers writes it)
python3 - "$WORK" <<'PY2'
import sys, json
w = sys.argv[1]
base = {"added_tokens": [], "normalizer": None, "pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
j = json.loads(json.dumps(base)); j["model"]["vocab"]["c"] = 1000000000
json.dump(j, open(f"{w}/bigid.json", "w"))
j = json.loads(json.dumps(base)); j["added_tokens"] = [{"id": 7777777, "content": "<x>", "special": True}]
json.dump(j, open(f"{w}/bigadd.json", "w"))
j = json.loads(json.dumps(base))
j["normalizer"] = None
j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
j["decoder"] = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
j["model"]["byte_fallback"] = True
json.dump(j, open(f"{w}/llama2.json", "w"))
PY2
expect_error "tokenizer.json with an id of 1e9" "bigid.json: model.vocab token \"c\" has id 1000000000, but the vocabulary holds 4 tokens" \
    "$BPT" data prepare --input "$IN" --tokenizer "$WORK/bigid.json" --output "$WORK/x.h5"
expect_error "tokenizer.json with an added token id 7777777" "bigadd.json: added token \"<x>\" has id 7777777, but the vocabulary holds 4 tokens" \
    "$BPT" data prepare --input "$IN" --tokenizer "$WORK/bigadd.json" --output "$WORK/x.h5"
expect_error "LLaMA-2 tokenizer.json: the tokenizer.model hint" "llama2.json: a SentencePiece-style BPE tokenizer.json .*HINT: for LLaMA 1/2 use the SentencePiece tokenizer.model" \
    "$BPT" data prepare --input "$IN" --tokenizer "$WORK/llama2.json" --output "$WORK/x.h5"
expect_error "missing input" "nope.jsonl" "$BPT" data prepare --input "$WORK/nope.jsonl" --output "$WORK/x.h5"
for i in $(seq 12); do echo "{broken $i"; done > "$WORK/bad12.jsonl"
expect_error "prepare: every line malformed" "bad12.jsonl: 0 tokens: all 12 lines are malformed \\(first at line 1: not valid JSON at column 2\\)" \
    "$BPT" data prepare --input "$WORK/bad12.jsonl" --output "$WORK/x.h5"
expect_error "prepare on 3 ranks: every line of two files malformed" \
    "fx.jsonl,.*bad12.jsonl: 0 tokens: all 15 lines are malformed \\(first at .*fx.jsonl line 1: no fields_from_example key \"nokey\"\\)" \
    "$MPIRUN" $MPIRUN_FLAGS -np 3 "$BPT" data prepare --input "$WORK/fx.jsonl,$WORK/bad12.jsonl" --fields_from_example nokey --output "$WORK/x.h5"
expect_error "type text: every line malformed, one line" "train_dataset: .*bad12.jsonl: 0 tokens: all 12 lines are malformed \\(first at line 1: " \
    "$BPT" train "${J[@]}" --train_dataset.type=text --train_dataset.text_dataset.path="$WORK/bad12.jsonl" --total_steps=1 --logger.output_dir="$WORK/jb"
expect_error "type json: every line malformed" "bad12.jsonl: no tokens in the whole file \\(12 malformed lines, first at line 1: " \
    "$BPT" train "${J[@]}" --train_dataset.type=json --train_dataset.text_dataset.path="$WORK/bad12.jsonl" --total_steps=1 --logger.output_dir="$WORK/jb"
: > "$WORK/empty.jsonl"
expect_error "empty dataset" "empty.jsonl.*tokens" "$BPT" data prepare --input "$WORK/empty.jsonl" --output "$WORK/x.h5"
finish
