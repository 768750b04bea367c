/* ckpt_inspect.c — bpt ckpt inspect FILE|CKPT_DIR [--json] (docs/checkpoint-tools.md):
 * the root attributes, the config, and every tensor of /params, /optimizer/m and
 * /optimizer/v with its shape, storage dtype and L2 norm, as text or one JSON document.
 * Every tensor is read whole, so a damaged chunk is reported.
 */
#include "ckpt_tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bpt/ckpt.h"
#include "bpt/util.h"

typedef struct tensor_row {
    const char *group;
    char *name;
    dset_info info;
    double norm;
} tensor_row;

/* Every dataset of group gname appended to rows (norm computed in double). */
static int inspect_group(const ckpt_file *c, const char *gname, tensor_row **rows, int *nrows, int *cap) {
    char **names;
    int n = ckpt_group_names(c, gname, &names);
    if (n < 0) return -1;
    hid_t g = n > 0 ? H5Gopen2(c->file, gname, H5P_DEFAULT) : -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        hid_t ds = H5Dopen2(g, names[i], H5P_DEFAULT);
        if (ds < 0) { rc = bpt_error(-1, "%s: cannot open %s/%s", c->path, gname, names[i]); break; }
        tensor_row r = { gname, names[i], { 0 }, 0 };
        rc = ckpt_dset_probe(c, ds, gname, names[i], &r.info);
        if (rc == 0 && r.info.ndim == 0) {         /* a scalar (a counter): not a tensor */
            H5Dclose(ds);
            continue;
        }
        float *x = rc == 0 ? bpt_xmalloc((r.info.numel ? r.info.numel : 1) * sizeof *x) : NULL;
        if (rc == 0) rc = ckpt_dset_read(c, ds, gname, names[i], &r.info, x);
        if (rc == 0) {
            double s = 0;
            for (size_t k = 0; k < r.info.numel; k++) s += (double)x[k] * (double)x[k];
            r.norm = sqrt(s);
            if (*nrows == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                *rows = realloc(*rows, (size_t)*cap * sizeof **rows);
                BPT_CHECK(*rows, "out of memory");
            }
            (*rows)[(*nrows)++] = r;
            names[i] = NULL;                       /* owned by the row now */
        }
        free(x);
        H5Dclose(ds);
    }
    if (g >= 0) H5Gclose(g);
    ckpt_free_names(names, n);
    return rc;
}

static void print_inspect_text(const ckpt_file *c, const tensor_row *rows, int nrows, uint64_t nparams,
                               int has_opt, int64_t opt_step) {
    printf("%s\n", c->path);
    printf("  format           %s, version %d\n", BPT_CKPT_FORMAT, c->version);
    printf("  bpt_version      %s\n", c->bpt_version ? c->bpt_version : "(not recorded)");
    printf("  created          %s\n", c->created ? c->created : "(not recorded)");
    printf("  step             %lld\n", (long long)c->step);
    printf("  tokens_consumed  %llu\n", (unsigned long long)c->tokens);
    printf("  mesh             %s\n", c->mesh ? c->mesh : "(not recorded)");
    printf("  float_dtype      %s\n", ckpt_float_dtype(c));
    printf("  parameters       %llu (%.3fM)\n", (unsigned long long)nparams, (double)nparams / 1e6);
    if (has_opt) printf("  optimizer        AdamW moments, step %lld\n", (long long)opt_step);
    else printf("  optimizer        none (saved without checkpointer.save_optimizer_state)\n");
    printf("config:\n");
    const char *p = c->config ? c->config : "";
    while (*p) {
        const char *e = strchr(p, '\n');
        int n = e ? (int)(e - p) : (int)strlen(p);
        printf("    %.*s\n", n, p);
        p += n + (e ? 1 : 0);
    }
    int w = 0;
    for (int i = 0; i < nrows; i++) {
        int len = (int)(strlen(rows[i].group) + 1 + strlen(rows[i].name));
        if (len > w) w = len;
    }
    printf("tensors: %d\n", nrows);
    for (int i = 0; i < nrows; i++) {
        char full[512], shape[128];
        snprintf(full, sizeof full, "%s/%s", rows[i].group, rows[i].name);
        ckpt_fmt_shape(shape, sizeof shape, rows[i].info.ndim, rows[i].info.shape);
        printf("  %-*s  %-14s %-9s norm %.6g\n", w, full, shape, rows[i].info.dtype, rows[i].norm);
    }
}

static void print_inspect_json(const ckpt_file *c, const tensor_row *rows, int nrows, uint64_t nparams,
                               int has_opt, int64_t opt_step) {
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(c->path));
    json_object_set_new(o, "format_version", json_integer(c->version));
    json_object_set_new(o, "step", json_integer(c->step));
    json_object_set_new(o, "tokens_consumed", json_integer((json_int_t)c->tokens));
    json_object_set_new(o, "bpt_version", c->bpt_version ? json_string(c->bpt_version) : json_null());
    json_object_set_new(o, "created", c->created ? json_string(c->created) : json_null());
    json_object_set_new(o, "mesh", c->mesh ? json_string(c->mesh) : json_null());
    json_object_set_new(o, "float_dtype", json_string(ckpt_float_dtype(c)));
    json_object_set_new(o, "config", json_string(c->config ? c->config : ""));
    json_object_set_new(o, "num_params", json_integer((json_int_t)nparams));
    json_object_set_new(o, "optimizer_step", has_opt ? json_integer(opt_step) : json_null());
    json_t *list = json_array();
    for (int i = 0; i < nrows; i++) {
        json_t *t = json_object();
        json_t *shape = json_array();
        for (int d = 0; d < rows[i].info.ndim; d++) json_array_append_new(shape, json_integer(rows[i].info.shape[d]));
        json_object_set_new(t, "group", json_string(rows[i].group));
        json_object_set_new(t, "name", json_string(rows[i].name));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "dtype", json_string(rows[i].info.dtype));
        json_object_set_new(t, "norm", json_real(rows[i].norm));
        json_array_append_new(list, t);
    }
    json_object_set_new(o, "tensors", list);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

int ckpt_inspect_main(int argc, char **argv) {
    const char *path = NULL;
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return ckpt_usage_error(USAGE_INSPECT, "unknown option '%s' for ckpt inspect (expected --json)", argv[i]);
        else if (path) return ckpt_usage_error(USAGE_INSPECT, "ckpt inspect takes one FILE, got '%s' and '%s'", path, argv[i]);
        else path = argv[i];
    }
    if (!path) return ckpt_usage_error(USAGE_INSPECT, "ckpt inspect needs a FILE");

    ckpt_file c;
    if (ckpt_open(path, &c) != 0) return 1;
    path = c.path;
    tensor_row *rows = NULL;
    int nrows = 0, cap = 0, rc = 0;
    if (!ckpt_link_exists(c.file, "params")) rc = bpt_error(-1, "%s: has no /params group (not a complete checkpoint)", path);
    if (rc == 0) rc = inspect_group(&c, "params", &rows, &nrows, &cap);
    int nparam_rows = nrows;
    if (rc == 0) rc = inspect_group(&c, "optimizer/m", &rows, &nrows, &cap);
    if (rc == 0) rc = inspect_group(&c, "optimizer/v", &rows, &nrows, &cap);
    int has_opt = nrows > nparam_rows;
    int64_t opt_step = 0;
    if (rc == 0 && ckpt_link_exists(c.file, "optimizer") && ckpt_link_exists(c.file, "optimizer/step")) {
        hid_t ds = H5Dopen2(c.file, "optimizer/step", H5P_DEFAULT);
        if (ds < 0 || H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &opt_step) < 0)
            rc = bpt_error(-1, "%s: cannot read /optimizer/step", path);
        if (ds >= 0) H5Dclose(ds);
    } else if (has_opt) {
        opt_step = c.step;
    }
    if (rc == 0) {
        uint64_t nparams = 0;
        for (int i = 0; i < nparam_rows; i++) nparams += rows[i].info.numel;
        if (as_json) print_inspect_json(&c, rows, nrows, nparams, has_opt, opt_step);
        else print_inspect_text(&c, rows, nrows, nparams, has_opt, opt_step);
    }
    for (int i = 0; i < nrows; i++) free(rows[i].name);
    free(rows);
    ckpt_close(&c);
    return rc == 0 ? 0 : 1;
}
