/* config_internal.h — what src/config.c (the key table, values, the command line),
 * config_yaml.c (YAML in and out) and config_check.c (assembling and validating the
 * model config) share. Private to those three files. */
#ifndef BPT_CONFIG_INTERNAL_H
#define BPT_CONFIG_INTERNAL_H

#include <stddef.h>
#include "bpt/config.h"

typedef enum {
    K_INT,      /* int */
    K_I64,      /* int64_t */
    K_BYTES,    /* int64_t, accepts 4GiB, 512MiB, ... */
    K_F64,      /* double */
    K_BOOL,     /* int 0/1 */
    K_STR,      /* char[size] */
    K_ENUM,     /* an enum of config.h: the index of the canonical name in choices */
    K_REMAT,    /* bpt_remat */
} kind;

enum {
    F_MIN = 1,      /* lo is a lower bound */
    F_MAX = 2,      /* hi is an upper bound */
    F_GT = 4,       /* lower bound is exclusive */
    F_LT = 8,       /* upper bound is exclusive */
    F_LIST = 16,    /* a YAML sequence is accepted and joined with commas */
    F_IGN = 32,     /* accepted for compatibility, checked, then ignored (not stored) */
};

typedef int (*check_fn)(const char *v, char *why, size_t n);

typedef struct keydef {
    const char *name;
    kind kind;
    size_t off, size;        /* offsetof / sizeof in bpt_config */
    const char *def;         /* default, as text */
    unsigned flags;
    double lo, hi;           /* range (see F_MIN ...) */
    const char *choices;     /* K_ENUM: "a|b|alias>b" */
    check_fn check;          /* extra check of the raw text, with a reason */
    const char *help;
} keydef;

#define LLAMA "llama."

extern const keydef cfg_keys[];   /* the table (config.c) */
extern const int cfg_nkeys;
#define CFG_MAX_KEYS 256          /* at least cfg_nkeys (checked in config.c) */

const keydef *cfg_find_key(const char *name);   /* by dotted name, with the json_dataset alias */
int cfg_is_llama(const keydef *k);
/* Parse v into k's field of c (store 0: check only); -1 with "bad value for KEY: ..." */
int cfg_set_value(bpt_config *c, const keydef *k, const char *v, int store, char *err, size_t n);
/* cfg_set_value, and a llama.* key is remembered as set explicitly. */
int cfg_set_key(bpt_config *c, const keydef *k, const char *value, char *err, size_t n);
void cfg_fmt_value(const bpt_config *c, const keydef *k, char *buf, size_t n);   /* its value as text */
void cfg_expected(const keydef *k, char *buf, size_t n);                          /* what it accepts */
/* "unknown config key NAME (did you mean ...?)"; extra: names beyond the table. -1. */
int cfg_unknown_key(const char *name, const char *const *extra, int nextra, char *err, size_t n);
const char *cfg_closest(const char *name, const char *const *cand, int ncand);
int cfg_prefix_err(char *err, size_t n, const char *where);   /* "WHERE: " before err's text */
void cfg_trim(const char *s, char *out, size_t n);            /* without surrounding blanks */

/* config_yaml.c */
int cfg_load_yaml_file(bpt_config *c, const char *path, char *err, size_t n);
int cfg_load_yaml_string(bpt_config *c, const char *text, const char *name, char *err, size_t n);
/* A scalar node's text; YAML's null spellings are "". (The node type is libyaml's.) */
struct yaml_node_s;
const char *cfg_scalar_text(const struct yaml_node_s *nd);

#endif
