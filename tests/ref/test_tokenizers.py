#!/usr/bin/env python3
"""test_tokenizers.py — our C tokenizers against the reference libraries.

Trains small tokenizers with the `sentencepiece` and `tokenizers` packages (on a
generated corpus), then checks that the C side (through tests/unit/tok_driver) gives
the same ids and the same decoded text as the reference, on a corpus of test lines of
many kinds: ASCII, accented Latin, CJK, emoji, whitespace runs, tabs and newlines,
leading/trailing spaces, the empty string, digits, punctuation, special-token text,
unusual whitespace and rare characters (byte fallback).

  python3 test_tokenizers.py --driver BUILD/tests/unit/tok_driver [--unit BUILD/tests/unit/test_tokenizer]
  python3 test_tokenizers.py --driver ... --bench [--bench-mb 8]

Prints one line per tokenizer and line class ("ok" / "FAIL"), then a summary.
Exit 0 when everything matched, 1 otherwise.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import sentencepiece as spm  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---------------------------------------------------------------------------------
# corpus

ACCENTED = ["café", "naïve", "über", "Straße", "façade", "élève", "mañana", "Ångström",
            "smörgåsbord", "crème", "brûlée", "déjà", "vu", "coöperate", "Øresund", "Łódź",
            "Dvořák", "São", "Paulo", "Ñandú", "Zürich", "garçon", "İstanbul", "ħaġa"]
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坐集编宝谈府拉黑且随格尽剑讲布杀微怕母调局根曾准团段终乐切级克精哪官示冷域ひらがなカタカナ한국어안녕하세요"
EMOJI = ["😀", "🎉", "👍🏽", "🇫🇷", "👨‍👩‍👧‍👦", "❤️", "🤖", "🔥", "✨", "🚀"]
PUNCT = list("!?.,;:-()[]{}\"'/\\@#$%^&*_+=<>|~`") + ["—", "…", "«", "»", "“", "”", "’", "¿", "¡"]
RARE = ["ꙮ", "𓀀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "Ⅻ", "㊙", "ᚠᚢᚦ", "ℵ", "∮", "ǅ", "ﬁ", "①②", "ｆｕｌｌ"]


def word(rng):
    cons, vows = "bcdfghjklmnprstvwz", "aeiou"
    w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.15:
        w = w.capitalize()
    return w


def sentence(rng, n=None, cjk=CJK[:120]):
    parts = []
    for _ in range(n or rng.randint(3, 16)):
        r = rng.random()
        if r < 0.55:
            parts.append(word(rng))
        elif r < 0.65:
            parts.append(rng.choice(ACCENTED))
        elif r < 0.73:
            parts.append("".join(rng.choice(cjk) for _ in range(rng.randint(1, 6))))
        elif r < 0.80:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 7))))
        elif r < 0.88:
            parts.append(word(rng) + rng.choice(PUNCT))
        elif r < 0.91:
            parts.append(rng.choice(EMOJI))
        else:
            parts.append(rng.choice(["the", "of", "and", "to", "in", "is", "it's", "we're", "I'll"]))
    return " ".join(parts)


REPEATS = ["aaaa", "mmmm", "oooo", "....", "----", "====", "!!!!", "baba", "lala", "    x", "0000", "哈哈哈哈"]


def training_corpus(seed=1, n=20000):
    rng = random.Random(seed)
    # runs of one character make equal-score / equal-rank pairs, so ties get tested
    return [sentence(rng) for _ in range(n)] + [" ".join(REPEATS[i % len(REPEATS)] * rng.randint(1, 3)
                                                          for i in range(k, k + 4)) for k in range(600)]


def test_lines():
    """(class, text) pairs."""
    rng = random.Random(7)
    L = []
    add = lambda cls, *xs: L.extend((cls, x) for x in xs)  # noqa: E731
    add("empty", "")
    add("ascii", "Hello world", "hello", "The quick brown fox jumps over the lazy dog.",
        "it's we're they've I'm you'll he'd", "a", "ab", "Hello WORLD hello World", "don't STOP")
    add("accented", "café naïve über Straße", "Élève à São Paulo, ça va?", "Dvořák Łódź Øresund",
        "e\u0301 combining acute", "Ångström ÅNGSTRÖM")
    add("cjk", "的一是不了人我在有他", "你好，世界！", "日本語のテキスト、カタカナ", "한국어 안녕하세요",
        "中文 mixed with English 和 数字 123")
    add("emoji", "😀", "I ❤️ tokenizers 🎉🎉", "👨‍👩‍👧‍👦 family", "👍🏽🇫🇷🚀", "x🤖y")
    add("whitespace", " ", "  ", "   ", "a  b   c    d", "word     word", "\u00a0nbsp\u00a0here",
        "x \u3000 ideographic", "\u2003em\u2009thin", "a\u0085nel", "\u200bzero\u200bwidth")
    add("tabs_newlines", "\t", "\n", "\r\n", "a\tb\tc", "line1\nline2\n", "\n\nparagraph\n\n\nnext",
        "mixed \t \n \r\n end", "  \n  indented\n\tcode", "trailing\n", "\r", "a\n \nb")
    add("lead_trail", " leading", "trailing ", "  both  ", "\tleading tab", "trailing tab\t", " x ")
    add("digits", "0", "42", "1234567890", "3.14159", "2024-01-31", "1,000,000", "phone 555-1234 x12",
        "١٢٣ Arabic digits", "²³ superscripts")
    add("punct", "!!!", "Hello, world!", "(a) [b] {c}", "\"quoted\" 'single'", "...", "—dash—",
        "a/b\\c", "@user #tag $5 %20 ^ & * _ + = < > | ~ `", "¿Qué? ¡Sí!", "«guillemets» “curly” ’")
    add("code", "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) { s += a[i]; }",
        "<div class=\"x\">&amp;</div>", "SELECT * FROM t WHERE id=1;")
    add("rare", "ꙮ", "𓀀 hieroglyph", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "Ⅻ ℵ ∮ ǅ ﬁ", "①② ｆｕｌｌ ｗｉｄｔｈ", "\x00nul", "\x7f\x01ctl",
        "\ufffd replacement", "\U0010ffff")
    add("special_text", "<s>", "</s>", "<unk>", "a <|endoftext|> b", "<|endoftext|>",
        "x<|begin_of_text|>y<|end_of_text|>", "<mask> and <sep> and @@", "hello <sep>  world",
        "a<sep>b", "<|endoftext|><|endoftext|>", "<|endoftext")
    add("repeats", "aaa", "aaaaa", "aaaaaaaa", "mmmmmmm", "ooooooooo", ".......", "-----", "=========",
        "!!!!!!!", "bababab", "lalalal", "000000000", "哈哈哈哈哈", "hmmm sooo", "     x", "x     ", "a  a   a")
    add("whole_words", "The quick brown fox", "quick brown", " quickly browning", "fox\nquick")
    add("random", *[sentence(rng, cjk=CJK) for _ in range(150)])
    ws = [" ", "  ", "\t", "\n", " \n ", "   ", "\u00a0"]
    add("random_ws", *[rng.choice(["", " ", "\n"]) + rng.choice(ws).join(sentence(rng).split(" ")) +
                       rng.choice(["", " ", "  ", "\n"]) for _ in range(100)])
    add("long", " ".join(sentence(rng) for _ in range(200)))
    return L


# ---------------------------------------------------------------------------------
# reference tokenizers

def train_sentencepiece(workdir, corpus):
    out = {}
    common = dict(sentence_iterator=iter(corpus), model_type="bpe", minloglevel=2,
                  num_threads=4, input_sentence_size=0)
    # LLaMA's settings: identity normalizer, dummy prefix, no whitespace collapsing,
    # byte fallback, split digits
    prefix = os.path.join(workdir, "sp_llama")
    spm.SentencePieceTrainer.train(model_prefix=prefix, vocab_size=1000, byte_fallback=True,
                                   character_coverage=0.9995, normalization_rule_name="identity",
                                   add_dummy_prefix=True, remove_extra_whitespaces=False,
                                   split_digits=True, allow_whitespace_only_pieces=True,
                                   **dict(common, sentence_iterator=iter(corpus)))
    out["sp_llama"] = prefix + ".model"
    # sentencepiece's defaults: nmt_nfkc charsmap, whitespace collapsing, no byte fallback
    # (unknown characters -> <unk>), plus user-defined symbols
    prefix = os.path.join(workdir, "sp_nfkc")
    spm.SentencePieceTrainer.train(model_prefix=prefix, vocab_size=600, character_coverage=0.995,
                                   user_defined_symbols=["<mask>", "@@", "<sep>"],
                                   **dict(common, sentence_iterator=iter(corpus)))
    out["sp_nfkc"] = prefix + ".model"
    return out


def train_hf(workdir, corpus):
    out = {}
    alphabet = pre_tokenizers.ByteLevel.alphabet()

    # GPT-2 style: ByteLevel with its own regex, no prefix space
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"], initial_alphabet=alphabet,
                             show_progress=False)
    tok.train_from_iterator(corpus, tr)
    path = os.path.join(workdir, "hf_gpt2.json")
    tok.save(path)
    out["hf_gpt2"] = path

    # LLaMA 3 style: Split(regex) + ByteLevel(use_regex=False), ignore_merges, BOS template
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                             initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(corpus, tr)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])])
    path = os.path.join(workdir, "hf_llama3.json")
    tok.save(path)
    # whole words that are in the vocab but not reachable by the merges: with
    # ignore_merges they are one token
    with open(path) as f:
        js = json.load(f)
    vocab = js["model"]["vocab"]
    for w in ["Ġquick", "Ġbrown", "fox", "quick"]:
        if w not in vocab:
            vocab[w] = max(max(vocab.values()), max(t["id"] for t in js["added_tokens"])) + 1
    with open(path, "w") as f:
        json.dump(js, f, ensure_ascii=False)
    out["hf_llama3"] = path

    # prefix space, a Digits split, and added tokens with lstrip / rstrip / single_word
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=450, special_tokens=["<|endoftext|>"], initial_alphabet=alphabet,
                             show_progress=False)
    tok.train_from_iterator(corpus, tr)
    tok.add_tokens([AddedToken("<sep>", lstrip=True, rstrip=True, special=False, normalized=False),
                    AddedToken("@@", single_word=True, special=False, normalized=True),
                    AddedToken("<mask>", special=True, normalized=False)])
    path = os.path.join(workdir, "hf_prefix.json")
    tok.save(path)
    out["hf_prefix"] = path
    return out


def ref_encode_decode(kind, path):
    if kind == "sp":
        sp = spm.SentencePieceProcessor(model_file=path)
        return (lambda s: sp.encode(s)), (lambda ids: sp.decode(ids)), sp.get_piece_size()
    tok = Tokenizer.from_file(path)
    return ((lambda s: tok.encode(s, add_special_tokens=False).ids), (lambda ids: tok.decode(ids)),
            tok.get_vocab_size(with_added_tokens=True))


# ---------------------------------------------------------------------------------
# the C side

def run_driver(driver, *args):
    r = subprocess.run([driver, *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def c_encode(driver, tok, texts, workdir, threads=4):
    inp, out = os.path.join(workdir, "in.hex"), os.path.join(workdir, "out.txt")
    with open(inp, "w") as f:
        for t in texts:
            f.write(t.encode("utf-8", "surrogatepass").hex() + "\n")
    rc, _, err = run_driver(driver, "encode", tok, inp, out, str(threads))
    if rc != 0:
        raise RuntimeError(f"tok_driver encode {tok}: exit {rc}: {err.strip()}")
    res = []
    with open(out) as f:
        for line in f:
            ids, dec = line.rstrip("\n").split("\t")
            res.append(([int(x) for x in ids.split()], None if dec == "!" else bytes.fromhex(dec)))
    return res


def c_decode(driver, tok, id_lists, workdir):
    inp, out = os.path.join(workdir, "ids.txt"), os.path.join(workdir, "dec.txt")
    with open(inp, "w") as f:
        for ids in id_lists:
            f.write(" ".join(map(str, ids)) + "\n")
    rc, _, err = run_driver(driver, "decode", tok, inp, out)
    if rc != 0:
        raise RuntimeError(f"tok_driver decode {tok}: exit {rc}: {err.strip()}")
    with open(out) as f:
        return [None if l.strip() == "!" else bytes.fromhex(l.strip()) for l in f]


def show(x, n=120):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


# ---------------------------------------------------------------------------------

def check_tokenizer(name, kind, path, driver, workdir, lines, report):
    enc, dec, vsize = ref_encode_decode(kind, path)
    rc, info, err = run_driver(driver, "info", path)
    ok_all = True
    if rc != 0:
        print(f"FAIL  {name}: tok_driver info: {err.strip()}")
        return False
    kind_c, vocab_c, bos_c, eos_c = info.split()
    if int(vocab_c) != vsize:
        print(f"FAIL  {name}: vocab size {vocab_c} != reference {vsize}")
        ok_all = False
    texts = [t for _, t in lines]
    ours = c_encode(driver, path, texts, workdir)
    by_class = {}
    expect_lines = []
    for (cls, text), (ids, dtext) in zip(lines, ours):
        ref_ids = enc(text)
        ref_dec = dec(ref_ids)
        st = by_class.setdefault(cls, [0, 0, 0, 0, []])   # n, ids equal, decode equal, roundtrip ok
        st[0] += 1
        same_ids = ids == ref_ids
        same_dec = dtext is not None and dtext == ref_dec.encode("utf-8")
        rt_ok = (ref_dec != text) or (dtext == text.encode("utf-8"))
        st[1] += same_ids
        st[2] += same_dec
        st[3] += rt_ok
        if not (same_ids and same_dec and rt_ok) and len(st[4]) < 3:
            st[4].append(f"      text={show(text)}\n      ours={show(ids)}\n      ref ={show(ref_ids)}"
                         + ("" if same_dec else f"\n      dec ours={show(dtext)} ref={show(ref_dec)}"))
        expect_lines.append(text.encode("utf-8", "surrogatepass").hex() + "\t" + " ".join(map(str, ref_ids)))
    for cls, (n, nid, ndec, nrt, ex) in by_class.items():
        good = nid == n and ndec == n and nrt == n
        ok_all &= good
        print(f"{'ok  ' if good else 'FAIL'}  {name:10s} {cls:14s} ids {nid}/{n}  decode {ndec}/{n}  roundtrip {nrt}/{n}")
        for e in ex:
            print(e)
        report.setdefault(name, {})[cls] = (n, nid, ndec, nrt)

    if kind == "sp":
        # raw bytes, invalid UTF-8 included: sentencepiece takes bytes too
        sp = spm.SentencePieceProcessor(model_file=path)
        rng = random.Random(5)
        alphabet = b"ab \t\n\xc3\xa9\xe2\x96\x81\xf0\x9f\x98\x80\xff\x80<>"
        blobs = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))) for _ in range(200)]
        blobs += [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(200)]
        inp, out = os.path.join(workdir, "bytes.hex"), os.path.join(workdir, "bytes.out")
        with open(inp, "w") as f:
            f.write("".join(b.hex() + "\n" for b in blobs))
        rc, _, err = run_driver(driver, "encode", path, inp, out, "1")
        with open(out) as f:
            got = [[int(x) for x in l.split("\t")[0].split()] for l in f] if rc == 0 else []
        same = sum(g == sp.encode(b) for g, b in zip(got, blobs))
        good = same == len(blobs)
        ok_all &= good
        print(f"{'ok  ' if good else 'FAIL'}  {name:10s} {'invalid_utf8':14s} ids {same}/{len(blobs)} (raw bytes)")

    # decoding of arbitrary id sequences (byte pieces in any order, control tokens, ...)
    rng = random.Random(3)
    id_lists = [[rng.randrange(vsize) for _ in range(rng.randint(0, 12))] for _ in range(300)]
    id_lists += [[i] for i in range(vsize)]
    ours_dec = c_decode(driver, path, id_lists, workdir)
    bad = 0
    for ids, d in zip(id_lists, ours_dec):
        ref = dec(ids).encode("utf-8")
        if d != ref:
            bad += 1
            if bad <= 3:
                print(f"      decode {ids}: ours={show(d)} ref={show(ref)}")
    good = bad == 0
    ok_all &= good
    print(f"{'ok  ' if good else 'FAIL'}  {name:10s} {'decode_random':14s} {len(id_lists) - bad}/{len(id_lists)}")
    if vsize > 0:
        bad_id = c_decode(driver, path, [[vsize], [-1]], workdir)
        good = bad_id == [None, None]
        ok_all &= good
        print(f"{'ok  ' if good else 'FAIL'}  {name:10s} {'decode_bad_id':14s} out-of-range ids rejected")
    with open(path + ".expect", "w") as f:
        f.write("\n".join(expect_lines) + "\n")
    print(f"      {name}: kind={kind_c} vocab={vocab_c} bos={bos_c} eos={eos_c}")
    return ok_all


def bench(driver, sp_paths, hf_paths, workdir, mb):
    rng = random.Random(11)
    lines, size = [], 0
    while size < mb * 1e6:
        s = sentence(rng, rng.randint(20, 60))
        lines.append(s)
        size += len(s.encode()) + 1
    text_path = os.path.join(workdir, "bench.txt")
    with open(text_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    nbytes = os.path.getsize(text_path)
    print(f"\nbenchmark: {nbytes / 1e6:.1f} MB, {len(lines)} lines, one core, best of 3")
    print(f"{'tokenizer':14s} {'C MB/s':>8s} {'py loop MB/s':>13s} {'py batch MB/s':>14s} {'tokens':>10s}")
    for name, kind, path in [(n, "sp", p) for n, p in sp_paths.items()] + [(n, "hf", p) for n, p in hf_paths.items()]:
        rc, out, err = run_driver(driver, "bench", path, text_path, "3")
        if rc != 0:
            print(f"{name}: bench failed: {err}")
            continue
        _, ntok, _, c_mbs = out.split()
        if kind == "sp":
            sp = spm.SentencePieceProcessor(model_file=path, num_threads=1)
            loop = lambda: [sp.encode(s) for s in lines]  # noqa: E731
            batch = lambda: sp.encode(lines, num_threads=1)  # noqa: E731
        else:
            tok = Tokenizer.from_file(path)
            loop = lambda: [tok.encode(s, add_special_tokens=False) for s in lines]  # noqa: E731
            batch = lambda: tok.encode_batch(lines, add_special_tokens=False)  # noqa: E731
        res = []
        for fn in (loop, batch):
            best = 1e30
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            res.append(nbytes / best / 1e6)
        print(f"{name:14s} {float(c_mbs):8.2f} {res[0]:13.2f} {res[1]:14.2f} {ntok:>10s}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True, help="tests/unit/tok_driver")
    ap.add_argument("--unit", help="tests/unit/test_tokenizer, run with BPT_TOK_SP/BPT_TOK_JSON set")
    ap.add_argument("--workdir", help="keep the trained tokenizers here")
    ap.add_argument("--bench", action="store_true", help="also measure encoding speed")
    ap.add_argument("--bench-mb", type=float, default=8.0)
    ap.add_argument("--bench-vocab", type=int, default=8000, help="vocab of the benchmark tokenizers")
    args = ap.parse_args()

    tmp = None
    if args.workdir:
        workdir = args.workdir
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bpt_tok_")
        workdir = tmp.name

    corpus = training_corpus()
    sp_paths = train_sentencepiece(workdir, corpus)
    hf_paths = train_hf(workdir, corpus)
    lines = test_lines()

    ok = True
    report = {}
    for name, path in sp_paths.items():
        ok &= check_tokenizer(name, "sp", path, args.driver, workdir, lines, report)
    for name, path in hf_paths.items():
        ok &= check_tokenizer(name, "hf", path, args.driver, workdir, lines, report)

    if args.unit:
        env = dict(os.environ, BPT_TOK_SP=sp_paths["sp_llama"], BPT_TOK_JSON=hf_paths["hf_llama3"])
        r = subprocess.run([args.unit], env=env, capture_output=True, text=True)
        print(r.stdout, end="")
        if r.returncode != 0:
            print(f"FAIL  {args.unit} with BPT_TOK_SP/BPT_TOK_JSON: exit {r.returncode} {r.stderr}")
            ok = False
        else:
            print(f"ok    {os.path.basename(args.unit)} with BPT_TOK_SP/BPT_TOK_JSON")

    if args.bench:
        # bigger vocabularies for a more realistic speed
        big = training_corpus(seed=5, n=60000)
        bdir = os.path.join(workdir, "bench")
        os.makedirs(bdir, exist_ok=True)
        prefix = os.path.join(bdir, "sp_llama_big")
        spm.SentencePieceTrainer.train(sentence_iterator=iter(big), model_prefix=prefix, model_type="bpe",
                                       vocab_size=args.bench_vocab, byte_fallback=True, minloglevel=2,
                                       character_coverage=0.9995, normalization_rule_name="identity",
                                       remove_extra_whitespaces=False, split_digits=True, num_threads=8)
        tok = Tokenizer(models.BPE(ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(big, trainers.BpeTrainer(vocab_size=args.bench_vocab, show_progress=False,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        hpath = os.path.join(bdir, "hf_llama3_big.json")
        tok.save(hpath)
        bench(args.driver, {"sp_llama_big": prefix + ".model"}, {"hf_llama3_big": hpath}, workdir, args.bench_mb)

    total = sum(v[0] for r in report.values() for v in r.values())
    exact = sum(v[1] for r in report.values() for v in r.values())
    print(f"\nids equal on {exact}/{total} (tokenizer, line) pairs; {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
