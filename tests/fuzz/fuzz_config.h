/* fuzz_config.h — what fuzz_config_args and fuzz_config_yaml share: the check of a
 * parse's outcome.
 */
#include "bpt/config.h"
#include "fuzz.h"

/* The input was parsed into c by what (rc its return, err its message): a failure has a
 * one-line message; a success gives a config whose bpt_config_to_yaml (what
 * --print_config writes) loads again, into c2. Returns that YAML (malloc'd; the caller
 * frees it), NULL after a failure. */
static inline char *fuzz_config_check(const char *what, int rc, const char *err, const bpt_config *c, bpt_config *c2) {
    if (rc != 0) {
        fuzz_check_err(what, err);
        return NULL;
    }
    char err2[1024];
    char *y = bpt_config_to_yaml(c);
    err2[0] = 0;
    int rc2 = bpt_config_from_yaml_string(c2, y, err2, sizeof err2);
    FUZZ_ASSERT(rc2 == 0, "the printed config does not load again: %s\n%s", err2, y);
    return y;
}
