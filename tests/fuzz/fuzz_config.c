/* libFuzzer target: config.json parsing (lpi_config_parse_mem). */
#include <stdint.h>
#include <stdlib.h>

#include "../../core/src/loupe_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lp_config cfg;
    lp_error err = {0};
    (void)lpi_config_parse_mem((const char *)data, size, "fuzz/config.json", &cfg, &err);
    return 0;
}
