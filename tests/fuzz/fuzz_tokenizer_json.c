/* loupe — libFuzzer target: tokenizer.json parsing, then encode/decode with whatever loaded.
 * Build: clang -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -Icore/include \
 *        tests/fuzz/fuzz_tokenizer_json.c core/src/tok_*.c core/src/tokenizer.c core/src/error.c \
 *        -lpcre2-8 -lcjson -o fuzz_tokenizer_json
 * Run:   ./fuzz_tokenizer_json -max_total_time=30 tests/fuzz/corpus/tokenizer_json */
#include "loupe/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void exercise(const lp_tokenizer *t, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    lp_error err;
    for (int bos = -1; bos <= 1; bos++) {
        if (lp_tokenizer_encode(t, text, len, bos, &ids, &n, &err) == 0) {
            char *s = lp_tokenizer_decode(t, ids, n, bos == 0, &err);
            free(s);
        }
        free(ids);
        ids = NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lp_tokenizer *t = NULL;
    lp_error err;
    if (lp_tokenizer_load_json_mem((const char *)data, size, "fuzz.json", &t, &err) != 0)
        return 0;
    static const char *texts[] = {
        "Hello world, it's 2024!  \t\n",
        "<s>a</s> <|endoftext|>ab\xE2\x96\x81 cd",
        "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 e\xCC\x81",
        "",
        "\xff invalid",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        exercise(t, texts[i], strlen(texts[i]));
    /* the vocabulary's own strings, concatenated */
    char buf[512];
    size_t n = 0;
    int32_t nv = lp_tokenizer_n_vocab(t);
    for (int32_t id = 0; id < nv && id < 64; id++) {
        const char *s = lp_tokenizer_token_str(t, id);
        char tb[32];
        (void)lp_tokenizer_token_bytes(t, id, tb, sizeof tb);
        (void)lp_tokenizer_is_special(t, id);
        size_t l = s ? strlen(s) : 0;
        if (s && n + l < sizeof buf) {
            memcpy(buf + n, s, l);
            n += l;
        }
        if (s)
            (void)lp_tokenizer_token_id(t, s);
    }
    exercise(t, buf, n);
    int32_t bad[3] = {-1, nv, 0};
    free(lp_tokenizer_decode(t, bad, 3, 0, &err));
    (void)lp_tokenizer_kind(t);
    (void)lp_tokenizer_bos(t);
    (void)lp_tokenizer_eos(t);
    (void)lp_tokenizer_default_add_bos(t);
    lp_tokenizer_free(t);
    return 0;
}
