/* fuzz_config_yaml.c — the YAML config loader (src/config.c).
 *
 * The input is a config file's text. Loading it either fails with a one-line
 * message or gives a config whose bpt_config_to_yaml (what --print_config writes)
 * loads again to the same YAML: the --print_config round trip on any input.
 */
#include "bpt/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static bpt_config c, c2;
    char err[1024];
    char *text = fuzz_cstr(data, n);
    err[0] = 0;
    if (bpt_config_from_yaml_string(&c, text, err, sizeof err) != 0) {
        fuzz_check_err("bpt_config_from_yaml_string", err);
    } else {
        char *y1 = bpt_config_to_yaml(&c);
        err[0] = 0;
        int rc = bpt_config_from_yaml_string(&c2, y1, err, sizeof err);
        FUZZ_ASSERT(rc == 0, "the printed config does not load again: %s\n%s", err, y1);
        char *y2 = bpt_config_to_yaml(&c2);
        FUZZ_ASSERT(strcmp(y1, y2) == 0, "the printed config changes when loaded again:\n%s\n----\n%s", y1, y2);
        free(y2);
        free(y1);
    }
    free(text);
    return 0;
}
