/* libFuzzer target: tokenizer.json loading (lp_tokenizer_load_json_mem); when it
 * loads, a fixed text is encoded and decoded again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loupe/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lp_tokenizer *t = NULL;
    lp_error err = {0};
    if (lp_tokenizer_load_json_mem((const char *)data, size, "fuzz/tokenizer.json", &t, &err) != 0)
        return 0;
    static const char text[] = "Hello world, ab c\n  <s> 123 \xc3\xa9t\xc3\xa9";
    int32_t *ids = NULL;
    size_t n = 0;
    if (lp_tokenizer_encode(t, text, sizeof text - 1, -1, &ids, &n, &err) == 0) {
        char *s = lp_tokenizer_decode(t, ids, n, 0, &err);
        free(s);
        for (size_t i = 0; i < n; i++)
            (void)lp_tokenizer_token_bytes(t, ids[i], NULL, 0);
    }
    free(ids);
    lp_tokenizer_free(t);
    return 0;
}
