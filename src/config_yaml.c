/* config_yaml.c — a config from YAML (nested mappings flattened into dotted keys, the
 * scalars through the same setter as the command line), and back to YAML. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "bpt/config.h"
#include "bpt/util.h"
#include "config_internal.h"

/* ---- YAML ----------------------------------------------------------------------------------- */

typedef struct yctx {
    bpt_config *c;
    yaml_document_t *doc;
    const char *fname;
    unsigned char seen[CFG_MAX_KEYS];
    char *err;
    size_t n;
} yctx;

static int yfail_at(yctx *y, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int yfail_at(yctx *y, yaml_mark_t m, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bpt_err(y->err, y->n, "%s:%zu:%zu: %s", y->fname, m.line + 1, m.column + 1, msg);
}

/* Prefix the message already in y->err with the location. */
static int yprefix_at(yctx *y, yaml_mark_t m) {
    char where[600];
    snprintf(where, sizeof where, "%s:%zu:%zu", y->fname, m.line + 1, m.column + 1);
    return cfg_prefix_err(y->err, y->n, where);
}

const char *cfg_scalar_text(const yaml_node_t *nd) {
    const char *s = (const char *)nd->data.scalar.value;
    if (nd->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (!strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")))
        return "";
    return s;
}

/* A scalar for flow text: plain if it is safe, else single-quoted. */
static void append_flow_scalar(char *buf, size_t n, const char *s) {
    size_t l = strlen(buf);
    int plain = s[0] != 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.+-", *p)) plain = 0;
    if (plain) { snprintf(buf + l, n - l, "%s", s); return; }
    if (l + 1 < n) buf[l++] = '\'';
    for (const char *p = s; *p && l + 2 < n; p++) {
        if (*p == '\'') buf[l++] = '\'';
        buf[l++] = *p;
    }
    if (l + 1 < n) buf[l++] = '\'';
    buf[l < n ? l : n - 1] = 0;
}

/* update_llama_config given as a YAML mapping: store it as flow text "{a: 1, b: x}". */
static int map_to_flow(yctx *y, yaml_node_t *m, char *out, size_t n) {
    out[0] = 0;
    snprintf(out, n, "{");
    int first = 1;
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(y->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(y->doc, pr->value);
        if (kn->type != YAML_SCALAR_NODE || vn->type != YAML_SCALAR_NODE)
            return yfail_at(y, kn->start_mark, "update_llama_config must map llama field names to plain values");
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s", first ? "" : ", ");
        append_flow_scalar(out, n, cfg_scalar_text(kn));
        l = strlen(out);
        snprintf(out + l, n - l, ": ");
        append_flow_scalar(out, n, cfg_scalar_text(vn));
        first = 0;
    }
    size_t l = strlen(out);
    snprintf(out + l, n - l, "}");
    if (strlen(out) + 1 >= n) return yfail_at(y, m->start_mark, "update_llama_config is too long");
    return 0;
}

static int yset(yctx *y, const char *path, const char *value, yaml_mark_t keymark) {
    const keydef *k = cfg_find_key(path);
    if (!k) {
        cfg_unknown_key(path, NULL, 0, y->err, y->n);
        return yprefix_at(y, keymark);
    }
    if (y->seen[k - cfg_keys]++) return yfail_at(y, keymark, "config key '%s' given twice", k->name);
    if (cfg_set_key(y->c, k, value, y->err, y->n) != 0) return yprefix_at(y, keymark);
    return 0;
}

static int walk_map(yctx *y, yaml_node_t *m, const char *prefix) {
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(y->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(y->doc, pr->value);
        if (kn->type != YAML_SCALAR_NODE) return yfail_at(y, kn->start_mark, "expected a key name");
        char path[512];
        int len = snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "",
                           (const char *)kn->data.scalar.value);
        if (len >= (int)sizeof path) return yfail_at(y, kn->start_mark, "key name too long");
        const keydef *k = cfg_find_key(path);
        if (vn->type == YAML_SCALAR_NODE) {
            if (yset(y, path, cfg_scalar_text(vn), kn->start_mark) != 0) return -1;
        } else if (vn->type == YAML_MAPPING_NODE) {
            if (k && strcmp(k->name, "update_llama_config") == 0) {
                char flow[sizeof y->c->update_llama_config + 64];
                if (map_to_flow(y, vn, flow, sizeof flow) != 0) return -1;
                if (yset(y, path, flow, kn->start_mark) != 0) return -1;
            } else if (k) {
                char exp[256];
                cfg_expected(k, exp, sizeof exp);
                return yfail_at(y, vn->start_mark, "bad value for %s: a mapping (expected %s)", k->name, exp);
            } else if (walk_map(y, vn, path) != 0) {
                return -1;
            }
        } else if (vn->type == YAML_SEQUENCE_NODE) {
            if (!k) {
                cfg_unknown_key(path, NULL, 0, y->err, y->n);
                return yprefix_at(y, kn->start_mark);
            }
            if (!(k->flags & F_LIST)) {
                char exp[256];
                cfg_expected(k, exp, sizeof exp);
                return yfail_at(y, vn->start_mark, "bad value for %s: a list (expected %s)", k->name, exp);
            }
            char joined[BPT_STR] = "";
            for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top; it++) {
                yaml_node_t *e = yaml_document_get_node(y->doc, *it);
                if (e->type != YAML_SCALAR_NODE)
                    return yfail_at(y, e->start_mark, "bad value for %s: nested list", k->name);
                size_t l = strlen(joined);
                snprintf(joined + l, sizeof joined - l, "%s%s", l ? "," : "", cfg_scalar_text(e));
            }
            if (yset(y, path, joined, kn->start_mark) != 0) return -1;
        }
    }
    return 0;
}

static int yaml_syntax_error(yaml_parser_t *p, const char *fname, char *err, size_t n) {
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->context)
        return bpt_err(err, n, "%s:%zu:%zu: YAML syntax error: %s %s", fname, p->problem_mark.line + 1,
                    p->problem_mark.column + 1, problem, p->context);
    return bpt_err(err, n, "%s:%zu:%zu: YAML syntax error: %s", fname, p->problem_mark.line + 1,
                p->problem_mark.column + 1, problem);
}

/* Load the keys of one YAML document from an initialised parser into c. */
static int load_yaml(bpt_config *c, yaml_parser_t *p, const char *fname, char *err, size_t n) {
    yaml_document_t doc;
    if (!yaml_parser_load(p, &doc)) return yaml_syntax_error(p, fname, err, n);
    int rc = 0;
    yctx *y = calloc(1, sizeof *y);
    if (!y) { yaml_document_delete(&doc); return bpt_err(err, n, "out of memory"); }
    y->c = c; y->doc = &doc; y->fname = fname; y->err = err; y->n = n;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        if (root->type != YAML_MAPPING_NODE)
            rc = yfail_at(y, root->start_mark, "expected a mapping of config keys at the top level");
        else
            rc = walk_map(y, root, "");
    }
    yaml_document_delete(&doc);
    if (rc == 0 && root) {                    /* exactly one document */
        yaml_document_t more;
        if (!yaml_parser_load(p, &more)) {
            rc = yaml_syntax_error(p, fname, err, n);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&more);
            if (r2) rc = yfail_at(y, r2->start_mark, "more than one YAML document; expected one");
            yaml_document_delete(&more);
        }
    }
    free(y);
    return rc;
}

int cfg_load_yaml_file(bpt_config *c, const char *path, char *err, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return bpt_err(err, n, "cannot open config file '%s': %s", path, strerror(errno));
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    int rc = load_yaml(c, &p, path, err, n);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

int cfg_load_yaml_string(bpt_config *c, const char *text, const char *name, char *err, size_t n) {
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    int rc = load_yaml(c, &p, name, err, n);
    yaml_parser_delete(&p);
    return rc;
}

/* ---- printing the config ------------------------------------------------------------------------- */

typedef struct sbuf { char *s; size_t len, cap; } sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    if (b->len + (size_t)need + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap : 4096);
        while (cap < b->len + (size_t)need + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { fprintf(stderr, "bpt: out of memory\n"); abort(); }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

static void sb_quoted(sbuf *b, const char *s) {
    sb_add(b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'') sb_add(b, "''");
        else sb_add(b, "%c", *p);
    }
    sb_add(b, "'");
}

/* Split a dotted name into at most 8 components (pointers into buf). */
static int split_name(const char *name, char *buf, size_t n, char **comp) {
    snprintf(buf, n, "%s", name);
    int nc = 0;
    for (char *p = buf; nc < 8;) {
        comp[nc++] = p;
        char *d = strchr(p, '.');
        if (!d) break;
        *d = 0;
        p = d + 1;
    }
    return nc;
}

char *bpt_config_to_yaml(const bpt_config *c) {
    sbuf b = { 0 };
    sb_add(&b, "# bpt config, resolved%s%s\n", c->config_file[0] ? " from " : "", c->config_file);
    char prevbuf[256], *prev[8];
    int nprev = 0;
    for (int i = 0; i < cfg_nkeys; i++) {
        const keydef *k = &cfg_keys[i];
        if (k->flags & F_IGN) continue;
        char buf[256], *comp[8];
        int nc = split_name(k->name, buf, sizeof buf, comp);
        int common = 0;   /* shared leading mapping names (excluding the leaves) */
        while (common < nc - 1 && common < nprev - 1 && !strcmp(comp[common], prev[common])) common++;
        for (int j = common; j < nc - 1; j++) sb_add(&b, "%*s%s:\n", 2 * j, "", comp[j]);
        char v[4 * BPT_STR + 64];
        cfg_fmt_value(c, k, v, sizeof v);
        sb_add(&b, "%*s%s: ", 2 * (nc - 1), "", comp[nc - 1]);
        if (k->kind == K_STR || k->kind == K_ENUM || k->kind == K_REMAT) sb_quoted(&b, v);
        else sb_add(&b, "%s", v);
        sb_add(&b, "\n");
        nprev = split_name(k->name, prevbuf, sizeof prevbuf, prev);
    }
    return b.s;
}

