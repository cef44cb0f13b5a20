/* loupe — tokenizer tests.  Usage: test_tokenizer [SHARED_DIR]
 * SHARED_DIR defaults to $LOUPE_SHARED, else ../shared.  Tests needing no shared files always run;
 * when SHARED_DIR is absent the rest print SKIP and the exit status is 77 (meson's "skipped"). */
#define _DEFAULT_SOURCE /* realpath, mkdtemp, symlink */
#include "loupe/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LOUPE_TOK_GOLDEN_DIR
#define LOUPE_TOK_GOLDEN_DIR "tests/tokenizer"
#endif
#ifndef LOUPE_TOK_CORPUS_DIR
#define LOUPE_TOK_CORPUS_DIR "tests/fuzz/corpus/fuzz_tokenizer_json"
#endif

static int n_fail, n_ok;

__attribute__((format(printf, 2, 3))) static void check(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf(cond ? "ok   " : "FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (cond)
        n_ok++;
    else
        n_fail++;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)sz + 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[sz] = '\0';
        *n = (size_t)sz;
    }
    return p;
}

static int ids_equal(const int32_t *a, size_t na, const cJSON *arr)
{
    if ((size_t)cJSON_GetArraySize(arr) != na)
        return 0;
    size_t i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) if (!cJSON_IsNumber(c) || c->valueint != a[i++]) return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *a, size_t n)
{
    printf("     %s:", label);
    for (size_t i = 0; i < n && i < 40; i++)
        printf(" %d", a[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* ------------------------------------------------------------------ tests without shared files */

static const char TINY[] =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
    "{\"id\":6,\"content\":\"<s>\",\"special\":true},{\"id\":7,\"content\":\"<sep>\",\"special\":true,"
    "\"lstrip\":true,\"rstrip\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\","
    "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\","
    "\"ids\":[6],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
    "\"\xE2\x96\x81\"},\"content\":\" \"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,"
    "\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":false,"
    "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"\xE2\x96\x81\":4,\"\xE2\x96\x81" "ab\":5,\"<s>\":6,"
    "\"<sep>\":7},\"merges\":[\"a b\",[\"\xE2\x96\x81\",\"ab\"]]}}";

static void expect_ids(const lp_tokenizer *t, const char *text, int add_bos, const int32_t *want, size_t nw,
                       const char *what)
{
    int32_t *ids = NULL;
    size_t n = 0;
    lp_error err = {0};
    int rc = lp_tokenizer_encode(t, text, strlen(text), add_bos, &ids, &n, &err);
    int good = rc == 0 && n == nw && (nw == 0 || memcmp(ids, want, nw * sizeof *ids) == 0);
    check(good, "%s", what);
    if (!good) {
        if (rc)
            printf("     error %d: %s\n", rc, err.msg);
        print_ids("got", ids, n);
        print_ids("want", want, nw);
    }
    free(ids);
}

static void test_tiny(void)
{
    lp_tokenizer *t = NULL;
    lp_error err = {0};
    int rc = lp_tokenizer_load_json_mem(TINY, sizeof TINY - 1, "tiny.json", &t, &err);
    check(rc == 0, "tiny tokenizer loads from memory (%s)", rc ? err.msg : "");
    if (rc)
        return;
    check(!strcmp(lp_tokenizer_kind(t), "sentencepiece_bpe"), "tiny: kind sentencepiece_bpe");
    check(lp_tokenizer_n_vocab(t) == 8, "tiny: n_vocab 8");
    check(lp_tokenizer_bos(t) == 6 && lp_tokenizer_default_add_bos(t) == 1, "tiny: BOS from TemplateProcessing");
    expect_ids(t, "ab ab", 0, (const int32_t[]){5, 5}, 2, "tiny: merges by rank, both merge formats");
    expect_ids(t, "ab", -1, (const int32_t[]){6, 5}, 2, "tiny: add_bos=-1 follows the template");
    expect_ids(t, "abc", 0, (const int32_t[]){5, 0}, 2, "tiny: unknown char -> <unk>");
    expect_ids(t, "ccc", 0, (const int32_t[]){4, 0}, 2, "tiny: fuse_unk fuses consecutive unknowns");
    expect_ids(t, "ab<s>ab", 0, (const int32_t[]){5, 6, 5}, 3, "tiny: special token splits the text");
    expect_ids(t, "ab  <sep>  ab", 0, (const int32_t[]){5, 7, 5}, 3, "tiny: lstrip/rstrip eat whitespace");
    expect_ids(t, "", 0, NULL, 0, "tiny: empty text -> no ids");

    int32_t *ids = NULL;
    size_t n = 0;
    rc = lp_tokenizer_encode(t, "ab\xff" "ab", 5, 0, &ids, &n, &err);
    check(rc == LP_EINVAL && strstr(err.msg, "offset 2"), "tiny: invalid UTF-8 rejected with offset (%s)",
          err.msg);
    free(ids);
    const char *bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xe4\xbd", "\xf4\x90\x80\x80", "\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ids = NULL;
        rc = lp_tokenizer_encode(t, bad[i], strlen(bad[i]), 0, &ids, &n, &err);
        check(rc == LP_EINVAL && ids == NULL, "tiny: invalid UTF-8 case %zu rejected", i);
    }

    char *s = lp_tokenizer_decode(t, (const int32_t[]){6, 5, 5}, 3, 1, &err);
    check(s && !strcmp(s, "ab ab"), "tiny: decode skips special, strips one leading space (\"%s\")", s ? s : "");
    free(s);
    s = lp_tokenizer_decode(t, (const int32_t[]){5, 99}, 2, 0, &err);
    check(!s && err.code == LP_EINVAL, "tiny: decode rejects out-of-range id (%s)", err.msg);
    s = lp_tokenizer_decode(t, (const int32_t[]){-1}, 1, 0, &err);
    check(!s, "tiny: decode rejects negative id");
    char buf[16];
    check(lp_tokenizer_token_bytes(t, 5, buf, sizeof buf) == 3 && !memcmp(buf, " ab", 3),
          "tiny: token_bytes maps \xE2\x96\x81 to a space");
    check(lp_tokenizer_token_bytes(t, 8, buf, sizeof buf) < 0 && lp_tokenizer_token_bytes(t, -3, buf, 4) < 0,
          "tiny: token_bytes rejects out-of-range ids");
    check(lp_tokenizer_token_str(t, 8) == NULL && lp_tokenizer_token_id(t, "zz") == -1, "tiny: lookups miss");
    check(lp_tokenizer_is_special(t, 6) && !lp_tokenizer_is_special(t, 5), "tiny: is_special");
    lp_tokenizer_free(t);
}

/* Replace the first occurrence of `from` in TINY with `to`. */
static char *tiny_with(const char *from, const char *to)
{
    const char *p = strstr(TINY, from);
    if (!p)
        return NULL;
    size_t a = (size_t)(p - TINY), fl = strlen(from), tl = strlen(to), rest = strlen(p + fl);
    char *s = malloc(a + tl + rest + 1);
    memcpy(s, TINY, a);
    memcpy(s + a, to, tl);
    memcpy(s + a + tl, p + fl, rest + 1);
    return s;
}

static void expect_load_error(const char *json, size_t len, int code, const char *needle, const char *what)
{
    lp_tokenizer *t = NULL;
    lp_error err = {0};
    int rc = lp_tokenizer_load_json_mem(json, len, "bad.json", &t, &err);
    int good = rc == code && t == NULL && strstr(err.msg, "bad.json") && (!needle || strstr(err.msg, needle));
    check(good, "corrupt: %s -> %s (%s)", what, lp_strerror(code), err.msg);
    if (t) {
        /* must still be safe to use */
        int32_t *ids = NULL;
        size_t n;
        lp_tokenizer_encode(t, "ab", 2, 0, &ids, &n, NULL);
        free(ids);
        lp_tokenizer_free(t);
    }
}

static void test_corrupt(void)
{
    static const struct {
        const char *from, *to;
        int code;
        const char *needle, *what;
    } edits[] = {
        {"\"type\":\"BPE\"", "\"type\":\"WordPiece\"", LP_EUNSUPPORTED, "WordPiece", "model type WordPiece"},
        {"\"type\":\"BPE\"", "\"type\":\"Unigram\"", LP_EUNSUPPORTED, "Unigram", "model type Unigram"},
        {"\"type\":\"BPE\"", "\"type\":7", LP_EFORMAT, NULL, "model type not a string"},
        {"\"merges\":[\"a b\"", "\"merges\":[\"a q\"", LP_EFORMAT, "merge", "merge with unknown token"},
        {"\"merges\":[\"a b\"", "\"merges\":[\"ab\"", LP_EFORMAT, "merge", "merge without a space"},
        {"\"merges\":[\"a b\"", "\"merges\":[\"a b c\"", LP_EFORMAT, "merge", "merge with two spaces"},
        {"\"merges\":[\"a b\"", "\"merges\":[3", LP_EFORMAT, "merge", "merge of wrong type"},
        {"\"merges\":[\"a b\"", "\"merges\":[[\"a\"]", LP_EFORMAT, "merge", "merge pair of one"},
        {"\"merges\":[", "\"merges\":{\"x\":[", LP_EFORMAT, NULL, "merges not an array"},
        {"\"a\":1", "\"a\":-1", LP_EFORMAT, "vocab", "negative id"},
        {"\"a\":1", "\"a\":1.5", LP_EFORMAT, "vocab", "fractional id"},
        {"\"a\":1", "\"a\":1e12", LP_EFORMAT, "vocab", "huge id"},
        {"\"a\":1", "\"a\":\"1\"", LP_EFORMAT, "vocab", "id as string"},
        {"\"a\":1", "\"a\":16000000", LP_EFORMAT, "sparse", "very sparse ids"},
        {"\"vocab\":{", "\"vocab\":[],\"v\":{", LP_EFORMAT, "vocab", "vocab not an object"},
        {"\"model\":{", "\"model\":7,\"x\":{", LP_EFORMAT, "model", "model not an object"},
        {"\"added_tokens\":[", "\"added_tokens\":7,\"x\":[", LP_EFORMAT, "added_tokens", "added_tokens wrong type"},
        {"{\"id\":6,", "{\"id\":\"6\",", LP_EFORMAT, "added_tokens", "added token id wrong type"},
        {"\"type\":\"Prepend\"", "\"type\":\"Lowercase\"", LP_EUNSUPPORTED, "Lowercase", "unknown normalizer"},
        {"\"pre_tokenizer\":null",
         "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}",
         LP_EFORMAT, "regex", "regex that does not compile"},
        {"\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}", LP_EUNSUPPORTED,
         "BertPreTokenizer", "unknown pre-tokenizer"},
        {"\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"}}",
         LP_EFORMAT, "behavior", "Split without behavior"},
        {"\"type\":\"Fuse\"", "\"type\":\"CTC\"", LP_EUNSUPPORTED, "CTC", "unknown decoder"},
        {"\"decoder\":{\"type\"", "\"decoder\":{\"typo\"", LP_EFORMAT, "decoder", "decoder without type"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *s = tiny_with(edits[i].from, edits[i].to);
        if (!s) {
            check(0, "corrupt: edit %zu did not apply", i);
            continue;
        }
        expect_load_error(s, strlen(s), edits[i].code, edits[i].needle, edits[i].what);
        free(s);
    }
    /* truncations at many points */
    int all = 1;
    for (size_t cut = 0; cut < sizeof TINY - 1; cut += 7) {
        lp_tokenizer *t = NULL;
        lp_error err = {0};
        int rc = lp_tokenizer_load_json_mem(TINY, cut, "trunc.json", &t, &err);
        all &= rc == LP_EFORMAT && !t && strstr(err.msg, "trunc.json") != NULL;
        lp_tokenizer_free(t);
    }
    check(all, "corrupt: every truncation -> LP_EFORMAT naming the file");
    expect_load_error("", 0, LP_EFORMAT, "JSON", "empty input");
    expect_load_error("null", 4, LP_EFORMAT, NULL, "JSON null");
    expect_load_error("[]", 2, LP_EFORMAT, NULL, "JSON array");
    expect_load_error("{}", 2, LP_EFORMAT, "model", "empty object");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", 47, LP_EFORMAT, "empty",
                      "empty vocab");
    /* deeply nested Sequence normalizers */
    char deep[4096];
    size_t o = 0;
    o += (size_t)snprintf(deep + o, sizeof deep - o, "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
                                                     "\"normalizer\":");
    for (int d = 0; d < 40; d++)
        o += (size_t)snprintf(deep + o, sizeof deep - o, "{\"type\":\"Sequence\",\"normalizers\":[");
    for (int d = 0; d < 40; d++)
        o += (size_t)snprintf(deep + o, sizeof deep - o, "]}");
    o += (size_t)snprintf(deep + o, sizeof deep - o, "}");
    expect_load_error(deep, o, LP_EFORMAT, "deep", "deeply nested normalizers");

    /* file-based errors */
    lp_tokenizer *t = NULL;
    lp_error err = {0};
    int rc = lp_tokenizer_load_dir("/nonexistent/loupe-dir", &t, &err);
    check(rc == LP_ENOTFOUND && !t, "load_dir on a missing folder -> LP_ENOTFOUND (%s)", err.msg);
    rc = lp_tokenizer_load_json("/nonexistent/tokenizer.json", &t, &err);
    check(rc == LP_ENOTFOUND && strstr(err.msg, "/nonexistent/tokenizer.json"), "load_json on a missing file");

    char dir[] = "/tmp/loupe-tok-XXXXXX";
    if (mkdtemp(dir)) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/tokenizer.json", dir);
        snprintf(p2, sizeof p2, "%s/tokenizer_config.json", dir);
        FILE *f = fopen(p1, "wb");
        fwrite(TINY, 1, sizeof TINY - 1, f);
        fclose(f);
        rc = lp_tokenizer_load_dir(dir, &t, &err);
        check(rc == 0 && lp_tokenizer_bos(t) == 6, "load_dir reads a tokenizer.json from disk");
        lp_tokenizer_free(t);
        t = NULL;
        f = fopen(p2, "wb");
        fputs("{\"add_bos_token\": false, \"eos_token\": {\"content\": \"<sep>\"}}", f);
        fclose(f);
        rc = lp_tokenizer_load_dir(dir, &t, &err);
        check(rc == 0 && lp_tokenizer_default_add_bos(t) == 0 && lp_tokenizer_eos(t) == 7,
              "tokenizer_config.json overrides add_bos_token / eos_token");
        lp_tokenizer_free(t);
        t = NULL;
        f = fopen(p2, "wb");
        fputs("{\"add_bos_token\": tru", f);
        fclose(f);
        rc = lp_tokenizer_load_dir(dir, &t, &err);
        check(rc == LP_EFORMAT && !t && strstr(err.msg, "tokenizer_config.json"),
              "malformed tokenizer_config.json -> LP_EFORMAT naming it (%s)", err.msg);
        remove(p1);
        remove(p2);
        rmdir(dir);
    }
}

/* ------------------------------------------------------------------ tests with shared files */

static cJSON *load_golden(const char *name)
{
    char path[1024];
    size_t n;
    snprintf(path, sizeof path, "%s/%s", LOUPE_TOK_GOLDEN_DIR, name);
    char *s = slurp(path, &n);
    cJSON *j = s ? cJSON_ParseWithLength(s, n) : NULL;
    free(s);
    check(j != NULL, "golden file %s readable", path);
    return j;
}

/* Compare encode/decode with the golden file; returns the number of mismatching cases. */
static int run_golden(const lp_tokenizer *t, const cJSON *g, int add_bos, int roundtrip_skip_special,
                      const char *label)
{
    const cJSON *c;
    int bad_ids = 0, bad_dec = 0, bad_rt = 0, n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases"))
    {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t *ids = NULL;
        size_t nid = 0;
        lp_error err = {0};
        n++;
        int rc = lp_tokenizer_encode(t, text, strlen(text), add_bos, &ids, &nid, &err);
        if (rc || !ids_equal(ids, nid, want)) {
            if (bad_ids++ < 5) {
                printf("     %s ids differ for \"%.60s\" %s\n", label, text, rc ? err.msg : "");
                print_ids("got", ids, nid);
                char *w = cJSON_PrintUnformatted(want);
                printf("     want: %.300s\n", w);
                free(w);
            }
            free(ids);
            continue;
        }
        char *d0 = lp_tokenizer_decode(t, ids, nid, 0, &err);
        char *d1 = lp_tokenizer_decode(t, ids, nid, 1, &err);
        const char *w0 = cJSON_GetObjectItem(c, "decoded")->valuestring;
        const char *w1 = cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring;
        if (!d0 || !d1 || strcmp(d0, w0) || strcmp(d1, w1)) {
            if (bad_dec++ < 5)
                printf("     %s decode differs for \"%.60s\": got \"%.80s\" / \"%.80s\"\n", label, text,
                       d0 ? d0 : "(null)", d1 ? d1 : "(null)");
        }
        const char *rt = roundtrip_skip_special ? d1 : d0;
        if (roundtrip_skip_special < 0)
            rt = text; /* no round-trip check */
        int has_special = strstr(text, "<s>") || strstr(text, "</s>");
        if (!(roundtrip_skip_special && has_special) && (!rt || strcmp(rt, text))) {
            if (bad_rt++ < 5)
                printf("     %s round trip differs for \"%.60s\": \"%.60s\"\n", label, text, rt ? rt : "(null)");
        }
        free(d0);
        free(d1);
        free(ids);
    }
    check(n > 0 && bad_ids == 0, "%s: ids match HF tokenizers on %d texts (%d differ)", label, n, bad_ids);
    check(n > 0 && bad_dec == 0, "%s: decode matches HF decode (%d differ)", label, bad_dec);
    if (roundtrip_skip_special >= 0)
        check(n > 0 && bad_rt == 0, "%s: decode(encode(x)) == x (%d differ)", label, bad_rt);
    return bad_ids;
}

static void throughput(const lp_tokenizer *t, const cJSON *g, const char *label)
{
    size_t cap = 512 * 1024, n = 0;
    char *text = malloc(cap);
    const cJSON *c;
    while (n < 400 * 1024)
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases"))
        {
            const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
            size_t l = strlen(s);
            if (strstr(s, "<|endoftext|>") || strstr(s, "<s>") || n + l + 1 > cap)
                continue;
            memcpy(text + n, s, l);
            n += l;
            text[n++] = '\n';
        }
    int32_t *ids = NULL;
    size_t nid = 0;
    lp_error err = {0};
    double t0 = now();
    int rc = lp_tokenizer_encode(t, text, n, 0, &ids, &nid, &err);
    double dt = now() - t0;
    check(rc == 0, "%s: encode %zu KB of text: %.1f MB/s, %zu tokens (%.2f s)", label, n / 1024,
          (double)n / dt / 1e6, nid, dt);
    free(ids);
    free(text);
}

/* The fuzz seeds are small real tokenizer.json files; HF's ids for them are in seeds_golden.json. */
static void test_seeds(void)
{
    cJSON *g = load_golden("seeds_golden.json");
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItem(g, "tokenizers"))
    {
        char path[1024], label[128];
        snprintf(path, sizeof path, "%s/%s.json", LOUPE_TOK_CORPUS_DIR, k->string);
        snprintf(label, sizeof label, "seed %s", k->string);
        lp_tokenizer *t = NULL;
        lp_error err = {0};
        int rc = lp_tokenizer_load_json(path, &t, &err);
        check(rc == 0, "%s loads %s", label, rc ? err.msg : "");
        if (rc)
            continue;
        cJSON *w = cJSON_CreateObject();
        cJSON_AddItemReferenceToObject(w, "cases", (cJSON *)k);
        run_golden(t, w, -1, strcmp(k->string, "byte_level_pairs") ? -1 : 0, label); /* prefix spaces do not round-trip */
        cJSON_Delete(w);
        lp_tokenizer_free(t);
    }
    cJSON_Delete(g);
}

static void test_gpt2(const char *shared)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tokenizers/gpt2", shared);
    lp_tokenizer *t = NULL;
    lp_error err = {0};
    double t0 = now();
    int rc = lp_tokenizer_load_dir(dir, &t, &err);
    double dt = now() - t0;
    check(rc == 0, "gpt2: load_dir %s in %.1f ms %s", dir, dt * 1e3, rc ? err.msg : "");
    if (rc)
        return;
    check(!strcmp(lp_tokenizer_kind(t), "byte_level_bpe"), "gpt2: kind byte_level_bpe");
    check(lp_tokenizer_n_vocab(t) == 50257, "gpt2: n_vocab 50257");
    check(lp_tokenizer_bos(t) == 50256 && lp_tokenizer_eos(t) == 50256 && !lp_tokenizer_default_add_bos(t),
          "gpt2: bos = eos = 50256, no BOS by default");
    check(lp_tokenizer_is_special(t, 50256) && !lp_tokenizer_is_special(t, 262), "gpt2: is_special");
    expect_ids(t, "Hello world", -1, (const int32_t[]){15496, 995}, 2, "gpt2: \"Hello world\" -> [15496, 995]");
    expect_ids(t, " the", 0, (const int32_t[]){262}, 1, "gpt2: \" the\" -> [262]");
    expect_ids(t, "<|endoftext|>", 0, (const int32_t[]){50256}, 1, "gpt2: <|endoftext|> -> 50256");
    expect_ids(t, "Hello world", 1, (const int32_t[]){50256, 15496, 995}, 3, "gpt2: add_bos=1 prepends 50256");
    const char *s = lp_tokenizer_token_str(t, 262);
    check(s && !strcmp(s, "\xC4\xA0the"), "gpt2: token_str(262) == \"\xC4\xA0the\"");
    check(lp_tokenizer_token_id(t, "\xC4\xA0the") == 262, "gpt2: token_id(\"\xC4\xA0the\") == 262");
    char buf[64];
    int n = lp_tokenizer_token_bytes(t, 262, buf, sizeof buf);
    check(n == 4 && !memcmp(buf, " the", 4), "gpt2: token_bytes(262) == \" the\"");
    n = lp_tokenizer_token_bytes(t, 50256, buf, 4);
    check(n == 13 && !memcmp(buf, "<|en", 4), "gpt2: token_bytes truncates to cap, returns full length");
    int32_t id_nl = lp_tokenizer_token_id(t, "\xC4\x8A"); /* "Ċ" = "\n" */
    check(id_nl >= 0 && lp_tokenizer_token_bytes(t, id_nl, buf, sizeof buf) == 1 && buf[0] == '\n',
          "gpt2: token_bytes of \xC4\x8A is a newline");
    /* a lone byte of a multi-byte char decodes to U+FFFD, as HF's from_utf8_lossy */
    char *d = lp_tokenizer_decode(t, (const int32_t[]){136}, 1, 0, &err);
    check(d && !strcmp(d, "\xEF\xBF\xBD"), "gpt2: decode of a partial UTF-8 byte gives U+FFFD");
    free(d);

    cJSON *g = load_golden("gpt2_golden.json");
    if (g) {
        run_golden(t, g, 0, 0, "gpt2 tokenizer.json");
        throughput(t, g, "gpt2");
    }
    lp_tokenizer_free(t);

    /* same file through load_json */
    char path[1100];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    t0 = now();
    rc = lp_tokenizer_load_json(path, &t, &err);
    dt = now() - t0;
    check(rc == 0, "gpt2: load_json in %.1f ms", dt * 1e3);
    if (!rc && g)
        run_golden(t, g, 0, 0, "gpt2 load_json");
    lp_tokenizer_free(t);
    t = NULL;

    /* vocab.json + merges.txt fallback: a temp folder of symlinks (no data copied) */
    char tmp[] = "/tmp/loupe-gpt2-XXXXXX";
    char *absdir = realpath(dir, NULL);
    if (absdir && mkdtemp(tmp)) {
        const char *files[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
        char src[1100], dst[1100];
        for (int i = 0; i < 4; i++) {
            snprintf(src, sizeof src, "%s/%s", absdir, files[i]);
            snprintf(dst, sizeof dst, "%s/%s", tmp, files[i]);
            if (symlink(src, dst))
                perror("symlink");
        }
        t0 = now();
        rc = lp_tokenizer_load_dir(tmp, &t, &err);
        dt = now() - t0;
        check(rc == 0, "gpt2: vocab.json + merges.txt fallback loads in %.1f ms %s", dt * 1e3, rc ? err.msg : "");
        if (!rc && g) {
            run_golden(t, g, 0, 0, "gpt2 vocab.json+merges.txt");
            check(lp_tokenizer_bos(t) == 50256 && lp_tokenizer_is_special(t, 50256), "gpt2 fallback: specials");
        }
        lp_tokenizer_free(t);
        for (int i = 0; i < 4; i++) {
            snprintf(dst, sizeof dst, "%s/%s", tmp, files[i]);
            unlink(dst);
        }
        rmdir(tmp);
    }
    free(absdir);
    cJSON_Delete(g);
}

static void test_stories(const char *shared)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K", shared);
    lp_tokenizer *t = NULL;
    lp_error err = {0};
    int rc = lp_tokenizer_load_dir(dir, &t, &err);
    check(rc == 0, "stories: load_dir %s %s", dir, rc ? err.msg : "");
    if (rc)
        return;
    check(!strcmp(lp_tokenizer_kind(t), "sentencepiece_bpe"), "stories: kind sentencepiece_bpe");
    check(lp_tokenizer_n_vocab(t) == 512, "stories: n_vocab 512");
    check(lp_tokenizer_bos(t) == 1 && lp_tokenizer_eos(t) == 2 && lp_tokenizer_default_add_bos(t) == 1,
          "stories: bos 1, eos 2, BOS by default");
    char buf[8];
    check(lp_tokenizer_token_bytes(t, 13, buf, sizeof buf) == 1 && buf[0] == '\n', "stories: <0x0A> is one byte");
    cJSON *g = load_golden("stories_golden.json");
    if (g) {
        run_golden(t, g, -1, 1, "stories tokenizer.json");
        throughput(t, g, "stories");
    }
    cJSON_Delete(g);
    lp_tokenizer_free(t);
}

int main(int argc, char **argv)
{
    const char *shared = argc > 1 ? argv[1] : getenv("LOUPE_SHARED");
    if (!shared)
        shared = "../shared";
    test_tiny();
    test_corrupt();
    test_seeds();
    struct stat st;
    if (stat(shared, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("%d ok, %d failed\n", n_ok, n_fail);
        if (n_fail)
            return 1;
        printf("SKIP: %s not found (pass the shared data folder as argv[1] or $LOUPE_SHARED)\n", shared);
        return 77;
    }
    test_gpt2(shared);
    test_stories(shared);
    printf("%d ok, %d failed\n", n_ok, n_fail);
    return n_fail ? 1 : 0;
}
