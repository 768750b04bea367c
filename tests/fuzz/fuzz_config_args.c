/* fuzz_config_args.c — the command-line parser of src/config.c: --key=value and
 * --key value overrides, booleans, --print_config, update_llama_config's
 * "{a: 1}" and "dict(a=1)" forms, and validation.
 *
 * The input is an argument list, one argument per line. --config is dropped (it
 * would read a file named by the input; fuzz_config_yaml covers the YAML). Parsing
 * fails with a one-line message or gives a config that prints and loads again.
 */
#include "bpt/config.h"
#include "fuzz.h"

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
    if (bpt_config_from_args(&c, argc, argv, err, sizeof err) != 0) {
        fuzz_check_err("bpt_config_from_args", err);
    } else {
        char *y = bpt_config_to_yaml(&c);
        err[0] = 0;
        int rc = bpt_config_from_yaml_string(&c2, y, err, sizeof err);
        FUZZ_ASSERT(rc == 0, "the printed config does not load again: %s\n%s", err, y);
        free(y);
    }
    free(argv);
    free(text);
    return 0;
}
