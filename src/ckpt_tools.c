/* ckpt_tools.c — bpt ckpt inspect | export | import (docs/checkpoint-tools.md): the
 * subcommands and their usage.
 *
 *   inspect FILE [--json]                          what a checkpoint holds, with norms (ckpt_inspect.c)
 *   export FILE --format safetensors --output DIR  DIR/model.safetensors + DIR/config.json (ckpt_export.c)
 *   import DIR --output FILE                       a Hugging Face LlamaForCausalLM -> FILE (ckpt_import.c)
 *
 * The tools run on one rank with serial HDF5 calls and read or write the checkpoint
 * format of docs/checkpoint-format.md directly (src/ckpt_read.c); they use nothing of
 * src/ckpt.c but bpt_ckpt_latest. Every error is one line "bpt: <file>: <what>" on
 * stderr and exit status 1; a usage error exits with 2 (src/ckpt_tools.h).
 */
#include "ckpt_tools.h"

#include <stdio.h>
#include <string.h>

#include "bpt/ckpt.h"

int bpt_ckpt_main(int argc, char **argv) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (argc < 1) return ckpt_usage_error(USAGE_ALL, "ckpt needs a subcommand");
    const char *sub = argv[0];
    if (!strcmp(sub, "inspect")) return ckpt_inspect_main(argc - 1, argv + 1);
    if (!strcmp(sub, "export")) return ckpt_export_main(argc - 1, argv + 1);
    if (!strcmp(sub, "import")) return ckpt_import_main(argc - 1, argv + 1);
    if (!strcmp(sub, "help") || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        printf("usage: " USAGE_INSPECT "\n       " USAGE_EXPORT "\n       " USAGE_IMPORT "\n");
        return 0;
    }
    return ckpt_usage_error(USAGE_ALL, "unknown ckpt subcommand '%s' (expected inspect, export or import)", sub);
}
