/* sae — small utilities: errors, atomic files, random numbers, a pthread fan-out, and the
 * subset of safetensors the plugin needs (plugins do not link the core, so it carries its
 * own reader: header validated, data memory-mapped; writer: temp file + rename). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sae_impl.h"

sae_sgemm_fn sae_sgemm;
int sae_threads = 2;

int sae_err(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, SAE_ERR_MAX, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- threads ---- */
typedef struct par_arg {
    void (*fn)(int, int, void *);
    int part, n;
    void *user;
} par_arg;

static void *par_main(void *p)
{
    par_arg *a = p;
    a->fn(a->part, a->n, a->user);
    return NULL;
}

void sae_parallel(int n_parts, void (*fn)(int part, int n_parts, void *user), void *user)
{
    if (n_parts <= 1) {
        fn(0, 1, user);
        return;
    }
    pthread_t th[64];
    par_arg a[64];
    if (n_parts > 64)
        n_parts = 64;
    int started[64] = {0};
    for (int i = 1; i < n_parts; i++) {
        a[i] = (par_arg){fn, i, n_parts, user};
        started[i] = pthread_create(&th[i], NULL, par_main, &a[i]) == 0;
        if (!started[i])
            fn(i, n_parts, user);
    }
    fn(0, n_parts, user);
    for (int i = 1; i < n_parts; i++)
        if (started[i])
            pthread_join(th[i], NULL);
}

/* ---- rng ---- */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sae_rng_seed(sae_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sae_rng_next(sae_rng *r)
{
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

double sae_rng_uniform(sae_rng *r)
{
    return (double)(sae_rng_next(r) >> 11) * 0x1.0p-53;
}

double sae_rng_normal(sae_rng *r)
{
    double u = sae_rng_uniform(r), v = sae_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

/* ---- files ---- */
int sae_write_atomic(const char *path, const void *data, size_t len, char *err)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return sae_err(err, SAE_EIO, "%s: cannot create (%s)", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return sae_err(err, SAE_EIO, "%s: write failed (%s)", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return sae_err(err, SAE_EIO, "%s: fsync/close failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sae_err(err, SAE_EIO, "%s: rename failed (%s)", path, strerror(e));
    }
    return 0;
}

char *sae_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t r = s && n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!s)
        return NULL;
    s[r] = 0;
    if (len)
        *len = r;
    return s;
}

int sae_mkdirs(const char *path, char *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return sae_err(err, SAE_EIO, "%s: cannot create folder (%s)", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return sae_err(err, SAE_EIO, "%s: cannot create folder (%s)", buf, strerror(errno));
    return 0;
}

/* ---- half floats ---- */
float sae_f16_to_f32(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0)
            u = s;
        else { /* subnormal */
            float f = ldexpf((float)m, -24);
            return s ? -f : f;
        }
    } else if (e == 31)
        u = s | 0x7f800000u | (m << 13);
    else
        u = s | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sae_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000;
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t m = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff)
        return (uint16_t)(s | 0x7c00 | (m ? 0x200 : 0));
    if (e >= 31)
        return (uint16_t)(s | 0x7c00);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)s;
        m |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(s | half);
    }
    uint32_t half = s | ((uint32_t)e << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++;
    return (uint16_t)half;
}

float sae_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- safetensors reading ---- */
static const char *const dtype_names[] = {"F32", "F16", "BF16", "F64", "I32", "I64"};
static const int dtype_size[] = {4, 2, 2, 8, 4, 8};

int64_t st_nelem(const st_entry *e)
{
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++)
        n *= e->ne[i];
    return n;
}

void st_close(st_file *f)
{
    if (f->map)
        munmap(f->map, f->size);
    free(f->e);
    free(f->meta_json);
    memset(f, 0, sizeof *f);
}

int st_open(const char *path, st_file *f, char *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return sae_err(err, errno == ENOENT ? SAE_ENOTFOUND : SAE_EIO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 8) {
        close(fd);
        return sae_err(err, SAE_EFORMAT, "%s: not a safetensors file (too short)", path);
    }
    f->size = (size_t)sb.st_size;
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return sae_err(err, SAE_EIO, "%s: mmap failed", path);
    }
    uint64_t hl;
    memcpy(&hl, f->map, 8);
    if (hl > f->size - 8 || hl > (1u << 26)) {
        st_close(f);
        return sae_err(err, SAE_EFORMAT, "%s: header length %llu does not fit the file", path, (unsigned long long)hl);
    }
    cJSON *j = cJSON_ParseWithLength((const char *)f->map + 8, (size_t)hl);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        st_close(f);
        return sae_err(err, SAE_EFORMAT, "%s: header is not a JSON object", path);
    }
    const char *data = (const char *)f->map + 8 + hl;
    size_t data_len = f->size - 8 - (size_t)hl;
    int cap = cJSON_GetArraySize(j);
    f->e = calloc((size_t)cap + 1, sizeof *f->e);
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, j)
    {
        if (!strcmp(it->string, "__metadata__")) {
            f->meta_json = cJSON_PrintUnformatted(it);
            continue;
        }
        st_entry *e = &f->e[f->n];
        snprintf(e->name, sizeof e->name, "%s", it->string);
        const cJSON *dt = cJSON_GetObjectItem(it, "dtype"), *sh = cJSON_GetObjectItem(it, "shape"),
                    *off = cJSON_GetObjectItem(it, "data_offsets");
        e->dtype = -1;
        for (int d = 0; cJSON_IsString(dt) && d < 6; d++)
            if (!strcmp(dt->valuestring, dtype_names[d]))
                e->dtype = d;
        if (e->dtype < 0 || !cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > 4 || !cJSON_IsArray(off) ||
            cJSON_GetArraySize(off) != 2) {
            rc = sae_err(err, SAE_EFORMAT, "%s: tensor '%s': bad or unsupported dtype/shape/offsets", path, e->name);
            break;
        }
        e->ndim = cJSON_GetArraySize(sh);
        for (int d = 0; d < e->ndim; d++) {
            double v = cJSON_GetArrayItem(sh, d)->valuedouble;
            if (v < 0 || v > 1e12) {
                rc = sae_err(err, SAE_EFORMAT, "%s: tensor '%s': bad shape", path, e->name);
                break;
            }
            e->ne[d] = (int64_t)v;
        }
        if (rc)
            break;
        double a = cJSON_GetArrayItem(off, 0)->valuedouble, b = cJSON_GetArrayItem(off, 1)->valuedouble;
        if (a < 0 || b < a || b > (double)data_len || (int64_t)(b - a) != st_nelem(e) * dtype_size[e->dtype]) {
            rc = sae_err(err, SAE_EFORMAT, "%s: tensor '%s': data offsets do not match its shape or the file", path,
                         e->name);
            break;
        }
        e->data = data + (size_t)a;
        f->n++;
    }
    cJSON_Delete(j);
    if (rc)
        st_close(f);
    return rc;
}

const st_entry *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->e[i].name, name))
            return &f->e[i];
    return NULL;
}

void st_to_f32(const st_entry *e, float *out)
{
    int64_t n = st_nelem(e);
    const unsigned char *p = e->data;
    for (int64_t i = 0; i < n; i++) {
        switch (e->dtype) {
        case ST_F32:
            memcpy(&out[i], p + 4 * i, 4);
            break;
        case ST_F16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = sae_f16_to_f32(h);
        } break;
        case ST_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = sae_bf16_to_f32(h);
        } break;
        case ST_F64: {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        } break;
        case ST_I32: {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            out[i] = (float)v;
        } break;
        default: {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            out[i] = (float)v;
        } break;
        }
    }
}

/* ---- safetensors writing ---- */
typedef struct w_entry {
    char name[128];
    int src, as, ndim;
    int64_t ne[4];
    const void *data;
} w_entry;

struct st_writer {
    w_entry *e;
    int n, cap;
    cJSON *meta;
};

st_writer *st_writer_new(void)
{
    return calloc(1, sizeof(st_writer));
}

void st_writer_free(st_writer *w)
{
    if (!w)
        return;
    free(w->e);
    cJSON_Delete(w->meta);
    free(w);
}

int st_writer_add(st_writer *w, const char *name, int src, const void *data, int ndim, const int64_t *ne, int as)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        w_entry *e = realloc(w->e, sizeof *e * (size_t)cap);
        if (!e)
            return SAE_ENOMEM;
        w->e = e;
        w->cap = cap;
    }
    w_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->src = src;
    e->as = as;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->ne[i] = ne[i];
    e->data = data;
    return 0;
}

int st_writer_meta(st_writer *w, const char *key, const char *value)
{
    if (!w->meta)
        w->meta = cJSON_CreateObject();
    cJSON_DeleteItemFromObject(w->meta, key);
    cJSON_AddStringToObject(w->meta, key, value);
    return 0;
}

int st_writer_finish(st_writer *w, const char *path, char *err)
{
    cJSON *h = cJSON_CreateObject();
    if (w->meta)
        cJSON_AddItemReferenceToObject(h, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        w_entry *e = &w->e[i];
        cJSON *o = cJSON_AddObjectToObject(h, e->name);
        cJSON_AddStringToObject(o, "dtype", dtype_names[e->as]);
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->ne[d]));
            n *= e->ne[d];
        }
        size_t bytes = (size_t)n * (size_t)dtype_size[e->as];
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *hj = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!hj)
        return sae_err(err, SAE_ENOMEM, "out of memory");
    size_t hl = strlen(hj), pad = (8 - hl % 8) % 8;
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(hj);
        return sae_err(err, SAE_EIO, "%s: cannot create (%s)", tmp, strerror(errno));
    }
    uint64_t hl8 = hl + pad;
    int ok = fwrite(&hl8, 8, 1, f) == 1 && fwrite(hj, 1, hl, f) == hl && fwrite("        ", 1, pad, f) == pad;
    free(hj);
    enum { CH = 1 << 14 };
    static __thread unsigned char buf[CH * 4];
    for (int i = 0; ok && i < w->n; i++) {
        const w_entry *e = &w->e[i];
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++)
            n *= e->ne[d];
        if (e->src == e->as) {
            ok = fwrite(e->data, (size_t)dtype_size[e->as], (size_t)n, f) == (size_t)n || n == 0;
            continue;
        }
        const float *src = e->data; /* conversions are from f32 */
        for (int64_t s = 0; ok && s < n; s += CH) {
            int64_t m = n - s < CH ? n - s : CH;
            for (int64_t j = 0; j < m; j++) {
                if (e->as == ST_F16) {
                    uint16_t v = sae_f32_to_f16(src[s + j]);
                    memcpy(buf + 2 * j, &v, 2);
                } else if (e->as == ST_BF16) {
                    uint32_t u;
                    memcpy(&u, &src[s + j], 4);
                    uint16_t v = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
                    memcpy(buf + 2 * j, &v, 2);
                } else {
                    memcpy(buf + 4 * j, &src[s + j], 4);
                }
            }
            ok = fwrite(buf, (size_t)dtype_size[e->as], (size_t)m, f) == (size_t)m;
        }
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        unlink(tmp);
        return sae_err(err, SAE_EIO, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return sae_err(err, SAE_EIO, "%s: rename failed (%s)", path, strerror(errno));
    }
    return 0;
}
