/* prepare.c — bpt data synth | prepare | inspect.
 *
 * prepare: JSONL files -> one HDF5 token file, in parallel over the MPI ranks. Rank r
 * takes the r-th of P equal byte ranges of the inputs' concatenation (moved to line
 * starts), runs the text processor (data.h) on its lines, and all ranks write their tokens into one
 * collective /tokens dataset at offsets from an exclusive prefix sum, so the file is
 * the same whatever P is: documents in input order.
 *
 *   /tokens        uint16 when the vocabulary fits, else uint32
 *   /loss_mask     uint8, only when some tokens have mask 0 ([field] items, BOS)
 *   /doc_offsets   uint64: index of each document's first token
 *   attributes     tokenizer, tokenizer_kind, tokenizer_fnv1a64 (checksum of the
 *                  tokenizer file), vocab_size, num_tokens, num_documents,
 *                  malformed_lines, sources, fields
 */
#include "bpt/bpt.h"
#include "bpt/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct prep_args {
    char inputs[4096], tokenizer[BPT_STR], output[BPT_STR];
    bpt_dataset_config d;
    long long ntokens, seed;          /* synth */
} prep_args;

static int usage(const char *sub) {
    fprintf(stderr, "bpt: usage: bpt data prepare --input A.jsonl[,B.jsonl] [--tokenizer FILE] [--fields text] "
            "[--fields_from_example KEY] [--add_bos_token] [--add_eos_token] [--prepend_text S] [--subfield_separator S] --output FILE\n"
            "       bpt data inspect FILE\n"
            "       bpt data synth --output FILE [--tokens N] [--seed S]%s%s\n", sub ? "\n  (got: " : "", sub ? sub : "");
    return 2;
}

/* --key value or --key=value; booleans may stand alone. */
static int parse_args(int argc, char **argv, prep_args *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->d.fields, sizeof a->d.fields, "text");
    snprintf(a->d.subfield_separator, sizeof a->d.subfield_separator, " ");
    a->ntokens = 1000000;
    a->seed = 1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        char key[64];
        snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        int is_bool = !strcmp(key, "--add_bos_token") || !strcmp(key, "--add_eos_token");
        const char *v = eq ? eq + 1 : (!is_bool && i + 1 < argc) ? argv[++i] : is_bool ? "true" : NULL;
        if (!v) return bpt_error(-1, "%s needs a value", key);
        char *end = NULL;
        if (!strcmp(key, "--input")) snprintf(a->inputs, sizeof a->inputs, "%s", v);
        else if (!strcmp(key, "--tokenizer")) snprintf(a->tokenizer, sizeof a->tokenizer, "%s", v);
        else if (!strcmp(key, "--output")) snprintf(a->output, sizeof a->output, "%s", v);
        else if (!strcmp(key, "--fields")) snprintf(a->d.fields, sizeof a->d.fields, "%s", v);
        else if (!strcmp(key, "--prepend_text")) snprintf(a->d.prepend_text, sizeof a->d.prepend_text, "%s", v);
        else if (!strcmp(key, "--fields_from_example")) snprintf(a->d.fields_from_example, sizeof a->d.fields_from_example, "%s", v);
        else if (!strcmp(key, "--subfield_separator")) snprintf(a->d.subfield_separator, sizeof a->d.subfield_separator, "%s", v);
        else if (!strcmp(key, "--add_bos_token")) a->d.add_bos_token = !strcasecmp(v, "true") || !strcmp(v, "1");
        else if (!strcmp(key, "--add_eos_token")) a->d.add_eos_token = !strcasecmp(v, "true") || !strcmp(v, "1");
        else if (!strcmp(key, "--tokens")) a->ntokens = strtoll(v, &end, 10);
        else if (!strcmp(key, "--seed")) a->seed = strtoll(v, &end, 10);
        else return bpt_error(-1, "unknown option '%s' for bpt data", key);
        if (end && (*end || a->ntokens < 2))
            return bpt_error(-1, "bad value for %s: '%s' (expected an integer >= 2)", key, v);
    }
    return 0;
}

/* FNV-1a 64 of a file's bytes, as 16 hex digits ("" if unreadable). */
static void file_fnv(const char *path, char out[17]) {
    out[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    uint64_t h = 1469598103934665603ull;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) { h ^= buf[i]; h *= 1099511628211ull; }
    fclose(f);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* One collective 1-D write: this rank's n elements at offset off of a total-length dataset. */
static int write_1d(hid_t f, const char *name, hid_t ftype, hid_t mtype, uint64_t total, uint64_t off,
                    uint64_t n, const void *buf, hid_t dxpl) {
    hsize_t dims = total ? total : 1, o = off, c = n, one = 1;
    hid_t sp = H5Screate_simple(1, &dims, NULL);
    hid_t ds = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ms = H5Screate_simple(1, n ? &c : &one, NULL);
    if (n) H5Sselect_hyperslab(sp, H5S_SELECT_SET, &o, NULL, &c, NULL);
    else { H5Sselect_none(sp); H5Sselect_none(ms); }
    int rc = ds >= 0 && H5Dwrite(ds, mtype, ms, sp, dxpl, buf) >= 0 ? 0 : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(ms); H5Sclose(sp);
    return rc;
}

/* Byte bounds [lo, hi) inside a file of size S, moved to line starts: a line belongs
 * to the range that holds its first byte. */
static void align_range(FILE *f, uint64_t S, uint64_t lo0, uint64_t hi0, uint64_t *lo, uint64_t *hi) {
    uint64_t b[2] = {lo0, hi0};
    for (int k = 0; k < 2; k++) {
        if (b[k] == 0 || b[k] >= S) continue;
        /* move to the start of the next line unless b is at a line start already */
        fseeko(f, (off_t)(b[k] - 1), SEEK_SET);
        int ch;
        uint64_t pos = b[k] - 1;
        while ((ch = fgetc(f)) != EOF && ch != '\n') pos++;
        b[k] = ch == EOF ? S : pos + 1;
    }
    *lo = b[0];
    *hi = b[1] < b[0] ? b[0] : b[1];
}

/* The number of '\n' in the first n bytes of path (a line number, on the error path). */
static uint64_t count_newlines(const char *path, uint64_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t k = 0;
    char buf[1 << 16];
    while (n > 0) {
        size_t want = n < sizeof buf ? (size_t)n : sizeof buf, got = fread(buf, 1, want, f);
        if (got == 0) break;
        for (size_t i = 0; i < got; i++) k += buf[i] == '\n';
        n -= got;
    }
    fclose(f);
    return k;
}

static int prepare(prep_args *a, int rank, int P) {
    char err[1024];
    int bad = 0;
    if (!a->inputs[0] || !a->output[0]) return usage("prepare needs --input and --output");
    /* every rank reads the tokenizer and the inputs: what one cannot read stops them all */
    bpt_tokenizer *tk = bpt_tokenizer_open(a->tokenizer, err, sizeof err);
    bpt_agree_or_exit(!tk, err);
    int V = bpt_tokenizer_vocab_size(tk);
    /* BOS/EOS: the tokenizer's, else the llama config's defaults (0 and 1) */
    bpt_text_processor *tp = bpt_text_processor_new(&a->d, tk, 0, 1, V, err, sizeof err);
    if (!tp && strstr(err, "_token_id"))
        snprintf(err + strlen(err), sizeof err - strlen(err), " (HINT: --add_bos_token/--add_eos_token need a "
                 "tokenizer with BOS/EOS)");
    bpt_agree_or_exit(!tp, err);

    /* the inputs: all must exist before any work */
    char list[4096], *names[64];
    int ninputs = 0;
    snprintf(list, sizeof list, "%s", a->inputs);
    for (char *sv = NULL, *t = strtok_r(list, ",", &sv); t && ninputs < 64; t = strtok_r(NULL, ",", &sv)) names[ninputs++] = t;
    uint64_t total_bytes = 0;
    for (int i = 0; i < ninputs && !bad; i++) {
        struct stat st;
        FILE *f = fopen(names[i], "rb");
        if (!f || fstat(fileno(f), &st) != 0)
            bad = bpt_err(err, sizeof err, "--input: %s: %s%s", names[i], strerror(errno),
                          rank ? " (on a rank other than 0: is it on a file system every node shares?)" : "");
        else if (S_ISDIR(st.st_mode))
            bad = bpt_err(err, sizeof err, "--input: %s: is a directory, expected a JSONL or text file", names[i]);
        else
            total_bytes += (uint64_t)st.st_size;
        if (f) fclose(f);
    }
    bpt_agree_or_exit(bad != 0, err);

    bpt_tokens out = {0};
    uint64_t *docs = NULL, ndocs = 0, capdocs = 0, malformed = 0, blank = 0, done_bytes = 0;
    /* this rank's first malformed line: its byte offset in the inputs' concatenation */
    uint64_t bad_at = UINT64_MAX, bad_off = 0;
    int bad_file = -1;
    char bad_why[200] = "";
    double t0 = bpt_now(), last = 0;
    int tty = rank == 0 && isatty(STDERR_FILENO);
    char *line = NULL;
    size_t linecap = 0;
    uint64_t g0 = total_bytes * (uint64_t)rank / (uint64_t)P, g1 = total_bytes * (uint64_t)(rank + 1) / (uint64_t)P;
    uint64_t base = 0;   /* offset of file i in the concatenation */
    for (int i = 0; i < ninputs; i++) {
        FILE *f = fopen(names[i], "rb");
        if (!f) {   /* it was there a moment ago: said once every rank is past its reading */
            bad = bpt_err(err, sizeof err, "--input: %s: %s", names[i], strerror(errno));
            break;
        }
        struct stat st;
        fstat(fileno(f), &st);
        uint64_t S = (uint64_t)st.st_size, lo, hi;
        uint64_t a0 = g0 > base ? g0 - base : 0, a1 = g1 > base ? g1 - base : 0;
        base += S;
        if (a0 > S) a0 = S;
        if (a1 > S) a1 = S;
        align_range(f, S, a0, a1, &lo, &hi);
        fseeko(f, (off_t)lo, SEEK_SET);
        uint64_t pos = lo;
        while (pos < hi) {
            ssize_t n = getline(&line, &linecap, f);
            if (n <= 0) break;
            uint64_t start = pos;
            pos += (uint64_t)n;
            done_bytes += (uint64_t)n;
            size_t len = (size_t)n;
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
            size_t k = 0;
            while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
            if (k == len) { blank++; continue; }
            size_t n0 = out.n;
            if (bpt_text_processor_line(tp, line, len, &out) != 0) {
                if (malformed++ == 0) {
                    bad_at = base - S + start;
                    bad_file = i;
                    bad_off = start;
                    snprintf(bad_why, sizeof bad_why, "%s", bpt_text_processor_why(tp));
                }
                continue;
            }
            /* every well-formed line is a document, also one with no tokens (an
             * empty text): /doc_offsets has one entry per such line */
            if (ndocs == capdocs) {
                capdocs = capdocs ? 2 * capdocs : 1024;
                docs = bpt_xrealloc(docs, capdocs * sizeof *docs);
            }
            docs[ndocs++] = n0;
            if (tty && bpt_now() - last > 0.2) {
                last = bpt_now();
                double frac = (double)done_bytes * P / (double)(total_bytes ? total_bytes : 1);
                if (frac > 1) frac = 1;
                int w = 30, fill = (int)(frac * w);
                fprintf(stderr, "\r[%.*s%*s] %5.1f%% %.1f MB/s", fill, "##############################", w - fill, "",
                        100 * frac, done_bytes * P / 1e6 / (last - t0 + 1e-9));
            }
        }
        if (ferror(f)) bad = bpt_err(err, sizeof err, "--input: %s: cannot read: %s", names[i], strerror(errno));
        fclose(f);
        if (bad) break;
    }
    free(line);
    if (tty) fputs("\r\033[K", stderr);
    bpt_agree_or_exit(bad != 0, err);

    /* offsets of this rank's tokens and documents */
    uint64_t mine[3] = {out.n, ndocs, 0}, off[3] = {0, 0, 0}, tot[3];
    for (size_t k = 0; k < out.n; k++) if (!out.mask[k]) { mine[2] = 1; break; }
    MPI_Exscan(mine, off, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) off[0] = off[1] = 0;
    MPI_Allreduce(mine, tot, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&mine[2], &tot[2], 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    uint64_t cnt[2] = {malformed, blank}, gcnt[2];
    MPI_Allreduce(cnt, gcnt, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    uint64_t mal = gcnt[0];
    /* the first malformed line of all: its rank finds its line number and tells everyone */
    char first_bad[400] = "";
    if (mal) {
        uint64_t at = UINT64_MAX;
        MPI_Allreduce(&bad_at, &at, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
        int mine_is = bad_at == at ? rank : P, owner = P;
        MPI_Allreduce(&mine_is, &owner, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (rank == owner) {
            uint64_t lineno = 1 + count_newlines(names[bad_file], bad_off);
            if (ninputs > 1) snprintf(first_bad, sizeof first_bad, "%s line %llu: %s", names[bad_file],
                                      (unsigned long long)lineno, bad_why);
            else snprintf(first_bad, sizeof first_bad, "line %llu: %s", (unsigned long long)lineno, bad_why);
        }
        MPI_Bcast(first_bad, sizeof first_bad, MPI_CHAR, owner, MPI_COMM_WORLD);
    }
    if (tot[1] == 0 && mal > 0) {
        char all[64];
        if (mal == 1) snprintf(all, sizeof all, "its one %sline is", gcnt[1] ? "non-blank " : "");
        else snprintf(all, sizeof all, "all %llu %slines are", (unsigned long long)mal, gcnt[1] ? "non-blank " : "");
        bpt_die("%s: 0 tokens: %s malformed (first at %s)", a->inputs, all, first_bad);
    }
    if (tot[0] < 2) {
        char skipped[512] = "";
        if (mal) snprintf(skipped, sizeof skipped, " (%llu malformed line%s skipped, first at %s)",
                          (unsigned long long)mal, mal == 1 ? "" : "s", first_bad);
        bpt_die("%s: the inputs produced %llu token%s from %llu document%s; at least 2 are needed%s", a->inputs,
                (unsigned long long)tot[0], tot[0] == 1 ? "" : "s", (unsigned long long)tot[1],
                tot[1] == 1 ? "" : "s", skipped);
    }
    for (uint64_t k = 0; k < ndocs; k++) docs[k] += off[0];

    /* one file, every rank its slice, collectively; then rank 0 renames it into place */
    char tmp[BPT_STR + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", a->output);
    int narrow = V <= 65536;
    /* at most: the tokens, the mask, the offsets, and 1 MiB of HDF5 metadata */
    double need = (double)tot[0] * (narrow ? 2 : 4) + (tot[2] ? (double)tot[0] : 0) + 8.0 * (double)tot[1] + (1 << 20);
    hid_t f = bpt_h5_create_written(tmp, need, 1, err, sizeof err);
    if (f < 0) bpt_die("--output: %s", err);   /* agreed */
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    void *tokbuf = out.tok;
    uint16_t *t16 = NULL;
    if (narrow) {
        t16 = bpt_xmalloc((out.n ? out.n : 1) * sizeof *t16);
        for (size_t k = 0; k < out.n; k++) t16[k] = (uint16_t)out.tok[k];
        tokbuf = t16;
    }
    bad |= write_1d(f, "tokens", narrow ? H5T_STD_U16LE : H5T_STD_U32LE, narrow ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT32,
                    tot[0], off[0], out.n, tokbuf, dxpl);
    if (tot[2]) bad |= write_1d(f, "loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, tot[0], off[0], out.n, out.mask, dxpl);
    bad |= write_1d(f, "doc_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, tot[1], off[1], ndocs, docs, dxpl);
    char sum[17];
    file_fnv(a->tokenizer, sum);
    bpt_h5_attr_str(f, "tokenizer", a->tokenizer[0] ? a->tokenizer : "bytes");
    bpt_h5_attr_str(f, "tokenizer_kind", bpt_tokenizer_kind(tk));
    bpt_h5_attr_str(f, "tokenizer_fnv1a64", sum);
    bpt_h5_attr_str(f, "sources", a->inputs);
    char fattr[2 * BPT_STR];
    snprintf(fattr, sizeof fattr, a->d.fields_from_example[0] ? "from_example:%s" : "%s",
             a->d.fields_from_example[0] ? a->d.fields_from_example : a->d.fields);
    bpt_h5_attr_str(f, "fields", fattr);
    uint64_t vocab = (uint64_t)V;
    bpt_h5_attr_num(f, "vocab_size", H5T_STD_U64LE, H5T_NATIVE_UINT64, &vocab);
    bpt_h5_attr_num(f, "num_tokens", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tot[0]);
    bpt_h5_attr_num(f, "num_documents", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tot[1]);
    bpt_h5_attr_num(f, "malformed_lines", H5T_STD_U64LE, H5T_NATIVE_UINT64, &mal);
    H5Pclose(dxpl);
    char why[256];
    if (bpt_h5_close_written(f, tmp, 1, !bad, why, sizeof why) != 0) {
        if (rank == 0) unlink(tmp);
        bpt_die("--output: cannot write %s: %s", tmp, why);   /* agreed */
    }
    bad = rank == 0 && rename(tmp, a->output) != 0;
    if (bad) bpt_err(err, sizeof err, "--output: cannot rename %s to %s: %s", tmp, a->output, strerror(errno));
    bpt_agree_or_exit(bad, err);
    double dt = bpt_now() - t0;
    if (rank == 0) {
        printf("wrote %s: %llu tokens (%s), %llu documents from %.1f MB in %.1f s (%.1f MB/s on %d rank%s)%s\n",
               a->output, (unsigned long long)tot[0], narrow ? "uint16" : "uint32", (unsigned long long)tot[1],
               total_bytes / 1e6, dt, total_bytes / 1e6 / dt, P, P > 1 ? "s" : "", tot[2] ? ", with /loss_mask" : "");
        if (mal) printf("skipped %llu malformed line%s (first at %s)\n", (unsigned long long)mal, mal > 1 ? "s" : "",
                        first_bad);
    }
    free(t16);
    free(docs);
    bpt_tokens_free(&out);
    bpt_text_processor_free(tp);
    bpt_tokenizer_free(tk);
    return 0;
}

static int inspect(const char *path) {
    char err[1024];
    hid_t f = bpt_h5_open_read(path, err, sizeof err);
    if (f < 0) return bpt_error(1, "%s", err);
    int64_t nt = 0;
    hid_t ds = bpt_h5_open_int_1d(f, path, "tokens", "integer token ids (uint16, uint32, int32 or int64)", &nt, err, sizeof err);
    if (ds < 0) { H5Fclose(f); return bpt_error(1, "%s", err); }
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    hsize_t n = (hsize_t)nt;
    printf("file        %s\ntokens      %llu (%s%zu)\n", path, (unsigned long long)n,
           H5Tget_sign(ty) == H5T_SGN_NONE ? "uint" : "int", 8 * H5Tget_size(ty));
    hsize_t k = n < 16 ? n : 16, z = 0;
    uint32_t first[16];
    hid_t ms = H5Screate_simple(1, &k, NULL);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, &z, NULL, &k, NULL);
    if (k && H5Dread(ds, H5T_NATIVE_UINT32, ms, sp, H5P_DEFAULT, first) >= 0) {
        printf("first ids  ");
        for (hsize_t i = 0; i < k; i++) printf(" %u", first[i]);
        printf("\n");
    }
    H5Sclose(ms); H5Tclose(ty); H5Sclose(sp); H5Dclose(ds);
    if (H5Lexists(f, "doc_offsets", H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, "doc_offsets", H5P_DEFAULT), s = H5Dget_space(d);
        hsize_t m = 0;
        H5Sget_simple_extent_dims(s, &m, NULL);
        printf("documents   %llu (mean %.1f tokens)\n", (unsigned long long)m, m ? (double)n / m : 0.0);
        H5Sclose(s); H5Dclose(d);
    }
    printf("loss_mask   %s\n", H5Lexists(f, "loss_mask", H5P_DEFAULT) > 0 ? "yes" : "no (every target counts)");
    const char *attrs[] = {"tokenizer", "tokenizer_kind", "tokenizer_fnv1a64", "vocab_size", "malformed_lines", "sources", "fields", "source", "seed"};
    static char sv[1 << 16];
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        long long v = 0;
        if (bpt_h5_read_attr_str(f, attrs[i], sv, sizeof sv) == 0) printf("%-11s %s\n", attrs[i], sv);
        else if (bpt_h5_read_attr_num(f, attrs[i], H5T_NATIVE_LLONG, &v) == 0) printf("%-11s %lld\n", attrs[i], v);
    }
    H5Fclose(f);
    return 0;
}

int bpt_data_main(int argc, char **argv) {
    int rank = 0, P = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    if (argc < 1) return usage(NULL);
    prep_args a;
    if (!strcmp(argv[0], "inspect")) {
        if (argc != 2) return usage("inspect needs one FILE");
        return rank == 0 ? inspect(argv[1]) : 0;
    }
    if (strcmp(argv[0], "prepare") && strcmp(argv[0], "synth")) return usage(argv[0]);
    if (parse_args(argc - 1, argv + 1, &a) != 0) return 2;
    if (!strcmp(argv[0], "prepare")) return prepare(&a, rank, P);
    if (!a.output[0]) return usage("synth needs --output FILE");
    char err[1024];
    if (rank == 0) {
        if (bpt_data_write_synthetic(a.output, (uint64_t)a.ntokens, (uint64_t)a.seed, err, sizeof err) != 0)
            return bpt_error(1, "%s", err);
        printf("wrote %lld byte tokens to %s\n", a.ntokens, a.output);
    }
    return 0;
}
