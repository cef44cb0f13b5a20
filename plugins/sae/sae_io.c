/* sae — SAE files: SAELens folders (cfg.json + sae_weights.safetensors, the 6.x config and
 * the older flat one), Gemma Scope params.npz, and saving in the SAELens 6.x layout. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef SAE_HAVE_ZLIB
#include <zlib.h>
#endif

#include "sae_impl.h"

static const char *const arch_names[] = {"standard", "gated", "jumprelu", "topk"};
const char *sae_arch_name(sae_arch a)
{
    return arch_names[a];
}

int sae_alloc(sae *s, int d_in, int d_sae, sae_arch arch, char *err)
{
    memset(s, 0, sizeof *s);
    s->d_in = d_in;
    s->d_sae = d_sae;
    s->arch = arch;
    s->apply_b_dec_to_input = 1;
    s->hook_head_index = -1;
    s->prepend_bos = 1;
    snprintf(s->normalize, sizeof s->normalize, "none");
    snprintf(s->dtype, sizeof s->dtype, "float32");
    s->owns = 1;
    size_t de = (size_t)d_in * (size_t)d_sae;
    s->W_enc = calloc(de, sizeof(float));
    s->W_dec = calloc(de, sizeof(float));
    s->b_enc = calloc((size_t)d_sae, sizeof(float));
    s->b_dec = calloc((size_t)d_in, sizeof(float));
    if (arch == SAE_JUMPRELU)
        s->threshold = calloc((size_t)d_sae, sizeof(float));
    if (arch == SAE_GATED) {
        s->b_mag = calloc((size_t)d_sae, sizeof(float));
        s->r_mag = calloc((size_t)d_sae, sizeof(float));
    }
    if (!s->W_enc || !s->W_dec || !s->b_enc || !s->b_dec || (arch == SAE_JUMPRELU && !s->threshold) ||
        (arch == SAE_GATED && (!s->b_mag || !s->r_mag))) {
        sae_free(s);
        return sae_err(err, SAE_ENOMEM, "out of memory for an SAE of %d x %d", d_in, d_sae);
    }
    return 0;
}

void sae_free(sae *s)
{
    if (s->owns) {
        free(s->W_enc);
        free(s->W_dec);
        free(s->b_enc);
        free(s->b_dec);
        free(s->threshold);
        free(s->b_mag);
        free(s->r_mag);
    }
    free(s->sparsity);
    st_close(&s->mapped);
    memset(s, 0, sizeof *s);
}

/* ---- config ---- */
static int jint(const cJSON *o, const char *k, int def)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valueint : cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static void jstr(const cJSON *o, const char *k, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    if (cJSON_IsString(v))
        snprintf(out, cap, "%s", v->valuestring);
}

static int parse_cfg(const char *path, const char *text, sae *s, char *err)
{
    cJSON *j = cJSON_Parse(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sae_err(err, SAE_EFORMAT, "%s: not a JSON object", path);
    }
    int rc = 0;
    s->d_in = jint(j, "d_in", 0);
    s->d_sae = jint(j, "d_sae", 0);
    if (s->d_in <= 0 || s->d_sae <= 0) {
        cJSON_Delete(j);
        return sae_err(err, SAE_EFORMAT, "%s: d_in and d_sae must be positive integers", path);
    }
    s->apply_b_dec_to_input = jint(j, "apply_b_dec_to_input", 1);
    snprintf(s->dtype, sizeof s->dtype, "float32");
    jstr(j, "dtype", s->dtype, sizeof s->dtype);
    const cJSON *na = cJSON_GetObjectItem(j, "normalize_activations");
    snprintf(s->normalize, sizeof s->normalize, "none");
    if (cJSON_IsBool(na)) /* the older boolean */
        snprintf(s->normalize, sizeof s->normalize, "%s", cJSON_IsTrue(na) ? "expected_average_only_in" : "none");
    else if (cJSON_IsString(na))
        snprintf(s->normalize, sizeof s->normalize, "%s", na->valuestring);
    if (strcmp(s->normalize, "none") && strcmp(s->normalize, "expected_average_only_in") &&
        strcmp(s->normalize, "constant_norm_rescale") && strcmp(s->normalize, "layer_norm"))
        rc = sae_err(err, SAE_EUNSUPPORTED, "%s: normalize_activations '%s' is not supported", path, s->normalize);

    /* architecture: 6.x 'architecture', older 'activation_fn_str' / 'activation_fn' */
    char arch[32] = "standard", act[32] = "relu";
    jstr(j, "architecture", arch, sizeof arch);
    jstr(j, "activation_fn_str", act, sizeof act);
    jstr(j, "activation_fn", act, sizeof act);
    s->k = jint(j, "k", 0);
    const cJSON *kw = cJSON_GetObjectItem(j, "activation_fn_kwargs");
    if (!strcmp(act, "topk") && cJSON_IsObject(kw) && jint(kw, "k", 0) > 0) {
        snprintf(arch, sizeof arch, "topk");
        s->k = jint(kw, "k", 0);
    }
    if (!strcmp(arch, "standard"))
        s->arch = SAE_STANDARD;
    else if (!strcmp(arch, "gated"))
        s->arch = SAE_GATED;
    else if (!strcmp(arch, "jumprelu"))
        s->arch = SAE_JUMPRELU;
    else if (!strcmp(arch, "topk")) {
        s->arch = SAE_TOPK;
        if (s->k <= 0 || s->k > s->d_sae)
            rc = sae_err(err, SAE_EFORMAT, "%s: topk architecture needs k in 1..d_sae (got %d)", path, s->k);
        if (jint(j, "rescale_acts_by_decoder_norm", 0))
            rc = sae_err(err, SAE_EUNSUPPORTED, "%s: rescale_acts_by_decoder_norm is not supported (fold it first)",
                         path);
    } else
        rc = sae_err(err, SAE_EUNSUPPORTED, "%s: unknown architecture '%s' (known: standard, gated, jumprelu, topk)",
                     path, arch);
    if (!rc && strcmp(act, "relu") && strcmp(act, "topk"))
        rc = sae_err(err, SAE_EUNSUPPORTED, "%s: activation function '%s' is not supported", path, act);
    /* metadata: 6.x block, else the flat keys */
    const cJSON *md = cJSON_GetObjectItem(j, "metadata");
    if (!cJSON_IsObject(md))
        md = j;
    s->hook_name[0] = 0;
    jstr(md, "hook_name", s->hook_name, sizeof s->hook_name);
    if (!s->hook_name[0])
        jstr(md, "hook_point", s->hook_name, sizeof s->hook_name);
    if (!s->hook_name[0])
        jstr(j, "hook_point", s->hook_name, sizeof s->hook_name);
    const cJSON *hi = cJSON_GetObjectItem(md, "hook_head_index");
    if (!hi)
        hi = cJSON_GetObjectItem(md, "hook_point_head_index");
    s->hook_head_index = cJSON_IsNumber(hi) ? hi->valueint : -1;
    jstr(md, "model_name", s->model_name, sizeof s->model_name);
    s->prepend_bos = jint(md, "prepend_bos", 1);
    s->context_size = jint(md, "context_size", 0);
    cJSON_Delete(j);
    return rc;
}

/* Take tensor `name` from f into *dst (in place when f32 and `inplace`, else converted). */
static int take(st_file *f, const char *path, const char *name, int64_t n0, int64_t n1, float **dst, int inplace,
                char *err)
{
    const st_entry *e = st_find(f, name);
    if (!e)
        return sae_err(err, SAE_ENOTFOUND, "%s: missing tensor '%s'", path, name);
    int64_t want = n1 ? n0 * n1 : n0;
    int shape_ok = n1 ? (e->ndim == 2 && e->ne[0] == n0 && e->ne[1] == n1) : (st_nelem(e) == n0 && e->ndim <= 1);
    if (!shape_ok) {
        if (n1)
            return sae_err(err, SAE_EFORMAT, "%s: tensor '%s' should be [%lld, %lld] (from cfg.json)", path, name,
                           (long long)n0, (long long)n1);
        return sae_err(err, SAE_EFORMAT, "%s: tensor '%s' should be [%lld] (from cfg.json)", path, name, (long long)n0);
    }
    if (inplace && e->dtype == ST_F32 && ((uintptr_t)e->data & 3) == 0) {
        *dst = (float *)e->data;
        return 0;
    }
    *dst = malloc(sizeof(float) * (size_t)want);
    if (!*dst)
        return sae_err(err, SAE_ENOMEM, "out of memory");
    st_to_f32(e, *dst);
    return 0;
}

/* In-place loading keeps pointers into the mapping for f32 tensors; to free uniformly we
 * copy everything that was converted into owned buffers: simplest is "all in place" or
 * "all owned". We use all-owned unless every tensor we need is aligned f32. */
static int load_safetensors(const char *dir, sae *s, char *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    st_file f;
    int rc = st_open(path, &f, err);
    if (rc)
        return rc;
    const char *names[] = {"W_enc",
                           "W_dec",
                           "b_dec",
                           s->arch == SAE_GATED ? "b_gate" : "b_enc",
                           s->arch == SAE_JUMPRELU ? "threshold" : NULL,
                           s->arch == SAE_GATED ? "b_mag" : NULL,
                           s->arch == SAE_GATED ? "r_mag" : NULL};
    int inplace = 1;
    for (int i = 0; i < 7; i++) {
        if (!names[i])
            continue;
        const st_entry *e = st_find(&f, names[i]);
        if (!e) {
            rc = sae_err(err, SAE_ENOTFOUND, "%s: missing tensor '%s' (architecture %s)", path, names[i],
                         sae_arch_name(s->arch));
            st_close(&f);
            return rc;
        }
        if (e->dtype != ST_F32 || ((uintptr_t)e->data & 3))
            inplace = 0;
    }
    const st_entry *sf = st_find(&f, "scaling_factor");
    if (sf)
        inplace = 0; /* folded into W_dec below */
    s->owns = !inplace;
    int64_t D = s->d_in, S = s->d_sae;
    rc = take(&f, path, "W_enc", D, S, &s->W_enc, inplace, err);
    if (!rc)
        rc = take(&f, path, "W_dec", S, D, &s->W_dec, inplace, err);
    if (!rc)
        rc = take(&f, path, "b_dec", D, 0, &s->b_dec, inplace, err);
    if (!rc)
        rc = take(&f, path, names[3], S, 0, &s->b_enc, inplace, err);
    if (!rc && s->arch == SAE_JUMPRELU)
        rc = take(&f, path, "threshold", S, 0, &s->threshold, inplace, err);
    if (!rc && s->arch == SAE_GATED)
        rc = take(&f, path, "b_mag", S, 0, &s->b_mag, inplace, err);
    if (!rc && s->arch == SAE_GATED)
        rc = take(&f, path, "r_mag", S, 0, &s->r_mag, inplace, err);
    if (!rc && sf) { /* older finetuning_scaling_factor: f·scale·W_dec */
        if (st_nelem(sf) != S)
            rc = sae_err(err, SAE_EFORMAT, "%s: scaling_factor should be [%lld]", path, (long long)S);
        else {
            float *sc = malloc(sizeof(float) * (size_t)S);
            st_to_f32(sf, sc);
            for (int64_t i = 0; i < S; i++)
                for (int64_t d = 0; d < D; d++)
                    s->W_dec[i * D + d] *= sc[i];
            free(sc);
        }
    }
    if (inplace)
        s->mapped = f;
    else
        st_close(&f);
    if (rc)
        return rc;
    /* optional sparsity.safetensors */
    snprintf(path, sizeof path, "%s/sparsity.safetensors", dir);
    st_file sp;
    char e2[SAE_ERR_MAX];
    if (st_open(path, &sp, e2) == 0) {
        const st_entry *e = st_find(&sp, "sparsity");
        if (e && st_nelem(e) == S) {
            s->sparsity = malloc(sizeof(float) * (size_t)S);
            if (s->sparsity)
                st_to_f32(e, s->sparsity);
        }
        st_close(&sp);
    }
    return 0;
}

/* ---- Gemma Scope params.npz: a zip of .npy files (stored or deflated) ---- */
static uint32_t rd32(const unsigned char *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* Parse one .npy image into f32 [n] with shape check. */
static int npy_parse(const unsigned char *p, size_t len, const char *what, int ndim, const int64_t *ne, float **out,
                     char *err)
{
    if (len < 10 || memcmp(p, "\x93NUMPY", 6))
        return sae_err(err, SAE_EFORMAT, "%s: not a .npy", what);
    size_t hl = p[6] == 1 ? rd16(p + 8) : rd32(p + 8), ho = p[6] == 1 ? 10 : 12;
    if (ho + hl > len)
        return sae_err(err, SAE_EFORMAT, "%s: truncated .npy header", what);
    char hdr[1024];
    size_t n = hl < sizeof hdr - 1 ? hl : sizeof hdr - 1;
    memcpy(hdr, p + ho, n);
    hdr[n] = 0;
    int es = strstr(hdr, "'<f4'") ? 4 : strstr(hdr, "'<f2'") ? 2 : strstr(hdr, "'<f8'") ? 8 : 0;
    if (!es || strstr(hdr, "'fortran_order': True"))
        return sae_err(err, SAE_EUNSUPPORTED, "%s: only little-endian float, C-order .npy is read", what);
    const char *sh = strstr(hdr, "'shape': (");
    int64_t got[4] = {0};
    int gd = 0;
    for (const char *q = sh ? sh + 10 : ""; *q && *q != ')' && gd < 4;) {
        char *end;
        long long v = strtoll(q, &end, 10);
        if (end == q) {
            q++;
            continue;
        }
        got[gd++] = v;
        q = end;
    }
    int64_t total = 1;
    for (int i = 0; i < ndim; i++)
        total *= ne[i];
    int ok = gd == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = got[i] == ne[i];
    if (!ok)
        return sae_err(err, SAE_EFORMAT, "%s: shape does not match d_in/d_sae", what);
    if (ho + hl + (size_t)total * (size_t)es > len)
        return sae_err(err, SAE_EFORMAT, "%s: truncated data", what);
    float *o = malloc(sizeof(float) * (size_t)total);
    if (!o)
        return sae_err(err, SAE_ENOMEM, "out of memory");
    const unsigned char *d = p + ho + hl;
    for (int64_t i = 0; i < total; i++) {
        if (es == 4)
            memcpy(&o[i], d + 4 * i, 4);
        else if (es == 2)
            o[i] = sae_f16_to_f32(rd16(d + 2 * i));
        else {
            double v;
            memcpy(&v, d + 8 * i, 8);
            o[i] = (float)v;
        }
    }
    *out = o;
    return 0;
}

typedef struct zmember {
    char name[64];
    const unsigned char *data;
    size_t csize, usize;
    int method;
} zmember;

/* Members from the central directory. */
static int zip_list(const unsigned char *z, size_t len, zmember *m, int cap, int *n)
{
    *n = 0;
    if (len < 22)
        return -1;
    size_t eo = len - 22;
    while (eo > 0 && rd32(z + eo) != 0x06054b50)
        eo--;
    if (rd32(z + eo) != 0x06054b50)
        return -1;
    int cnt = rd16(z + eo + 10);
    size_t co = rd32(z + eo + 16);
    for (int i = 0; i < cnt && *n < cap; i++) {
        if (co + 46 > len || rd32(z + co) != 0x02014b50)
            return -1;
        int method = rd16(z + co + 10);
        size_t cs = rd32(z + co + 20), us = rd32(z + co + 24);
        int fnl = rd16(z + co + 28), exl = rd16(z + co + 30), cml = rd16(z + co + 32);
        size_t lo = rd32(z + co + 42);
        if (cs == 0xffffffffu || us == 0xffffffffu || lo == 0xffffffffu) { /* zip64 extra field */
            const unsigned char *x = z + co + 46 + fnl, *xe = x + exl;
            while (x + 4 <= xe) {
                int id = rd16(x), sz = rd16(x + 2);
                if (id == 1) {
                    const unsigned char *v = x + 4;
                    if (us == 0xffffffffu) {
                        us = (size_t)rd32(v) | (size_t)rd32(v + 4) << 32;
                        v += 8;
                    }
                    if (cs == 0xffffffffu) {
                        cs = (size_t)rd32(v) | (size_t)rd32(v + 4) << 32;
                        v += 8;
                    }
                    if (lo == 0xffffffffu) {
                        lo = (size_t)rd32(v) | (size_t)rd32(v + 4) << 32;
                    }
                }
                x += 4 + sz;
            }
        }
        zmember *e = &m[*n];
        int nl = fnl < 63 ? fnl : 63;
        memcpy(e->name, z + co + 46, (size_t)nl);
        e->name[nl] = 0;
        if (lo + 30 > len || rd32(z + lo) != 0x04034b50)
            return -1;
        size_t doff = lo + 30 + rd16(z + lo + 26) + rd16(z + lo + 28);
        if (doff + cs > len)
            return -1;
        e->data = z + doff;
        e->csize = cs;
        e->usize = us;
        e->method = method;
        (*n)++;
        co += 46 + (size_t)fnl + (size_t)exl + (size_t)cml;
    }
    return 0;
}

static int load_npz(const char *path, sae *s, char *err)
{
    size_t len;
    unsigned char *z = (unsigned char *)sae_slurp(path, &len);
    if (!z)
        return sae_err(err, SAE_ENOTFOUND, "%s: cannot read", path);
    zmember m[16];
    int n, rc = 0;
    if (zip_list(z, len, m, 16, &n)) {
        free(z);
        return sae_err(err, SAE_EFORMAT, "%s: not a zip (.npz) file", path);
    }
    /* sizes from W_enc's header */
    int64_t D = 0, S = 0;
    const char *want[] = {"W_enc.npy", "W_dec.npy", "b_enc.npy", "b_dec.npy", "threshold.npy"};
    unsigned char *img[5] = {0};
    size_t ilen[5] = {0};
    for (int w = 0; w < 5 && !rc; w++) {
        int found = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(m[i].name, want[w]))
                found = i;
        if (found < 0) {
            if (w == 4)
                break; /* threshold is optional: standard ReLU then */
            rc = sae_err(err, SAE_ENOTFOUND, "%s: missing %s", path, want[w]);
            break;
        }
        zmember *e = &m[found];
        img[w] = malloc(e->usize + 1);
        if (!img[w]) {
            rc = sae_err(err, SAE_ENOMEM, "out of memory");
            break;
        }
        ilen[w] = e->usize;
        if (e->method == 0)
            memcpy(img[w], e->data, e->usize);
#ifdef SAE_HAVE_ZLIB
        else if (e->method == 8) {
            z_stream zs;
            memset(&zs, 0, sizeof zs);
            inflateInit2(&zs, -15);
            zs.next_in = (unsigned char *)e->data;
            zs.avail_in = (uInt)e->csize;
            zs.next_out = img[w];
            zs.avail_out = (uInt)e->usize;
            int zr = inflate(&zs, Z_FINISH);
            inflateEnd(&zs);
            if (zr != Z_STREAM_END)
                rc = sae_err(err, SAE_EFORMAT, "%s: %s: bad deflate data", path, want[w]);
        }
#endif
        else
            rc = sae_err(err, SAE_EUNSUPPORTED, "%s: %s: zip method %d", path, want[w], e->method);
    }
    if (!rc) { /* read W_enc's shape */
        const char *sh = strstr((const char *)img[0] + 10, "'shape': (");
        if (sh)
            sscanf(sh + 10, "%lld, %lld", (long long *)&D, (long long *)&S);
        if (D <= 0 || S <= 0)
            rc = sae_err(err, SAE_EFORMAT, "%s: W_enc.npy has no 2-D shape", path);
    }
    if (!rc) {
        memset(s, 0, sizeof *s);
        s->d_in = (int)D;
        s->d_sae = (int)S;
        s->arch = img[4] ? SAE_JUMPRELU : SAE_STANDARD;
        s->apply_b_dec_to_input = 0; /* Gemma Scope: pre = x·W_enc + b_enc */
        s->hook_head_index = -1;
        s->prepend_bos = 1;
        s->owns = 1;
        snprintf(s->normalize, sizeof s->normalize, "none");
        snprintf(s->dtype, sizeof s->dtype, "float32");
        int64_t sDS[2] = {D, S}, sSD[2] = {S, D};
        rc = npy_parse(img[0], ilen[0], "W_enc.npy", 2, sDS, &s->W_enc, err);
        if (!rc)
            rc = npy_parse(img[1], ilen[1], "W_dec.npy", 2, sSD, &s->W_dec, err);
        if (!rc)
            rc = npy_parse(img[2], ilen[2], "b_enc.npy", 1, &S, &s->b_enc, err);
        if (!rc)
            rc = npy_parse(img[3], ilen[3], "b_dec.npy", 1, &D, &s->b_dec, err);
        if (!rc && img[4])
            rc = npy_parse(img[4], ilen[4], "threshold.npy", 1, &S, &s->threshold, err);
        if (rc)
            sae_free(s);
    }
    for (int w = 0; w < 5; w++)
        free(img[w]);
    free(z);
    return rc;
}

int sae_load(const char *path, sae *s, char *err)
{
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sae_err(err, SAE_ENOTFOUND, "%s: no such SAE folder or file", path);
    size_t pl = strlen(path);
    if (S_ISREG(sb.st_mode) && pl > 4 && !strcmp(path + pl - 4, ".npz"))
        return load_npz(path, s, err);
    char p[1200];
    snprintf(p, sizeof p, "%s/params.npz", path);
    if (stat(p, &sb) == 0)
        return load_npz(p, s, err);
    snprintf(p, sizeof p, "%s/cfg.json", path);
    char *text = sae_slurp(p, NULL);
    if (!text)
        return sae_err(err, SAE_ENOTFOUND, "%s: no cfg.json (or params.npz) — not an SAE folder", path);
    int rc = parse_cfg(p, text, s, err);
    free(text);
    if (!rc)
        rc = load_safetensors(path, s, err);
    if (rc)
        sae_free(s);
    return rc;
}

int sae_save(const sae *s, const char *dir, char *err)
{
    int rc = sae_mkdirs(dir, err);
    if (rc)
        return rc;
    char path[1200];
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    st_writer *w = st_writer_new();
    int64_t D = s->d_in, S = s->d_sae, nDS[2] = {D, S}, nSD[2] = {S, D};
    st_writer_add(w, "W_enc", ST_F32, s->W_enc, 2, nDS, ST_F32);
    st_writer_add(w, "W_dec", ST_F32, s->W_dec, 2, nSD, ST_F32);
    st_writer_add(w, s->arch == SAE_GATED ? "b_gate" : "b_enc", ST_F32, s->b_enc, 1, &S, ST_F32);
    st_writer_add(w, "b_dec", ST_F32, s->b_dec, 1, &D, ST_F32);
    if (s->arch == SAE_JUMPRELU)
        st_writer_add(w, "threshold", ST_F32, s->threshold, 1, &S, ST_F32);
    if (s->arch == SAE_GATED) {
        st_writer_add(w, "b_mag", ST_F32, s->b_mag, 1, &S, ST_F32);
        st_writer_add(w, "r_mag", ST_F32, s->r_mag, 1, &S, ST_F32);
    }
    rc = st_writer_finish(w, path, err);
    st_writer_free(w);
    if (rc)
        return rc;
    if (s->sparsity) {
        snprintf(path, sizeof path, "%s/sparsity.safetensors", dir);
        w = st_writer_new();
        st_writer_add(w, "sparsity", ST_F32, s->sparsity, 1, &S, ST_F32);
        rc = st_writer_finish(w, path, err);
        st_writer_free(w);
        if (rc)
            return rc;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "d_in", s->d_in);
    cJSON_AddNumberToObject(j, "d_sae", s->d_sae);
    cJSON_AddStringToObject(j, "dtype", "float32");
    cJSON_AddStringToObject(j, "device", "cpu");
    cJSON_AddBoolToObject(j, "apply_b_dec_to_input", s->apply_b_dec_to_input);
    cJSON_AddStringToObject(j, "normalize_activations", s->normalize[0] ? s->normalize : "none");
    cJSON_AddStringToObject(j, "reshape_activations", "none");
    if (s->arch == SAE_TOPK) {
        cJSON_AddNumberToObject(j, "k", s->k);
        cJSON_AddBoolToObject(j, "rescale_acts_by_decoder_norm", 0);
    }
    cJSON *md = cJSON_AddObjectToObject(j, "metadata");
    cJSON_AddStringToObject(md, "sae_lens_version", "6.0.0");
    cJSON_AddStringToObject(md, "sae_lens_training_version", "loupe");
    cJSON_AddStringToObject(md, "model_name", s->model_name);
    cJSON_AddStringToObject(md, "hook_name", s->hook_name);
    if (s->hook_head_index >= 0)
        cJSON_AddNumberToObject(md, "hook_head_index", s->hook_head_index);
    else
        cJSON_AddNullToObject(md, "hook_head_index");
    cJSON_AddBoolToObject(md, "prepend_bos", s->prepend_bos);
    if (s->context_size > 0)
        cJSON_AddNumberToObject(md, "context_size", s->context_size);
    cJSON_AddStringToObject(j, "architecture", sae_arch_name(s->arch));
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    rc = sae_write_atomic(path, txt, strlen(txt), err);
    free(txt);
    return rc;
}
