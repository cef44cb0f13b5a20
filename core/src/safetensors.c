/* safetensors: 8-byte little-endian header length N, N bytes of JSON header, data.
 * The header maps tensor names to {dtype, shape, data_offsets:[begin,end]} relative
 * to the start of the data area; "__metadata__" holds string pairs. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loupe_impl.h"

#define MAX_HEADER (100u << 20)

typedef struct entry {
    char *name;
    lp_dtype dtype;
    int ndim;
    int64_t ne[LP_MAX_DIMS];
    uint64_t begin, end;
} entry;

struct lp_st_file {
    char *path;
    const unsigned char *base; /* whole file */
    size_t size;
    int mapped;
    const unsigned char *data; /* start of the data area */
    uint64_t data_len;
    entry *e;
    int n;
    entry **sorted; /* entries sorted by name, for lookup */
    char **meta_k, **meta_v;
    int n_meta;
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(entry *const *)a)->name, (*(entry *const *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

static int fail(lp_error *err, int code, const char *path, const char *fmt, const char *a, long long b)
{
    char msg[LP_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, fmt, a, b);
    return lp_error_set(err, code, "%s: %s", path, msg);
}

static int parse_entry(lp_st_file *f, entry *en, const cJSON *obj, lp_error *err)
{
    const char *p = f->path;
    if (!cJSON_IsObject(obj))
        return fail(err, LP_EFORMAT, p, "tensor '%s': header entry is not an object%lld", en->name, 0);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(obj, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(obj, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(obj, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return fail(err, LP_EFORMAT, p, "tensor '%s': needs dtype, shape and data_offsets[2]%lld", en->name, 0);
    if (lp_dtype_from_name(dt->valuestring, &en->dtype) != LP_OK)
        return lp_error_set(err, LP_EUNSUPPORTED, "%s: tensor '%s': unsupported dtype '%s'", p, en->name,
                            dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > LP_MAX_DIMS)
        return fail(err, LP_EUNSUPPORTED, p, "tensor '%s': %lld dimensions is too many", en->name, nd);
    en->ndim = nd;
    uint64_t nel = 1;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, sh)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e15 ||
            it->valuedouble != (double)(int64_t)it->valuedouble)
            return fail(err, LP_EFORMAT, p, "tensor '%s': bad shape entry %lld", en->name, i);
        en->ne[i] = (int64_t)it->valuedouble;
        if (en->ne[i] != 0 && nel > UINT64_MAX / 16 / (uint64_t)en->ne[i])
            return fail(err, LP_EFORMAT, p, "tensor '%s': shape too large%lld", en->name, 0);
        nel *= (uint64_t)en->ne[i];
        i++;
    }
    double b0 = cJSON_GetArrayItem(off, 0)->valuedouble, b1 = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) || b0 < 0 ||
        b1 < b0 || b1 > 1.8e19 || b0 != (double)(uint64_t)b0 || b1 != (double)(uint64_t)b1)
        return fail(err, LP_EFORMAT, p, "tensor '%s': bad data_offsets%lld", en->name, 0);
    en->begin = (uint64_t)b0;
    en->end = (uint64_t)b1;
    if (en->end > f->data_len)
        return lp_error_set(err, LP_EFORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the file (data area is %llu bytes)",
                            p, en->name, (unsigned long long)en->begin, (unsigned long long)en->end,
                            (unsigned long long)f->data_len);
    uint64_t want = nel * lp_dtype_size(en->dtype);
    if (want != en->end - en->begin)
        return lp_error_set(err, LP_EFORMAT,
                            "%s: tensor '%s': shape and dtype %s need %llu bytes but data_offsets span %llu", p,
                            en->name, lp_dtype_name(en->dtype), (unsigned long long)want,
                            (unsigned long long)(en->end - en->begin));
    return LP_OK;
}

static int parse(lp_st_file *f, lp_error *err)
{
    const char *p = f->path;
    if (f->size < 8)
        return lp_error_set(err, LP_EFORMAT, "%s: truncated: %zu bytes, not even a header length", p, f->size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | f->base[i];
    if (hl > f->size - 8)
        return lp_error_set(err, LP_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", p,
                            (unsigned long long)hl, f->size);
    if (hl > MAX_HEADER)
        return lp_error_set(err, LP_EFORMAT, "%s: header length %llu is implausibly large", p, (unsigned long long)hl);
    f->data = f->base + 8 + hl;
    f->data_len = f->size - 8 - hl;
    cJSON *root = cJSON_ParseWithLength((const char *)f->base + 8, (size_t)hl);
    if (!root)
        return lp_error_set(err, LP_EFORMAT, "%s: header is not valid JSON", p);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lp_error_set(err, LP_EFORMAT, "%s: header is not a JSON object", p);
    }
    int n = cJSON_GetArraySize(root);
    f->e = calloc((size_t)n + 1, sizeof *f->e);
    f->sorted = calloc((size_t)n + 1, sizeof *f->sorted);
    if (!f->e || !f->sorted) {
        cJSON_Delete(root);
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", p);
    }
    int rc = LP_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if (!it->string) {
            rc = lp_error_set(err, LP_EFORMAT, "%s: header entry without a name", p);
            break;
        }
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                rc = lp_error_set(err, LP_EFORMAT, "%s: __metadata__ is not an object", p);
                break;
            }
            if (f->meta_k) { /* a second one would overflow the first one's arrays */
                rc = lp_error_set(err, LP_EFORMAT, "%s: __metadata__ appears twice in the header", p);
                break;
            }
            int nm = cJSON_GetArraySize(it);
            f->meta_k = calloc((size_t)nm + 1, sizeof(char *));
            f->meta_v = calloc((size_t)nm + 1, sizeof(char *));
            if (!f->meta_k || !f->meta_v) {
                rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", p);
                break;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, it)
            {
                if (!cJSON_IsString(m) || !m->string)
                    continue; /* the format says strings only; ignore others */
                f->meta_k[f->n_meta] = lpi_strdup(m->string);
                f->meta_v[f->n_meta] = lpi_strdup(m->valuestring);
                f->n_meta++;
                if (!f->meta_k[f->n_meta - 1] || !f->meta_v[f->n_meta - 1]) {
                    rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", p);
                    break;
                }
            }
            if (rc)
                break;
            continue;
        }
        entry *en = &f->e[f->n];
        en->name = lpi_strdup(it->string);
        if (!en->name) {
            rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", p);
            break;
        }
        f->n++;
        rc = parse_entry(f, en, it, err);
        if (rc)
            break;
    }
    cJSON_Delete(root);
    if (rc)
        return rc;
    for (int i = 0; i < f->n; i++)
        f->sorted[i] = &f->e[i];
    qsort(f->sorted, (size_t)f->n, sizeof *f->sorted, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->sorted[i]->name, f->sorted[i - 1]->name) == 0)
            return lp_error_set(err, LP_EFORMAT, "%s: tensor '%s' appears twice in the header", p,
                                f->sorted[i]->name);
    /* No two tensors may share bytes. */
    entry **by = malloc(((size_t)f->n + 1) * sizeof *by);
    if (!by)
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", p);
    for (int i = 0; i < f->n; i++)
        by[i] = &f->e[i];
    qsort(by, (size_t)f->n, sizeof *by, cmp_begin);
    /* Compare with the non-empty tensor reaching furthest so far, not just the previous
     * one: an empty tensor in between must not hide an overlap. */
    const entry *far = NULL;
    for (int i = 0; i < f->n; i++) {
        if (by[i]->end == by[i]->begin)
            continue;
        if (far && by[i]->begin < far->end) {
            rc = lp_error_set(err, LP_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data area", p, far->name,
                              by[i]->name);
            break;
        }
        if (!far || by[i]->end > far->end)
            far = by[i];
    }
    free(by);
    return rc;
}

static int open_common(lp_st_file *f, lp_st_file **out, lp_error *err)
{
    int rc = parse(f, err);
    if (rc) {
        lp_st_close(f);
        *out = NULL;
        return rc;
    }
    *out = f;
    return LP_OK;
}

int lp_st_open(const char *path, lp_st_file **out, lp_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lp_error_set(err, errno == ENOENT ? LP_ENOTFOUND : LP_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lp_error_set(err, LP_EIO, "%s: not a regular file", path);
    }
    lp_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
    }
    f->path = lpi_strdup(path);
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            lp_st_close(f);
            return lp_error_set(err, LP_EIO, "%s: cannot map: %s", path, strerror(e));
        }
        f->base = m;
        f->mapped = 1;
    } else {
        f->base = (const unsigned char *)"";
    }
    close(fd);
    return open_common(f, out, err);
}

int lp_st_open_mem(const void *data, size_t len, const char *name, lp_st_file **out, lp_error *err)
{
    *out = NULL;
    lp_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", name);
    f->path = lpi_strdup(name ? name : "<memory>");
    f->base = len ? data : (const unsigned char *)"";
    f->size = len;
    return open_common(f, out, err);
}

void lp_st_close(lp_st_file *f)
{
    if (!f)
        return;
    if (f->mapped)
        munmap((void *)f->base, f->size);
    for (int i = 0; i < f->n; i++)
        free(f->e[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_k[i]);
        free(f->meta_v[i]);
    }
    free(f->meta_k);
    free(f->meta_v);
    free(f->e);
    free(f->sorted);
    free(f->path);
    free(f);
}

int lp_st_count(const lp_st_file *f) { return f->n; }
const char *lp_st_name(const lp_st_file *f, int i) { return f->e[i].name; }
const char *lp_st_path(const lp_st_file *f) { return f->path; }

int lp_st_find(const lp_st_file *f, const char *name)
{
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(f->sorted[mid]->name, name);
        if (c == 0)
            return (int)(f->sorted[mid] - f->e);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

lp_tensor lp_st_tensor(const lp_st_file *f, int i)
{
    const entry *en = &f->e[i];
    return lp_tensor_make(en->dtype, (void *)(f->data + en->begin), en->ndim, en->ne);
}

const char *lp_st_metadata(const lp_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_k[i], key) == 0)
            return f->meta_v[i];
    return NULL;
}

void lp_st_release(lp_st_file *f, int i)
{
    if (!f->mapped)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)(f->data + f->e[i].begin), b = (uintptr_t)(f->data + f->e[i].end);
    uintptr_t a2 = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), b2 = b & ~((uintptr_t)pg - 1);
    if (b2 > a2)
        madvise((void *)a2, b2 - a2, MADV_DONTNEED);
}

/* ---------------- writer ---------------- */

typedef struct wentry {
    char *name;
    lp_dtype dtype;
    int ndim;
    int64_t ne[LP_MAX_DIMS];
    void *bytes;
    size_t nbytes;
} wentry;

struct lp_st_writer {
    wentry *e;
    int n, cap;
    cJSON *meta;
};

lp_st_writer *lp_st_writer_new(void) { return calloc(1, sizeof(lp_st_writer)); }

void lp_st_writer_free(lp_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].bytes);
    }
    free(w->e);
    cJSON_Delete(w->meta);
    free(w);
}

int lp_st_writer_set_metadata(lp_st_writer *w, const char *key, const char *value, lp_error *err)
{
    if (!w->meta && !(w->meta = cJSON_CreateObject()))
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!cJSON_AddStringToObject(w->meta, key, value))
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    return LP_OK;
}

int lp_st_writer_add(lp_st_writer *w, const char *name, const lp_tensor *t, lp_dtype as, lp_error *err)
{
    if (as != t->dtype && as != LP_F32 && as != LP_F16 && as != LP_BF16)
        return lp_error_set(err, LP_EUNSUPPORTED, "tensor '%s': cannot write as %s", name, lp_dtype_name(as));
    if (strcmp(name, "__metadata__") == 0 || !*name)
        return lp_error_set(err, LP_EINVAL, "tensor name '%s' is reserved", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return lp_error_set(err, LP_EINVAL, "tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        wentry *ne = realloc(w->e, (size_t)nc * sizeof *ne);
        if (!ne)
            return lp_error_set(err, LP_ENOMEM, "out of memory");
        w->e = ne;
        w->cap = nc;
    }
    int64_t nel = lp_tensor_nelem(t);
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->dtype = as;
    e->ndim = t->ndim;
    memcpy(e->ne, t->ne, sizeof e->ne);
    e->nbytes = (size_t)nel * lp_dtype_size(as);
    e->bytes = malloc(e->nbytes ? e->nbytes : 1);
    e->name = lpi_strdup(name);
    if (!e->bytes || !e->name) {
        free(e->bytes);
        free(e->name);
        return lp_error_set(err, LP_ENOMEM, "out of memory for tensor '%s'", name);
    }
    if (as == t->dtype && lp_tensor_is_contiguous(t)) {
        memcpy(e->bytes, t->data, e->nbytes);
    } else if (as == t->dtype) { /* strided copy of same dtype */
        size_t es = lp_dtype_size(as);
        int64_t idx[LP_MAX_DIMS] = {0};
        for (int64_t k = 0; k < nel; k++) {
            memcpy((char *)e->bytes + (size_t)k * es, lp_tensor_ptr(t, idx), es);
            for (int i = t->ndim - 1; i >= 0; i--) {
                if (++idx[i] < t->ne[i])
                    break;
                idx[i] = 0;
            }
        }
    } else {
        float *tmp = as == LP_F32 ? e->bytes : malloc((size_t)nel * 4 + 4);
        if (!tmp) {
            free(e->bytes);
            free(e->name);
            return lp_error_set(err, LP_ENOMEM, "out of memory for tensor '%s'", name);
        }
        lp_tensor_to_f32(t, tmp);
        if (as != LP_F32) {
            uint16_t *o = e->bytes;
            for (int64_t k = 0; k < nel; k++)
                o[k] = as == LP_F16 ? lp_f32_to_f16(tmp[k]) : lp_f32_to_bf16(tmp[k]);
            free(tmp);
        }
    }
    w->n++;
    return LP_OK;
}

int lp_st_writer_finish(lp_st_writer *w, const char *path, lp_error *err)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
    if (w->meta)
        cJSON_AddItemReferenceToObject(root, "__metadata__", w->meta);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        cJSON *o = cJSON_AddObjectToObject(root, w->e[i].name);
        cJSON_AddStringToObject(o, "dtype", lp_dtype_name(w->e[i].dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < w->e[i].ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)w->e[i].ne[d]));
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += w->e[i].nbytes;
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json)
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
    size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7;
    char *hdr = malloc(8 + padded);
    if (!hdr) {
        free(json);
        return lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < 8; i++)
        hdr[i] = (char)((padded >> (8 * i)) & 0xff);
    memcpy(hdr + 8, json, jl);
    memset(hdr + 8 + jl, ' ', padded - jl);
    free(json);
    int np = w->n + 1;
    const void **parts = malloc((size_t)np * sizeof *parts);
    size_t *lens = malloc((size_t)np * sizeof *lens);
    int rc;
    if (!parts || !lens) {
        rc = lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
    } else {
        parts[0] = hdr;
        lens[0] = 8 + padded;
        for (int i = 0; i < w->n; i++) {
            parts[i + 1] = w->e[i].bytes;
            lens[i + 1] = w->e[i].nbytes;
        }
        rc = lpi_write_atomic(path, parts, lens, np, err);
    }
    free(parts);
    free(lens);
    free(hdr);
    return rc;
}
