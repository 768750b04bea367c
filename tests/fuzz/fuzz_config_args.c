/* fuzz_config_args.c — the command-line parser of src/config.c: --key=value and
 * --key value overrides, booleans, --print_config, update_llama_config's
 * "{a: 1}" and "dict(a=1)" forms, and validation.
 *
 * The input is an argument list, one argument per line. --config is dropped (it
 * would read a file named by the input; fuzz_config_yaml covers the YAML). Parsing
 * fails with a one-line message or gives a config that prints and loads again.
 */
#include "fuzz_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static bpt_config c, c2;
    char err[1024];
    char *text = fuzz_cstr(data, n);
    int argc = 0;
    char **argv = malloc((n + 2) * sizeof *argv);
    if (!argv) abort();
    for (char *p = text, *nl; p; p = nl) {
        nl = strchr(p, '\n');
        if (nl) *nl++ = 0;
        if (!strncmp(p, "--config", 8) && (p[8] == 0 || p[8] == '=')) continue;
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    err[0] = 0;
    int rc = bpt_config_from_args(&c, argc, argv, err, sizeof err);
    free(fuzz_config_check("bpt_config_from_args", rc, err, &c, &c2));
    free(argv);
    free(text);
    return 0;
}
