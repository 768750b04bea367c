/* fuzz_config_yaml.c — the YAML config loader (src/config.c).
 *
 * The input is a config file's text. Loading it either fails with a one-line
 * message or gives a config whose bpt_config_to_yaml (what --print_config writes)
 * loads again to the same YAML: the --print_config round trip on any input.
 */
#include "fuzz_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static bpt_config c, c2;
    char err[1024];
    char *text = fuzz_cstr(data, n);
    err[0] = 0;
    int rc = bpt_config_from_yaml_string(&c, text, err, sizeof err);
    char *y1 = fuzz_config_check("bpt_config_from_yaml_string", rc, err, &c, &c2);
    if (y1) {
        char *y2 = bpt_config_to_yaml(&c2);
        FUZZ_ASSERT(strcmp(y1, y2) == 0, "the printed config changes when loaded again:\n%s\n----\n%s", y1, y2);
        free(y2);
        free(y1);
    }
    free(text);
    return 0;
}
