/* ckpt_import.c — bpt ckpt import DIR --output FILE (docs/checkpoint-tools.md): a
 * Hugging Face LlamaForCausalLM directory (config.json, src/hf_config.c; and
 * model.safetensors or the files model.safetensors.index.json names) checked against
 * the tensors of its llama config (include/bpt/llama.h) and written as a format-version-1
 * checkpoint, fp32, through FILE.tmp; on stdout the llama section to run it with.
 */
#include "ckpt_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "bpt/ckpt.h"
#include "bpt/h5util.h"
#include "bpt/safetensors.h"
#include "bpt/util.h"

#ifndef PACKAGE_VERSION                         /* configure's DEFS define it */
#define PACKAGE_VERSION "unknown"
#endif

#define CHUNK_ELEMS ((hsize_t)1 << 20)          /* about 4 MiB of fp32 per chunk */

/* ------------------------------------------------------------------------- */
/* the safetensors files of the directory                                    */

typedef struct st_set {
    int nfiles;
    bpt_safetensors_file *files;
} st_set;

static void st_free(st_set *s) {
    for (int i = 0; i < s->nfiles; i++) bpt_safetensors_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

/* The tensor called name, its file in *file; NULL when no file has it. */
static const bpt_safetensors_tensor *st_find(const st_set *s, const char *name, int *file) {
    for (int f = 0; f < s->nfiles; f++) {
        int k = bpt_safetensors_find(&s->files[f].h, name);
        if (k >= 0) {
            *file = f;
            return &s->files[f].h.t[k];
        }
    }
    return NULL;
}

/* Open one safetensors file, parse and validate its header, add its tensors. */
static int st_add_file(st_set *s, const char *path) {
    char err[4096];
    bpt_safetensors_file f;
    if (bpt_safetensors_open(path, &f, err, sizeof err) != 0) return bpt_error(-1, "%s", err);
    int rc = 0, fi;
    for (int k = 0; k < f.h.n && rc == 0; k++)
        if (st_find(s, f.h.t[k].name, &fi))
            rc = bpt_error(-1, "%s: tensor %s appears in more than one file", path, f.h.t[k].name);
    s->files = bpt_xrealloc(s->files, (size_t)(s->nfiles + 1) * sizeof *s->files);
    s->files[s->nfiles++] = f;
    return rc;
}

/* DIR/model.safetensors, or the files named by DIR/model.safetensors.index.json. */
static int st_open_dir(const char *dir, st_set *s) {
    memset(s, 0, sizeof *s);
    char *single = ckpt_path_join(dir, "model.safetensors");
    char *index = ckpt_path_join(dir, "model.safetensors.index.json");
    int rc = 0;
    if (ckpt_file_exists(single)) {
        rc = st_add_file(s, single);
    } else if (ckpt_file_exists(index)) {
        json_error_t jerr;
        json_t *o = json_load_file(index, 0, &jerr);
        json_t *map = o ? json_object_get(o, "weight_map") : NULL;
        if (!o) rc = bpt_error(-1, "%s: bad JSON: %s (line %d)", index, jerr.text, jerr.line);
        else if (!json_is_object(map)) rc = bpt_error(-1, "%s: has no weight_map object", index);
        /* each file once, in the order of first mention */
        const char *name;
        json_t *v;
        char **seen = NULL;
        int nseen = 0;
        if (rc == 0) {
            json_object_foreach(map, name, v) {
                const char *f = json_string_value(v);
                if (!f || strchr(f, '/')) { rc = bpt_error(-1, "%s: weight_map entry %s is not a file name", index, name); break; }
                int known = 0;
                for (int i = 0; i < nseen; i++) known |= !strcmp(seen[i], f);
                if (known) continue;
                seen = realloc(seen, (size_t)(nseen + 1) * sizeof *seen);
                BPT_CHECK(seen, "out of memory");
                seen[nseen++] = (char *)f;
            }
        }
        for (int i = 0; i < nseen && rc == 0; i++) {
            char *p = ckpt_path_join(dir, seen[i]);
            if (!ckpt_file_exists(p)) rc = bpt_error(-1, "%s: no such file (named in %s)", p, index);
            else rc = st_add_file(s, p);
            free(p);
        }
        /* every weight_map entry is in the file it names */
        if (rc == 0) {
            json_object_foreach(map, name, v) {
                int fi;
                const char *f = json_string_value(v);
                const char *have = st_find(s, name, &fi) ? strrchr(s->files[fi].path, '/') + 1 : NULL;
                if (!have || strcmp(have, f) != 0) {
                    rc = bpt_error(-1, "%s: tensor %s is not in %s as its weight_map says", index, name, f);
                    break;
                }
            }
        }
        free(seen);
        json_decref(o);
    } else {
        rc = bpt_error(-1, "%s: no model.safetensors or model.safetensors.index.json (a Hugging Face "
                        "checkpoint saved with safe_serialization=True?)", dir);
    }
    free(single);
    free(index);
    return rc;
}


/* ------------------------------------------------------------------------- */
/* import: writing the checkpoint                                            */

static int write_tensor_f32(hid_t g, const bpt_llama_tensor *s, const float *x) {
    hsize_t dims[2] = { (hsize_t)s->shape[0], (hsize_t)s->shape[1] };
    hid_t space = H5Screate_simple(s->ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (ckpt_shape_numel(s->ndim, s->shape) > 0) {
        hsize_t chunk[2];
        if (s->ndim == 1) {
            chunk[0] = dims[0] < CHUNK_ELEMS ? dims[0] : CHUNK_ELEMS;
        } else {
            hsize_t rows = CHUNK_ELEMS / dims[1];        /* whole rows, ~1M elements */
            if (rows < 1) rows = 1;
            chunk[0] = rows < dims[0] ? rows : dims[0];
            chunk[1] = dims[1];
        }
        H5Pset_chunk(dcpl, s->ndim, chunk);
        H5Pset_fletcher32(dcpl);
    }
    hid_t ds = H5Dcreate2(g, s->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0 ? 0 : -1;
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc;
}

/* Every expected tensor is in s with its shape; every other tensor of s is one we may
 * ignore. */
static int check_import_tensors(const char *dir, const st_set *s, const bpt_llama_tensor *specs, int nspecs,
                                int tied) {
    for (int i = 0; i < nspecs; i++) {
        int fi;
        const bpt_safetensors_tensor *t = st_find(s, specs[i].name, &fi);
        if (!t) return bpt_error(-1, "%s: missing tensor %s", dir, specs[i].name);
        int same = t->ndim == specs[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == specs[i].shape[d];
        if (!same) {
            char have[128], want[128];
            ckpt_fmt_shape(have, sizeof have, t->ndim, t->shape);
            ckpt_fmt_shape(want, sizeof want, specs[i].ndim, specs[i].shape);
            return bpt_error(-1, "%s: tensor %s has shape %s, config.json expects %s", s->files[fi].path,
                              specs[i].name, have, want);
        }
    }
    for (int f = 0; f < s->nfiles; f++)
        for (int k = 0; k < s->files[f].h.n; k++) {
            const char *name = s->files[f].h.t[k].name;
            size_t len = strlen(name);
            const char *inv = ".rotary_emb.inv_freq";
            if (ckpt_find_tensor(specs, nspecs, name) >= 0) continue;
            if (len >= strlen(inv) && !strcmp(name + len - strlen(inv), inv)) continue;
            if (tied && !strcmp(name, "lm_head.weight")) continue;
            return bpt_error(-1, "%s: unexpected tensor %s (not part of a LlamaForCausalLM with this config.json)",
                              s->files[f].path, name);
        }
    return 0;
}

static int write_checkpoint(const char *out, const st_set *s, const bpt_llama_tensor *specs, int nspecs,
                            const char *yaml) {
    char *tmp = ckpt_path_suffix(out, ".tmp");
    /* at most: the tensors in fp32, 4 KiB of headers each, 1 MiB of metadata */
    double need = (double)(1 << 20) + 2.0 * strlen(yaml);
    for (int i = 0; i < nspecs; i++) need += 4.0 * (double)ckpt_shape_numel(specs[i].ndim, specs[i].shape) + 4096;
    char err[1024];
    hid_t file = bpt_h5_create_written(tmp, need, 0, err, sizeof err);
    if (file < 0) {
        bpt_error(-1, "%s", err);
        free(tmp);
        return -1;
    }
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int version = BPT_CKPT_FORMAT_VERSION;
    int64_t step = 0;
    uint64_t tokens = 0;
    int rc = 0;
    rc |= bpt_h5_attr_str(file, "format", BPT_CKPT_FORMAT);
    rc |= bpt_h5_attr_num(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version);
    rc |= bpt_h5_attr_num(file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &step);
    rc |= bpt_h5_attr_num(file, "tokens_consumed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tokens);
    rc |= bpt_h5_attr_str(file, "config", yaml);
    rc |= bpt_h5_attr_str(file, "bpt_version", PACKAGE_VERSION);
    rc |= bpt_h5_attr_str(file, "created", created);
    rc |= bpt_h5_attr_str(file, "mesh", "1,1,1");
    rc |= bpt_h5_attr_str(file, "float_dtype", "fp32");
    hid_t g = rc == 0 ? H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (g < 0) rc = -1;
    const char *failed = rc ? "the root attributes" : NULL;

    size_t maxn = 1;
    for (int i = 0; i < nspecs; i++)
        if (ckpt_shape_numel(specs[i].ndim, specs[i].shape) > maxn) maxn = ckpt_shape_numel(specs[i].ndim, specs[i].shape);
    float *x = bpt_xmalloc(maxn * sizeof *x);
    int read_failed = 0;
    for (int i = 0; i < nspecs && rc == 0; i++) {
        int fi = 0;
        const bpt_safetensors_tensor *t = st_find(s, specs[i].name, &fi);
        if (bpt_safetensors_read_f32(&s->files[fi], t, x, err, sizeof err) != 0) {
            bpt_error(-1, "%s", err);
            rc = -1;
            read_failed = 1;
            break;
        }
        if (write_tensor_f32(g, &specs[i], x) != 0) { rc = -1; failed = specs[i].name; }
    }
    free(x);
    if (g >= 0 && H5Gclose(g) < 0) rc = -1;
    char why[256];
    if (bpt_h5_close_written(file, tmp, 0, rc == 0, why, sizeof why) != 0 && !read_failed) {
        bpt_error(-1, "%s: cannot write %s: %s", tmp, rc && failed ? failed : "the file", why);
        rc = -1;
    }
    return ckpt_finish_file(tmp, out, rc == 0);
}

int ckpt_import_main(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--output", 8) && (a[8] == 0 || a[8] == '=')) {
            if (a[8] == '=') out = a + 9;
            else if (i + 1 < argc) out = argv[++i];
            else return ckpt_usage_error(USAGE_IMPORT, "--output needs a value");
        } else if (a[0] == '-' && a[1]) {
            return ckpt_usage_error(USAGE_IMPORT, "unknown option '%s' for ckpt import (expected --output)", a);
        } else if (dir) {
            return ckpt_usage_error(USAGE_IMPORT, "ckpt import takes one DIR, got '%s' and '%s'", dir, a);
        } else {
            dir = a;
        }
    }
    if (!dir) return ckpt_usage_error(USAGE_IMPORT, "ckpt import needs a DIR (a Hugging Face model directory)");
    if (!out || !out[0]) return ckpt_usage_error(USAGE_IMPORT, "ckpt import needs --output FILE");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        bpt_error(-1, "%s: no such directory", dir);
        return 1;
    }

    bpt_config *cfg = bpt_xcalloc(1, sizeof *cfg);
    char *cj = ckpt_path_join(dir, "config.json");
    int rc = hf_config_read(cj, cfg);
    free(cj);
    st_set s;
    memset(&s, 0, sizeof s);
    bpt_llama_tensor *specs = NULL;
    int nspecs = 0;
    if (rc == 0) rc = st_open_dir(dir, &s);
    if (rc == 0) {
        nspecs = bpt_llama_tensors(&cfg->llama, &specs);
        rc = check_import_tensors(dir, &s, specs, nspecs, cfg->llama.tie_word_embeddings);
    }
    if (rc == 0) {
        char *yaml = bpt_config_to_yaml(cfg);
        rc = write_checkpoint(out, &s, specs, nspecs, yaml);
        free(yaml);
    }
    if (rc == 0) {
        size_t n = 0;
        for (int i = 0; i < nspecs; i++) n += ckpt_shape_numel(specs[i].ndim, specs[i].shape);
        hf_print_llama_yaml(dir, out, &cfg->llama, n);
    }
    free(specs);
    st_free(&s);
    free(cfg);
    return rc == 0 ? 0 : 1;
}
