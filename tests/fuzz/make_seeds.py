#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora of tests/fuzz/corpus/ (standard library only).

The committed files are its output plus regression inputs (corpus/NAME/regress-*),
which are kept by hand. Run from anywhere: python3 tests/fuzz/make_seeds.py
"""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(name, fname, data):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


# ---- config_yaml: config files --------------------------------------------
with open(os.path.join(HERE, "..", "..", "jobs", "configs", "demo.yaml")) as f:
    put("config_yaml", "demo.yaml", f.read())
put("config_yaml", "dotted.yaml", """seed: 7
mesh_dim: "1,1,1"
load_llama_config: debug
llama.scan_attention: true
llama.scan_query_chunk_size: 32
llama.scan_key_chunk_size: 64
llama.remat_block: nothing_saveable
optimizer.adamw_optimizer.lr: 1e-3
train_dataset.type: text
train_dataset.text_dataset.path: data.jsonl
train_dataset.text_processor.fields: "[prompt],answer+extra,<|eos|>"
""")
put("config_yaml", "update.yaml", """load_llama_config: tiny
update_llama_config: "dict(num_hidden_layers=2, rope_theta=5e5, tie_word_embeddings=True)"
dtype: bf16
checkpointer:
  float_dtype: bf16
  keep: 2
""")
put("config_yaml", "flow.yaml", """{seed: 1, llama: {vocab_size: 300, hidden_size: 64, num_attention_heads: 4,
  num_key_value_heads: 2}, update_llama_config: {max_sequence_length: 512}, total_steps: 3}
""")
put("config_yaml", "anchors.yaml", """defaults: &d
  seq_length: 128
  batch_size: 4
train_dataset:
  hdf5_dataset: *d
eval_dataset: {hdf5_dataset: {<<: *d}}
tokenizer: {vocab_file: "tok.json"}
""")

# ---- config_args: one argument per line -------------------------------------
put("config_args", "basic", "--load_llama_config=debug\n--seed\n3\n--llama.scan_mlp\n--mesh_dim=1,-1,1\n")
put("config_args", "update", "--update_llama_config=dict(hidden_size=64, intermediate_size=172)\n"
    "--update_llama_config={num_hidden_layers: 1}\n--print_config\n")
put("config_args", "bools", "--llama.scan_attention=false\n--autoresume=True\n--log_all_worker\nno\n"
    "--optimizer.adamw_optimizer.lr=3e-4\n--train_dataset.type=json\n")
put("config_args", "typo", "--llama.scan_query_chunk=64\n")

# ---- tokenizer_json: tokenizer.json files -----------------------------------
def bytelevel_vocab():
    cs, n = [], 0
    for b in range(256):
        if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255:
            cs.append(chr(b))
        else:
            cs.append(chr(256 + n)); n += 1
    return cs

bl = bytelevel_vocab()
tiny = {
    "version": "1.0",
    "added_tokens": [{"id": 6, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False, "byte_fallback": False,
              "vocab": {"a": 0, "b": 1, "\u0120": 2, "ab": 3, "\u0120ab": 4, "aa": 5, "<|endoftext|>": 6, "\u010a": 7},
              "merges": ["a b", ["\u0120", "ab"], "a a"]},
}
put("tokenizer_json", "tiny.json", json.dumps(tiny))
vocab = {c: i for i, c in enumerate(bl)}
merges = []
for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("\u0120", "w"), ("o", "r"), ("\u0120w", "or")]:
    vocab[a + b] = len(vocab); merges.append(a + " " + b)
full = {
    "added_tokens": [{"id": len(vocab), "content": "<|begin_of_text|>", "special": True},
                     {"id": len(vocab) + 1, "content": "<|end_of_text|>", "special": True},
                     {"id": len(vocab) + 2, "content": "<sep>", "special": False, "single_word": True,
                      "lstrip": True, "rstrip": False, "normalized": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                                      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}}],
                       "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>",
                                                                "ids": [len(vocab)], "tokens": ["<|begin_of_text|>"]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "ignore_merges": True, "vocab": vocab, "merges": merges},
}
put("tokenizer_json", "llama3ish.json", json.dumps(full))
split_str = dict(tiny)
split_str["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"String": "a.b"}, "behavior": "MergedWithNext", "invert": False},
    {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": True},
    {"type": "ByteLevel", "add_prefix_space": True}]}
put("tokenizer_json", "split_string.json", json.dumps(split_str))

# ---- tokenizer_spm: SentencePiece .model protobufs --------------------------
def varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        c = v & 0x7F
        v >>= 7
        out += bytes([c | (0x80 if v else 0)])
        if not v:
            return out

def fbytes(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data

def fint(field, v):
    return varint(field << 3) + varint(v)

def piece(p, score, typ):
    return fbytes(1, fbytes(1, p.encode()) + bytes([2 << 3 | 5]) + struct.pack("<f", score) + fint(3, typ))

def specs(model_type, byte_fallback, dummy, remove_ws, charsmap=b""):
    t = fint(3, model_type) + fint(35, byte_fallback) + fint(40, 0) + fint(41, 1) + fint(42, 2) + fint(43, -1)
    n = fbytes(1, b"identity") + (fbytes(2, charsmap) if charsmap else b"") + fint(3, dummy) + fint(4, remove_ws) + fint(5, 1)
    return fbytes(2, t) + fbytes(3, n)

SPC = "\u2581"
m = b"".join(piece(*x) for x in [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3), (SPC, -1, 1), ("a", -2, 1),
                                    ("b", -3, 1), ("ab", -0.5, 1), (SPC + "ab", -0.25, 1), ("aa", -0.75, 1),
                                    ("<sep>", 0, 4)])
put("tokenizer_spm", "tiny.model", m + specs(2, 0, 1, 0))
put("tokenizer_spm", "tiny_ws.model", m + specs(2, 0, 0, 1))
bf = b"".join(piece(*x) for x in [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3)])
bf += b"".join(piece("<0x%02X>" % b, 0, 6) for b in range(256))
bf += piece(SPC, -1, 1) + piece("a", -2, 1) + piece("\u00e9", -3, 1)
put("tokenizer_spm", "bytes.model", bf + specs(2, 1, 1, 0))

# ---- safetensors: model.safetensors for the harness's config.json -----------
# vocab 8, hidden 4, ffn 8, 1 layer, 2 heads (head dim 2), 1 kv head, tied
V, D, F, H, KVH, Dh = 8, 4, 8, 2, 1, 2
shapes = [("model.embed_tokens.weight", [V, D]),
          ("model.layers.0.input_layernorm.weight", [D]),
          ("model.layers.0.self_attn.q_proj.weight", [H * Dh, D]),
          ("model.layers.0.self_attn.k_proj.weight", [KVH * Dh, D]),
          ("model.layers.0.self_attn.v_proj.weight", [KVH * Dh, D]),
          ("model.layers.0.self_attn.o_proj.weight", [D, H * Dh]),
          ("model.layers.0.post_attention_layernorm.weight", [D]),
          ("model.layers.0.mlp.gate_proj.weight", [F, D]),
          ("model.layers.0.mlp.up_proj.weight", [F, D]),
          ("model.layers.0.mlp.down_proj.weight", [D, F]),
          ("model.norm.weight", [D])]

def safetensors(dtype, extra=None):
    size = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}[dtype]
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for i, (name, shape) in enumerate(shapes):
        n = 1
        for s in shape:
            n *= s
        vals = [((i * 7 + k) % 13 - 6) / 8.0 for k in range(n)]
        if dtype == "F32":
            raw = struct.pack("<%df" % n, *vals)
        elif dtype == "F64":
            raw = struct.pack("<%dd" % n, *vals)
        elif dtype == "F16":
            raw = struct.pack("<%de" % n, *vals)
        else:
            raw = b"".join(struct.pack("<f", v)[2:] for v in vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if extra:
        header.update(extra)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

put("safetensors", "f32.safetensors", safetensors("F32"))
put("safetensors", "bf16.safetensors", safetensors("BF16"))
put("safetensors", "f16.safetensors", safetensors("F16",
    {"model.layers.0.self_attn.rotary_emb.inv_freq": {"dtype": "F16", "shape": [0], "data_offsets": [0, 0]}}))
put("safetensors", "f64.safetensors", safetensors("F64"))
put("safetensors", "small_bad.safetensors",
    struct.pack("<Q", 64) + b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}   ' + b"\0" * 8)

# ---- jsonl: header lines (fields, fields_from_example, prepend_text, separator), then JSONL
put("jsonl", "text", "\n\n\n\n" + '{"text": "hello world"}\n{"text": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\n"}\n'
    '{"id": 3, "text": "x", "meta": {"a": [1, 2.5e-3, true, null]}}\n[1, 2]\n{"text": 5}\n{"text": "broken\n')
put("jsonl", "fields", "[prompt],answer+extra,<|eos|>\n\nQ: \n | \n"
    '{"prompt": "2+2?", "answer": "4", "extra": "!"}\n{"prompt": "x"}\n{"prompt": "a", "answer": "b", "extra": "\\t"}\n')
put("jsonl", "from_example", "\nfields\n\n\n"
    '{"fields": "[in],out", "in": "a", "out": "b"}\n{"fields": "<|bos|>,x,<|eos|>", "x": "y"}\n{"fields": 3}\n'
    '{"fields": "", "x": "y"}\n')
