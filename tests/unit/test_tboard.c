/* test_tboard — CRC-32C against its standard check values (RFC 3720 B.4 and the
 * CRC catalogue), and TFRecord's mask; the event files themselves are read by
 * TensorBoard's own reader in tests/e2e/test_tensorboard.sh. */
#include "bpt/tboard.h"
#include "unit_test.h"

#include <string.h>

int main(void) {
    unsigned char b[32];
    CHECK(bpt_crc32c("123456789", 9) == 0xE3069283u, "CRC-32C of \"123456789\" is 0xE3069283");
    memset(b, 0, sizeof b);
    CHECK(bpt_crc32c(b, 32) == 0x8A9136AAu, "CRC-32C of 32 zero bytes is 0x8A9136AA");
    memset(b, 0xFF, sizeof b);
    CHECK(bpt_crc32c(b, 32) == 0x62A8AB43u, "CRC-32C of 32 0xFF bytes is 0x62A8AB43");
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    CHECK(bpt_crc32c(b, 32) == 0x46DD794Eu, "CRC-32C of bytes 0..31 is 0x46DD794E");
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
    CHECK(bpt_crc32c(b, 32) == 0x113FDB5Cu, "CRC-32C of bytes 31..0 is 0x113FDB5C");
    uint32_t c = bpt_crc32c("123456789", 9);
    CHECK(bpt_crc32c_masked("123456789", 9) == ((c >> 15) | (c << 17)) + 0xa282ead8u, "the TFRecord mask");
    CHECK(bpt_crc32c("", 0) == 0, "CRC-32C of nothing is 0");
    return tap_done();
}
