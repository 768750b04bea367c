/* ckpt_export.c — bpt ckpt export FILE|CKPT_DIR --format safetensors --output DIR
 * (docs/checkpoint-tools.md): /params of a checkpoint, checked against the tensors of
 * its llama config (include/bpt/llama.h), as DIR/model.safetensors (F32, in model
 * order) and DIR/config.json (src/hf_config.c), each written through NAME.tmp.
 */
#include "ckpt_tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpt/safetensors.h"
#include "bpt/util.h"

/* Every /params tensor is one of specs, with its shape, and every spec is present. */
static int check_export_tensors(const ckpt_file *c, const bpt_llama_tensor *specs, int nspecs,
                                char **names, int nnames, hid_t g) {
    for (int i = 0; i < nnames; i++)
        if (ckpt_find_tensor(specs, nspecs, names[i]) < 0)
            return bpt_error(-1, "%s: tensor params/%s is not part of a LlamaForCausalLM with the "
                              "checkpoint's llama config", c->path, names[i]);
    for (int i = 0; i < nspecs; i++) {
        const bpt_llama_tensor *s = &specs[i];
        if (!ckpt_link_exists(g, s->name)) return bpt_error(-1, "%s: missing tensor params/%s", c->path, s->name);
        hid_t ds = H5Dopen2(g, s->name, H5P_DEFAULT);
        if (ds < 0) return bpt_error(-1, "%s: params/%s is not a dataset", c->path, s->name);
        dset_info di;
        int rc = ckpt_dset_probe(c, ds, "params", s->name, &di);
        H5Dclose(ds);
        if (rc != 0) return -1;
        int same = di.ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = di.shape[d] == s->shape[d];
        if (!same) {
            char have[128], want[128];
            ckpt_fmt_shape(have, sizeof have, di.ndim, di.shape);
            ckpt_fmt_shape(want, sizeof want, s->ndim, s->shape);
            return bpt_error(-1, "%s: tensor params/%s has shape %s, the llama config expects %s", c->path,
                              s->name, have, want);
        }
    }
    return 0;
}

static int write_all(FILE *f, const void *p, size_t n) {
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1;
}

/* DIR/model.safetensors from /params of c (all fp32), tensors in model order. */
static int write_safetensors(const ckpt_file *c, hid_t g, const bpt_llama_tensor *specs, int nspecs,
                             const char *out) {
    bpt_safetensors_tensor *t = bpt_xcalloc((size_t)nspecs + 1, sizeof *t);
    size_t maxn = 1, hlen;
    for (int i = 0; i < nspecs; i++) {
        size_t n = ckpt_shape_numel(specs[i].ndim, specs[i].shape);
        if (n > maxn) maxn = n;
        t[i].name = (char *)specs[i].name;         /* borrowed for the header */
        t[i].dtype = BPT_ST_F32;
        t[i].ndim = specs[i].ndim;
        memcpy(t[i].shape, specs[i].shape, sizeof specs[i].shape);
    }
    unsigned char *header = bpt_safetensors_header_write(t, nspecs, &hlen);
    free(t);

    char *tmp = ckpt_path_suffix(out, ".tmp");
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(header);
        bpt_error(-1, "%s: cannot create the file: %s", tmp, strerror(e));
        free(tmp);
        return -1;
    }
    int rc = write_all(f, header, hlen);
    free(header);

    float *x = bpt_xmalloc(maxn * sizeof *x);
    for (int i = 0; i < nspecs && rc == 0; i++) {
        hid_t ds = H5Dopen2(g, specs[i].name, H5P_DEFAULT);
        dset_info di;
        if (ds < 0 || ckpt_dset_probe(c, ds, "params", specs[i].name, &di) != 0 ||
            ckpt_dset_read(c, ds, "params", specs[i].name, &di, x) != 0) {
            if (ds >= 0) H5Dclose(ds);
            else bpt_error(-1, "%s: cannot open params/%s", c->path, specs[i].name);
            fclose(f);
            unlink(tmp);
            free(tmp);
            free(x);
            return -1;
        }
        H5Dclose(ds);
        rc = write_all(f, x, di.numel * sizeof *x);  /* little-endian host */
    }
    free(x);
    if (fflush(f) != 0) rc = -1;
    const char *why = rc ? bpt_write_failure(tmp) : NULL;
    if (fclose(f) != 0 && !rc) { rc = -1; why = bpt_write_failure(tmp); }
    if (rc != 0) bpt_error(-1, "%s: cannot write the file: %s", tmp, why);
    return ckpt_finish_file(tmp, out, rc == 0);
}

int ckpt_export_main(int argc, char **argv) {
    const char *path = NULL, *format = NULL, *outdir = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        size_t klen = 0;
        if (!strncmp(a, "--format", 8) && (a[8] == 0 || a[8] == '=')) { dst = &format; klen = 8; }
        else if (!strncmp(a, "--output", 8) && (a[8] == 0 || a[8] == '=')) { dst = &outdir; klen = 8; }
        else if (a[0] == '-' && a[1]) return ckpt_usage_error(USAGE_EXPORT, "unknown option '%s' for ckpt export (expected --format, --output)", a);
        else if (path) return ckpt_usage_error(USAGE_EXPORT, "ckpt export takes one FILE, got '%s' and '%s'", path, a);
        else { path = a; continue; }
        if (a[klen] == '=') *dst = a + klen + 1;
        else if (i + 1 < argc) *dst = argv[++i];
        else return ckpt_usage_error(USAGE_EXPORT, "%s needs a value", a);
    }
    if (!path) return ckpt_usage_error(USAGE_EXPORT, "ckpt export needs a FILE");
    if (!format) return ckpt_usage_error(USAGE_EXPORT, "ckpt export needs --format safetensors");
    if (strcmp(format, "safetensors") != 0)
        return ckpt_usage_error(USAGE_EXPORT, "unsupported --format '%s' for ckpt export (supported: safetensors)", format);
    if (!outdir || !outdir[0]) return ckpt_usage_error(USAGE_EXPORT, "ckpt export needs --output DIR");

    ckpt_file c;
    if (ckpt_open(path, &c) != 0) return 1;
    path = c.path;
    bpt_llama_config l;
    bpt_llama_tensor *specs = NULL;
    char **names = NULL;
    int nnames = 0, rc = ckpt_llama_config(&c, &l);
    hid_t g = -1;
    if (rc == 0 && !ckpt_link_exists(c.file, "params"))
        rc = bpt_error(-1, "%s: has no /params group (not a complete checkpoint)", path);
    if (rc == 0) {
        nnames = ckpt_group_names(&c, "params", &names);
        if (nnames < 0) { rc = -1; nnames = 0; }
    }
    int nspecs = rc == 0 ? bpt_llama_tensors(&l, &specs) : 0;
    if (rc == 0) {
        g = H5Gopen2(c.file, "params", H5P_DEFAULT);
        rc = check_export_tensors(&c, specs, nspecs, names, nnames, g);
    }
    if (rc == 0 && bpt_mkdirs(outdir) != 0) rc = bpt_error(-1, "%s: cannot create the directory: %s", outdir, strerror(errno));
    char *st = ckpt_path_join(outdir, "model.safetensors"), *cj = ckpt_path_join(outdir, "config.json");
    if (rc == 0) rc = write_safetensors(&c, g, specs, nspecs, st);
    if (rc == 0) rc = hf_config_write(&l, cj);
    if (rc == 0) {
        uint64_t n = 0;
        for (int i = 0; i < nspecs; i++) n += ckpt_shape_numel(specs[i].ndim, specs[i].shape);
        printf("wrote %s (%d tensors, %llu parameters, F32) and %s\n", st, nspecs, (unsigned long long)n, cj);
    }
    free(st);
    free(cj);
    if (g >= 0) H5Gclose(g);
    ckpt_free_names(names, nnames);
    free(specs);
    ckpt_close(&c);
    return rc == 0 ? 0 : 1;
}
