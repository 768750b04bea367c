/* ckpt_tools.h — what the files of bpt ckpt share (private to src/ckpt_*.c, src/hf_config.c).
 *
 *   ckpt_tools.c    bpt_ckpt_main: the subcommands, usage
 *   ckpt_util.c     usage errors, paths, shapes as text, a written file committed
 *   ckpt_read.c     a bpt checkpoint read with serial HDF5: root attributes, datasets as fp32
 *   ckpt_inspect.c  bpt ckpt inspect
 *   ckpt_export.c   bpt ckpt export: /params -> model.safetensors + config.json
 *   ckpt_import.c   bpt ckpt import: a Hugging Face directory -> a checkpoint
 *   hf_config.c     Hugging Face config.json <-> the llama config
 * The safetensors container is a module of its own (include/bpt/safetensors.h), the
 * tensors of a LlamaForCausalLM too (include/bpt/llama.h).
 *
 * Errors: a function that finds one prints it (bpt_error, util.h: one line "bpt: <file>:
 * <what>") and returns -1; its callers only pass the -1 on, so exactly one line is
 * printed. A subcommand returns the exit status: 0, 1 (an error), 2 (a usage error).
 */
#ifndef BPT_CKPT_TOOLS_H
#define BPT_CKPT_TOOLS_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "bpt/config.h"
#include "bpt/llama.h"

#define CKPT_MAX_DIMS 8

#define USAGE_INSPECT "bpt ckpt inspect FILE|CKPT_DIR [--json]"
#define USAGE_EXPORT "bpt ckpt export FILE|CKPT_DIR --format safetensors --output DIR"
#define USAGE_IMPORT "bpt ckpt import DIR --output FILE"
#define USAGE_ALL USAGE_INSPECT " | " USAGE_EXPORT " | " USAGE_IMPORT

/* The subcommands; argv after the subcommand's name. */
int ckpt_inspect_main(int argc, char **argv);
int ckpt_export_main(int argc, char **argv);
int ckpt_import_main(int argc, char **argv);

/* --- ckpt_util.c ---------------------------------------------------------- */

/* A usage error: the message, the usage line; returns 2. */
int ckpt_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *ckpt_path_join(const char *dir, const char *name);      /* "dir/name", malloc'd */
char *ckpt_path_suffix(const char *path, const char *suffix); /* "pathsuffix", malloc'd */
int ckpt_file_exists(const char *path);
/* "[a, b]" */
void ckpt_fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape);
size_t ckpt_shape_numel(int ndim, const int64_t *shape);
/* The tensor called name in t[0..n), or -1. */
int ckpt_find_tensor(const bpt_llama_tensor *t, int n, const char *name);
/* The end of every write through tmp: when ok, fsync it, rename it to path and fsync
 * the directory; else remove it (the caller said why). Frees tmp. 0 or -1. */
int ckpt_finish_file(char *tmp, const char *path, int ok);

/* --- ckpt_read.c ---------------------------------------------------------- */

typedef struct ckpt_file {
    const char *path;              /* the file (a directory given resolves through its latest) */
    char resolved[4096];
    hid_t file;
    int version;
    int64_t step;
    uint64_t tokens;
    char *config, *bpt_version, *created, *mesh, *float_dtype;   /* NULL when absent */
} ckpt_file;

/* What one dataset holds and how to read it as fp32. */
typedef struct dset_info {
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    size_t numel;
    int bf16;              /* uint16 bfloat16 bit patterns */
    const char *dtype;     /* "float32", "bfloat16", "float64", "float16" */
} dset_info;

/* Open path (a checkpoint directory: the checkpoint its latest names, as for bpt
 * eval) and read the root attributes; checks the format and its version. */
int ckpt_open(const char *path, ckpt_file *c);
void ckpt_close(ckpt_file *c);
const char *ckpt_float_dtype(const ckpt_file *c);   /* "fp32" when not recorded */
int ckpt_link_exists(hid_t loc, const char *name);
/* Shape and storage type of dataset ds, gname/name. */
int ckpt_dset_probe(const ckpt_file *c, hid_t ds, const char *gname, const char *name, dset_info *di);
/* Read the whole dataset as fp32 into out (di->numel floats). */
int ckpt_dset_read(const ckpt_file *c, hid_t ds, const char *gname, const char *name, const dset_info *di,
                   float *out);
/* Names of the datasets in group gname, in natural order (layers.2 before layers.10).
 * Returns the count (0 if the group is absent), or -1. *names is malloc'd (free with
 * ckpt_free_names). */
int ckpt_group_names(const ckpt_file *c, const char *gname, char ***names);
void ckpt_free_names(char **names, int n);
/* The llama config of a checkpoint from its config attribute. If the whole config
 * does not validate here (a newer bpt wrote it?), the llama section alone is tried. */
int ckpt_llama_config(const ckpt_file *c, bpt_llama_config *out);

/* --- hf_config.c ---------------------------------------------------------- */

/* path: the config.json of a Hugging Face LlamaForCausalLM with the dimensions of l,
 * written through path.tmp. */
int hf_config_write(const bpt_llama_config *l, const char *path);
/* cfg: the bpt defaults with the llama section of the config.json at path, finalized. */
int hf_config_read(const char *path, bpt_config *cfg);
/* On stdout: the llama section a user needs to run an imported checkpoint, as YAML. */
void hf_print_llama_yaml(const char *dir, const char *out, const bpt_llama_config *l, size_t nparams);

#endif
