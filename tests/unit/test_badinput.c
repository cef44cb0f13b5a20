/* Bad input to the safetensors parser, the model loader, the tokenizer and the forward
 * pass: every case must give the right LP_E* code and a one-line message naming the
 * file and the problem, never a crash or an out-of-bounds read (run under ASan/UBSan).
 * Also: hub-cache resolution, f16/sharded loading, writer/npy round trips.
 *
 * usage: test_badinput FIXTURES_DIR  (tests/golden/fixtures) */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/check.h"
#include "loupe/loupe.h"

static const char *fixtures;
static char tmp[512];

/* ---------- small file helpers ---------- */

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        b[n] = 0;
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        printf("FAIL cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void copy_file(const char *src, const char *dst)
{
    size_t n;
    unsigned char *b = read_all(src, &n);
    if (!b) {
        printf("FAIL cannot read %s\n", src);
        exit(1);
    }
    write_all(dst, b, n);
    free(b);
}

/* Copy the regular files of fixture `name` into dst (created). */
static void copy_fixture(const char *name, const char *dst)
{
    char src[1024], a[2048], b[2048];
    snprintf(src, sizeof src, "%s/%s", fixtures, name);
    mkdir(dst, 0755);
    DIR *d = opendir(src);
    if (!d) {
        printf("FAIL cannot open fixture %s\n", src);
        exit(1);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(a, sizeof a, "%s/%s", src, de->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, de->d_name);
        copy_file(a, b);
    }
    closedir(d);
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        char p[2048];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Write a safetensors file: 8-byte length, header text as given, data. */
static void st_write(const char *path, const char *header, const void *data, size_t dlen)
{
    size_t hl = strlen(header);
    unsigned char *b = malloc(8 + hl + dlen + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(((uint64_t)hl >> (8 * i)) & 0xff);
    memcpy(b + 8, header, hl);
    if (dlen)
        memcpy(b + 8 + hl, data, dlen);
    write_all(path, b, 8 + hl + dlen);
    free(b);
}

/* Rewrite the safetensors file at path: parse its header, let mut() change it, write
 * back with the same data area plus `extra` zero bytes appended. */
static void st_mutate(const char *path, void (*mut)(cJSON *root, uint64_t dlen), size_t extra)
{
    size_t n;
    unsigned char *b = read_all(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | b[i];
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    uint64_t dlen = n - 8 - hl;
    mut(root, dlen);
    char *h = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    unsigned char *data = calloc(1, dlen + extra + 1);
    memcpy(data, b + 8 + hl, dlen);
    st_write(path, h, data, dlen + extra);
    free(h);
    free(data);
    free(b);
}

/* rc must be `code` and the message must mention every non-NULL needle. */
static void expect(int rc, int code, const lp_error *err, const char *what, const char *n1, const char *n2)
{
    int good = rc == code && (!n1 || strstr(err->msg, n1)) && (!n2 || strstr(err->msg, n2)) &&
               !strchr(err->msg, '\n') && err->msg[0];
    check(good, "%s -> %s (got %s: %s)", what, lp_strerror(code), lp_strerror(rc), err->msg);
}

/* ---------- safetensors parser ---------- */

static void st_case(const char *file, const char *header, const void *data, size_t dlen, int code,
                    const char *needle, const char *what)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmp, file);
    st_write(p, header, data, dlen);
    lp_st_file *f = (lp_st_file *)1;
    lp_error err = {0};
    int rc = lp_st_open(p, &f, &err);
    expect(rc, code, &err, what, file, needle);
    check(f == NULL, "%s: no handle on failure", what);
    lp_st_close(f);
    /* the in-memory parser must agree */
    size_t n;
    unsigned char *b = read_all(p, &n);
    lp_error e2 = {0};
    lp_st_file *g = NULL;
    int rc2 = lp_st_open_mem(b, n, file, &g, &e2);
    check(rc2 == rc && g == NULL, "%s: lp_st_open_mem agrees (%s)", what, e2.msg);
    lp_st_close(g);
    free(b);
}

static void test_safetensors(void)
{
    char p[1024];
    lp_error err = {0};
    lp_st_file *f = NULL;
    float data[16] = {0};

    snprintf(p, sizeof p, "%s/empty.safetensors", tmp);
    write_all(p, "", 0);
    expect(lp_st_open(p, &f, &err), LP_EFORMAT, &err, "empty file", "empty.safetensors", "truncated");
    snprintf(p, sizeof p, "%s/five.safetensors", tmp);
    write_all(p, "\x10\0\0\0\0", 5);
    expect(lp_st_open(p, &f, &err), LP_EFORMAT, &err, "5-byte file", "five.safetensors", "truncated");
    snprintf(p, sizeof p, "%s/nothere.safetensors", tmp);
    expect(lp_st_open(p, &f, &err), LP_ENOTFOUND, &err, "missing file", "nothere.safetensors", NULL);

    /* header cut short: header length says 100, only 20 bytes follow */
    {
        unsigned char b[28] = {100, 0, 0, 0, 0, 0, 0, 0};
        memcpy(b + 8, "{\"a\":{\"dtype\":\"F32\",", 20);
        snprintf(p, sizeof p, "%s/cut.safetensors", tmp);
        write_all(p, b, sizeof b);
        expect(lp_st_open(p, &f, &err), LP_EFORMAT, &err, "header cut short", "cut.safetensors", "past the end");
        unsigned char big[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
        snprintf(p, sizeof p, "%s/huge.safetensors", tmp);
        write_all(p, big, sizeof big);
        expect(lp_st_open(p, &f, &err), LP_EFORMAT, &err, "header length 2^63", "huge.safetensors", "past the end");
    }

    st_case("badjson.safetensors", "{\"a\": {\"dtype\": ", NULL, 0, LP_EFORMAT, "not valid JSON", "malformed JSON");
    st_case("array.safetensors", "[1, 2, 3]", NULL, 0, LP_EFORMAT, "not a JSON object", "header is an array");
    st_case("string.safetensors", "\"hello\"", NULL, 0, LP_EFORMAT, "not a JSON object", "header is a string");
    st_case("nodtype.safetensors", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8, LP_EFORMAT,
            "dtype", "entry missing dtype");
    st_case("noshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", data, 8, LP_EFORMAT,
            "shape", "entry missing shape");
    st_case("nooffsets.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", data, 8, LP_EFORMAT,
            "data_offsets", "entry missing data_offsets");
    st_case("offsets3.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", data, 8,
            LP_EFORMAT, "data_offsets", "data_offsets with 3 entries");
    st_case("offstr.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", data,
            8, LP_EFORMAT, "data_offsets", "data_offsets are strings");
    st_case("notobj.safetensors", "{\"a\":[1,2]}", NULL, 0, LP_EFORMAT, "not an object", "entry not an object");
    st_case("dtype.safetensors", "{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8,
            LP_EUNSUPPORTED, "F128", "unknown dtype");
    st_case("dtypenum.safetensors", "{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8,
            LP_EFORMAT, "dtype", "dtype is a number");
    st_case("negshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 8,
            LP_EFORMAT, "shape", "negative shape");
    st_case("fracshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", data, 8,
            LP_EFORMAT, "shape", "fractional shape");
    st_case("bigshape.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000000000000,1000000000000000],\"data_offsets\":[0,8]}}",
            data, 8, LP_EFORMAT, "shape", "shape product overflows");
    st_case("dims.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
            data, 8, LP_EUNSUPPORTED, "dimensions", "too many dimensions");
    st_case("overlap.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
            data, 24, LP_EFORMAT, "overlap", "overlapping data offsets");
    st_case("overlap2.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
            "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[20,28]}}",
            data, 32, LP_EFORMAT, "overlap", "overlap hidden behind an empty tensor");
    st_case("range.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[250],\"data_offsets\":[0,1000]}}", data, 16,
            LP_EFORMAT, "past the end", "out-of-range data offsets");
    st_case("range2.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e30,1e30]}}", data, 16,
            LP_EFORMAT, "data_offsets", "data offsets 1e30");
    st_case("backwards.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", data, 16,
            LP_EFORMAT, "data_offsets", "data offsets backwards");
    st_case("negoff.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", data, 16,
            LP_EFORMAT, "data_offsets", "negative data offset");
    st_case("size.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", data, 16,
            LP_EFORMAT, "12 bytes", "dtype/shape/byte-size mismatch");
    st_case("size16.safetensors", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", data, 16,
            LP_EFORMAT, "8 bytes", "f16 byte-size mismatch");
    st_case("dup.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
            data, 16, LP_EFORMAT, "twice", "duplicate tensor names");
    st_case("dupmeta.safetensors",
            "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}}", NULL, 0,
            LP_EFORMAT, "__metadata__", "duplicate __metadata__");
    st_case("metanotobj.safetensors", "{\"__metadata__\":[\"x\"]}", NULL, 0, LP_EFORMAT, "__metadata__",
            "__metadata__ not an object");

    /* every possible truncation of a valid file fails cleanly (or parses a prefix that
     * happens to be valid) and never reads past the buffer */
    {
        const char *h = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}";
        snprintf(p, sizeof p, "%s/whole.safetensors", tmp);
        st_write(p, h, data, 16);
        size_t n;
        unsigned char *whole = read_all(p, &n);
        int all = 1;
        for (size_t cut = 0; cut < n; cut++) {
            unsigned char *b = malloc(cut ? cut : 1);
            memcpy(b, whole, cut);
            lp_st_file *g = NULL;
            lp_error e = {0};
            int rc = lp_st_open_mem(b, cut, "cut", &g, &e);
            all &= rc == LP_EFORMAT && !g && strstr(e.msg, "cut") != NULL;
            lp_st_close(g);
            free(b);
        }
        check(all, "all %zu truncations of a valid file give LP_EFORMAT", n);
        lp_st_file *g = NULL;
        int rc = lp_st_open_mem(whole, n, "whole", &g, &err);
        check(rc == 0 && lp_st_count(g) == 2, "the untruncated file opens");
        lp_st_close(g);
        free(whole);
    }
}

/* ---------- writer / npy round trips ---------- */

static void test_roundtrip(void)
{
    char p[1024];
    lp_error err = {0};
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)i * 0.25f - 1.5f; /* exactly representable in f16 and bf16 */
    int64_t ne[2] = {3, 4};
    lp_tensor t = lp_tensor_make(LP_F32, v, 2, ne);
    lp_st_writer *w = lp_st_writer_new();
    int rc = lp_st_writer_add(w, "f32", &t, LP_F32, &err);
    rc |= lp_st_writer_add(w, "f16", &t, LP_F16, &err);
    rc |= lp_st_writer_add(w, "bf16", &t, LP_BF16, &err);
    lp_tensor tt = lp_tensor_select(&t, 1, 2); /* strided column view [3] */
    rc |= lp_st_writer_add(w, "col", &tt, LP_F32, &err);
    rc |= lp_st_writer_set_metadata(w, "format", "pt", &err);
    rc |= lp_st_writer_set_metadata(w, "note", "héllo \"quoted\"", &err);
    rc |= lp_st_writer_set_metadata(w, "format", "loupe", &err); /* replaces */
    check(lp_st_writer_add(w, "f32", &t, LP_F32, &err) == LP_EINVAL, "writer rejects a duplicate name");
    check(lp_st_writer_add(w, "__metadata__", &t, LP_F32, &err) == LP_EINVAL, "writer rejects __metadata__");
    snprintf(p, sizeof p, "%s/rt.safetensors", tmp);
    rc |= lp_st_writer_finish(w, p, &err);
    lp_st_writer_free(w);
    check(rc == 0, "writer writes f32/f16/bf16 + metadata (%s)", err.msg);
    lp_st_file *f = NULL;
    rc = lp_st_open(p, &f, &err);
    check(rc == 0, "written file opens (%s)", err.msg);
    if (rc)
        return;
    check(lp_st_count(f) == 4, "4 tensors");
    const char *names[3] = {"f32", "f16", "bf16"};
    lp_dtype dts[3] = {LP_F32, LP_F16, LP_BF16};
    for (int k = 0; k < 3; k++) {
        int i = lp_st_find(f, names[k]);
        lp_tensor r = i >= 0 ? lp_st_tensor(f, i) : (lp_tensor){0};
        float back[12] = {0};
        if (i >= 0)
            lp_tensor_to_f32(&r, back);
        check(i >= 0 && r.dtype == dts[k] && r.ndim == 2 && r.ne[0] == 3 && r.ne[1] == 4 &&
                  memcmp(back, v, sizeof v) == 0,
              "%s round-trips exactly", names[k]);
    }
    int i = lp_st_find(f, "col");
    lp_tensor c = lp_st_tensor(f, i);
    float col[3];
    lp_tensor_to_f32(&c, col);
    check(c.ndim == 1 && c.ne[0] == 3 && col[0] == v[2] && col[1] == v[6] && col[2] == v[10],
          "strided view written contiguous");
    const char *m1 = lp_st_metadata(f, "format"), *m2 = lp_st_metadata(f, "note");
    check(m1 && !strcmp(m1, "loupe") && m2 && !strcmp(m2, "héllo \"quoted\"") && !lp_st_metadata(f, "x"),
          "metadata round-trips");
    lp_st_close(f);

    /* npy */
    snprintf(p, sizeof p, "%s/rt.npy", tmp);
    rc = lp_npy_save(p, &t, &err);
    lp_tensor r;
    void *buf = NULL;
    if (!rc)
        rc = lp_npy_load(p, &r, &buf, &err);
    check(rc == 0 && r.dtype == LP_F32 && r.ndim == 2 && r.ne[0] == 3 && r.ne[1] == 4 &&
              memcmp(r.data, v, sizeof v) == 0,
          "npy f32 round-trips (%s)", rc ? err.msg : "");
    free(buf);
    buf = NULL;
    rc = lp_npy_save(p, &tt, &err);
    if (!rc)
        rc = lp_npy_load(p, &r, &buf, &err);
    check(rc == 0 && r.ndim == 1 && r.ne[0] == 3 && ((float *)r.data)[1] == v[6], "npy strided view round-trips");
    free(buf);
    buf = NULL;
    int32_t iv[5] = {1, -2, 3, 99999, -7};
    int64_t n5 = 5;
    lp_tensor ti = lp_tensor_make(LP_I32, iv, 1, &n5);
    rc = lp_npy_save(p, &ti, &err);
    if (!rc)
        rc = lp_npy_load(p, &r, &buf, &err);
    check(rc == 0 && r.dtype == LP_I32 && r.ne[0] == 5 && memcmp(r.data, iv, sizeof iv) == 0,
          "npy i32 round-trips (%s)", rc ? err.msg : "");
    free(buf);
    buf = NULL;
    /* corrupt npy files */
    write_all(p, "\x93NUMPY", 6);
    rc = lp_npy_load(p, &r, &buf, &err);
    expect(rc, LP_EFORMAT, &err, "truncated .npy", "rt.npy", NULL);
    free(buf);
    buf = NULL;
    static const char badhdr[] = "\x93NUMPY\x01\x00\x16\x00{'descr': '<c8', 'fo}\n";
    write_all(p, badhdr, sizeof badhdr - 1);
    rc = lp_npy_load(p, &r, &buf, &err);
    check(rc < 0 && strstr(err.msg, "rt.npy"), "bad .npy header rejected (%s)", err.msg);
    free(buf);
}

/* ---------- model loader ---------- */

static int load_dir(const char *dir, lp_model **m, lp_error *err)
{
    *m = NULL;
    int rc = lp_model_load(dir, m, err);
    if (rc && *m)
        printf("FAIL handle returned on failure\n");
    if (!rc && !*m)
        printf("FAIL no handle on success\n");
    return rc;
}

static void model_case(const char *fixture, const char *tag, void (*corrupt)(const char *dir), int code,
                       const char *n1, const char *n2, const char *what)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", tmp, tag);
    copy_fixture(fixture, dir);
    corrupt(dir);
    lp_model *m = NULL;
    lp_error err = {0};
    int rc = load_dir(dir, &m, &err);
    expect(rc, code, &err, what, n1, n2);
    lp_model_free(m);
    rm_rf(dir);
}

static void set_file(const char *dir, const char *name, const char *text)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_all(p, text, strlen(text));
}

static void mut_drop(cJSON *root, uint64_t dlen) { cJSON_DeleteItemFromObjectCaseSensitive(root, "transformer.h.0.ln_1.weight"); }
static void mut_extra(cJSON *root, uint64_t dlen)
{
    cJSON *o = cJSON_AddObjectToObject(root, "transformer.h.0.mystery.weight");
    cJSON_AddStringToObject(o, "dtype", "F32");
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    cJSON_AddItemToArray(sh, cJSON_CreateNumber(4));
    cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)dlen));
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)dlen + 16));
}
static void mut_shape(cJSON *root, uint64_t dlen)
{
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "transformer.h.0.attn.c_proj.weight"), "shape");
    cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(32));
    cJSON_ReplaceItemInArray(sh, 1, cJSON_CreateNumber(128));
}
static void mut_dtype(cJSON *root, uint64_t dlen)
{
    /* an I32 tensor where floats belong (same byte size) */
    cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "transformer.h.0.ln_1.bias");
    cJSON_ReplaceItemInObjectCaseSensitive(o, "dtype", cJSON_CreateString("I32"));
}
static void mut_overlap(cJSON *root, uint64_t dlen)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "transformer.h.0.ln_1.bias");
    cJSON *of = cJSON_GetObjectItemCaseSensitive(o, "data_offsets");
    cJSON_ReplaceItemInArray(of, 0, cJSON_CreateNumber(0));
    cJSON_ReplaceItemInArray(of, 1, cJSON_CreateNumber(256));
}

#define ST_MUT(fn, extra)                                                                                           \
    static void c_##fn(const char *dir)                                                                           \
    {                                                                                                             \
        char p[1200];                                                                                             \
        snprintf(p, sizeof p, "%s/model.safetensors", dir);                                                       \
        st_mutate(p, fn, extra);                                                                                  \
    }
ST_MUT(mut_drop, 0)
ST_MUT(mut_extra, 16)
ST_MUT(mut_shape, 0)
ST_MUT(mut_dtype, 0)
ST_MUT(mut_overlap, 0)

static void c_truncate(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (truncate(p, 5000) != 0)
        printf("FAIL truncate\n");
}
static void c_bert(const char *dir) { set_file(dir, "config.json", "{\"model_type\": \"bert\", \"hidden_size\": 64}"); }
static void c_badjson(const char *dir) { set_file(dir, "config.json", "{\"model_type\": \"gpt2\", \"n_embd\": 64,"); }
static void c_cfgarray(const char *dir) { set_file(dir, "config.json", "[\"gpt2\"]"); }
static void c_notype(const char *dir) { set_file(dir, "config.json", "{\"n_embd\": 64}"); }
static void c_badfield(const char *dir) { set_file(dir, "config.json", "{\"model_type\": \"gpt2\", \"n_embd\": \"64\"}"); }
static void c_hugefield(const char *dir)
{
    set_file(dir, "config.json", "{\"model_type\": \"gpt2\", \"n_embd\": 1000000000, \"n_head\": 1, \"bos_token_id\": 1e300}");
}
static void c_llama_missing(const char *dir)
{
    set_file(dir, "config.json", "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                                 "\"intermediate_size\": 128, \"vocab_size\": 160}");
}
static void c_neox_pct(const char *dir)
{
    set_file(dir, "config.json", "{\"model_type\": \"gpt_neox\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                                 "\"num_attention_heads\": 4, \"intermediate_size\": 256, \"rotary_pct\": 1e300}");
}
static void c_noconfig(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
}
static void c_noweights(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
}
static void c_tok_unigram(const char *dir)
{
    set_file(dir, "tokenizer.json", "{\"version\":\"1.0\",\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}");
}
static void c_tok_garbage(const char *dir) { set_file(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", "); }
static void c_missing_shard(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    unlink(p);
}
static void c_bad_index(const char *dir) { set_file(dir, "model.safetensors.index.json", "{\"weight_map\": [1]}"); }
static void c_evil_index(const char *dir)
{
    set_file(dir, "model.safetensors.index.json", "{\"weight_map\": {\"h.0.attn.bias\": \"../../etc/passwd\"}}");
}

static void test_model_errors(void)
{
    model_case("gpt2", "trunc", c_truncate, LP_EFORMAT, "model.safetensors", "past the end", "truncated weights");
    model_case("gpt2", "drop", c_mut_drop, LP_ENOTFOUND, "model.safetensors", "transformer.h.0.ln_1.weight",
               "missing tensor");
    model_case("gpt2", "extra", c_mut_extra, LP_EFORMAT, "model.safetensors", "mystery", "unexpected extra tensor");
    model_case("gpt2", "shape", c_mut_shape, LP_EFORMAT, "model.safetensors", "c_proj.weight", "tensor with wrong shape");
    model_case("gpt2", "dtype", c_mut_dtype, LP_EUNSUPPORTED, "model.safetensors", "ln_1.bias", "integer weight tensor");
    model_case("gpt2", "overlap", c_mut_overlap, LP_EFORMAT, "model.safetensors", "overlap", "overlapping weights");
    model_case("gpt2", "bert", c_bert, LP_EUNSUPPORTED, "config.json", "bert", "unsupported model_type");
    model_case("gpt2", "badjson", c_badjson, LP_EFORMAT, "config.json", "JSON", "malformed config.json");
    model_case("gpt2", "cfgarray", c_cfgarray, LP_EFORMAT, "config.json", "object", "config.json not an object");
    model_case("gpt2", "notype", c_notype, LP_EFORMAT, "config.json", "model_type", "config.json without model_type");
    model_case("gpt2", "badfield", c_badfield, LP_EFORMAT, "config.json", "n_embd", "config field of the wrong type");
    model_case("gpt2", "hugefield", c_hugefield, LP_EFORMAT, "config.json", NULL, "implausible config sizes");
    model_case("llama", "llamamissing", c_llama_missing, LP_EFORMAT, "config.json", "hidden_size",
               "missing required config field");
    model_case("neox", "neoxpct", c_neox_pct, LP_EFORMAT, "config.json", "rotary_pct", "rotary_pct out of range");
    model_case("gpt2", "noconfig", c_noconfig, LP_ENOTFOUND, "noconfig", "config.json", "folder without config.json");
    model_case("gpt2", "noweights", c_noweights, LP_ENOTFOUND, "noweights", "model.safetensors", "folder without weights");
    model_case("gpt2", "tokunigram", c_tok_unigram, LP_EUNSUPPORTED, "tokenizer.json", "Unigram",
               "tokenizer.json of unknown model type");
    model_case("gpt2", "tokgarbage", c_tok_garbage, LP_EFORMAT, "tokenizer.json", NULL, "malformed tokenizer.json");
    model_case("gpt2_quirks", "noshard", c_missing_shard, LP_ENOTFOUND, "model-00002-of-00002.safetensors", NULL,
               "index points to a missing shard");
    model_case("gpt2_quirks", "badindex", c_bad_index, LP_EFORMAT, "model.safetensors.index.json", "weight_map",
               "index without weight_map object");
    model_case("gpt2_quirks", "evilindex", c_evil_index, LP_EFORMAT, "model.safetensors.index.json", "shard",
               "index with a path-traversing shard name");
}

/* ---------- the forward pass, tokenizer ---------- */

static void test_run_and_tokenizer(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/gpt2", fixtures);
    lp_model *m = NULL;
    lp_error err = {0};
    int rc = load_dir(dir, &m, &err);
    check(rc == 0, "gpt2 fixture loads (%s)", err.msg);
    if (rc)
        return;
    const lp_config *c = lp_model_config(m);
    int32_t bad[3][3] = {{1, 2, 99999}, {1, -1, 2}, {1, 2, 160}};
    float *logits = calloc((size_t)3 * (size_t)c->d_vocab, sizeof(float));
    for (int k = 0; k < 3; k++) {
        lp_batch b = {bad[k], 1, 3, NULL};
        lp_run_opts o = lp_run_opts_default();
        o.logits = LP_LOGITS_ALL;
        o.logits_out = logits;
        lp_error e = {0};
        rc = lp_model_run(m, &b, &o, &e);
        char id[32];
        snprintf(id, sizeof id, "%d", bad[k][k == 1 ? 1 : 2]);
        expect(rc, LP_EINVAL, &e, "out-of-range token id to lp_model_run", id, NULL);
    }
    int32_t good[3] = {1, 2, 159};
    lp_batch b = {good, 1, 3, NULL};
    lp_run_opts o = lp_run_opts_default();
    o.logits = LP_LOGITS_ALL;
    o.logits_out = logits;
    rc = lp_model_run(m, &b, &o, &err);
    check(rc == 0 && isfinite(logits[0]), "a valid run still works afterwards");
    b.n_pos = 0;
    rc = lp_model_run(m, &b, &o, &err);
    check(rc == LP_EINVAL, "empty batch rejected (%s)", err.msg);
    int32_t *many = calloc(100, sizeof *many);
    lp_batch bl = {many, 1, 100, NULL}; /* n_positions is 64 */
    float *big = calloc((size_t)100 * (size_t)c->d_vocab, sizeof(float));
    o.logits_out = big;
    rc = lp_model_run(m, &bl, &o, &err);
    check(rc == LP_EINVAL, "sequence longer than n_ctx rejected (%s)", err.msg);
    free(big);
    free(many);
    free(logits);
    check(lp_model_tokenizer(m) == NULL, "fixture has no tokenizer");
    lp_tensor w;
    check(lp_model_weight(m, "blocks.7.attn.W_Q", &w, &err) < 0, "weight of a layer past the end -> error (%s)",
          err.msg);
    check(lp_model_weight(m, "blocks.-1.ln1.w", &w, &err) < 0, "negative layer -> error");
    check(lp_model_weight(m, "nonsense", &w, &err) == LP_ENOTFOUND, "unknown weight name -> LP_ENOTFOUND");
    lp_model_free(m);

    static const char tj[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"c\":3},"
                             "\"merges\":[\"a b\"]}}";
    lp_tokenizer *t = NULL;
    rc = lp_tokenizer_load_json_mem(tj, sizeof tj - 1, "tiny.json", &t, &err);
    check(rc == 0, "tiny tokenizer loads (%s)", err.msg);
    if (!rc) {
        int32_t *ids = NULL;
        size_t n = 0;
        static const char *bads[] = {"ab\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf", "ab\xf4\x90\x80\x80"};
        for (size_t k = 0; k < sizeof bads / sizeof *bads; k++) {
            lp_error e = {0};
            rc = lp_tokenizer_encode(t, bads[k], strlen(bads[k]), 0, &ids, &n, &e);
            check(rc == LP_EINVAL && strstr(e.msg, "UTF-8"), "non-UTF-8 text #%zu -> LP_EINVAL (%s)", k, e.msg);
            free(ids);
            ids = NULL;
        }
        int32_t oob[2] = {0, 12345};
        lp_error e = {0};
        char *s = lp_tokenizer_decode(t, oob, 2, 0, &e);
        check(s == NULL && e.code < 0, "decode of out-of-range id fails (%s)", e.msg);
        free(s);
        char buf[8];
        check(lp_tokenizer_token_bytes(t, -1, buf, sizeof buf) < 0 && lp_tokenizer_token_str(t, 99) == NULL,
              "token_bytes/token_str reject bad ids");
        lp_tokenizer_free(t);
    }
}

/* ---------- f16 / sharded / hub cache ---------- */

static void test_loading(void)
{
    char dir[1024];
    lp_error err = {0};
    lp_model *m = NULL;
    snprintf(dir, sizeof dir, "%s/gpt2_quirks", fixtures);
    int rc = load_dir(dir, &m, &err);
    check(rc == 0 && lp_model_n_files(m) == 2, "sharded f16 gpt2_quirks loads from 2 files (%s)", err.msg);
    lp_model_free(m);
    snprintf(dir, sizeof dir, "%s/llama_tied_bf16", fixtures);
    rc = load_dir(dir, &m, &err);
    check(rc == 0, "bf16 llama_tied_bf16 loads (%s)", err.msg);
    if (!rc) {
        lp_tensor w;
        rc = lp_model_weight(m, "W_E", &w, &err);
        check(rc == 0 && w.dtype == LP_F32, "bf16 weights are converted to f32");
    }
    lp_model_free(m);

    /* hub cache */
    char hub[1024], p[2048], snap[2048];
    snprintf(hub, sizeof hub, "%s/hub", tmp);
    mkdir(hub, 0755);
    snprintf(p, sizeof p, "%s/models--org--name", hub);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/models--org--name/refs", hub);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/models--org--name/refs/main", hub);
    write_all(p, "0123abcd\n", 9);
    snprintf(p, sizeof p, "%s/models--org--name/snapshots", hub);
    mkdir(p, 0755);
    snprintf(snap, sizeof snap, "%s/0123abcd", p);
    copy_fixture("gpt2", snap);
    snprintf(p, sizeof p, "%s/models--org--name/snapshots/ffff0000", hub);
    mkdir(p, 0755); /* a stale snapshot that refs/main does not name */
    setenv("HF_HUB_CACHE", hub, 1);
    rc = load_dir("org/name", &m, &err);
    check(rc == 0 && m && strstr(lp_model_dir(m), "0123abcd"), "hub id org/name resolves via refs/main (%s)",
          rc ? err.msg : lp_model_dir(m));
    check(m && lp_model_config(m)->n_layers == 2, "hub model has 2 layers");
    lp_model_free(m);
    rc = load_dir("org/missing", &m, &err);
    expect(rc, LP_ENOTFOUND, &err, "missing hub id", "org/missing", "models--org--missing");
    check(strstr(err.msg, hub) != NULL, "message lists the hub folder it looked in");
    rc = load_dir("nosuchmodel", &m, &err);
    expect(rc, LP_ENOTFOUND, &err, "missing bare model name", "nosuchmodel", "looked in");
    /* no refs/main: a single snapshot is accepted */
    snprintf(p, sizeof p, "%s/models--org--name/refs/main", hub);
    unlink(p);
    rc = load_dir("org/name", &m, &err);
    check(rc == 0, "no refs/main: the one snapshot with a config.json is used (%s)", rc ? err.msg : "");
    lp_model_free(m);
    m = NULL;
    snprintf(snap, sizeof snap, "%s/models--org--name/snapshots/ffff0000", hub);
    copy_fixture("llama", snap);
    rc = load_dir("org/name", &m, &err);
    expect(rc, LP_ENOTFOUND, &err, "no refs/main and two snapshots", "several snapshots", NULL);
    unsetenv("HF_HUB_CACHE");
    rc = lp_model_load("", &m, &err);
    check(rc == LP_EINVAL && !m, "empty spec -> LP_EINVAL");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    const char *td = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/loupe-badinput-XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_safetensors();
    test_roundtrip();
    test_model_errors();
    test_run_and_tokenizer();
    test_loading();
    rm_rf(tmp);
    return check_done();
}
