/* probe — saved probes and directions: F32 safetensors (8-byte little-endian header
 * length, JSON header, data) and a JSON sidecar, each written to PATH.tmp and renamed
 * into place so a reader never sees half a file. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_impl.h"

static int write_atomic(const char *path, const void *a, size_t na, const void *b, size_t nb, char *err, size_t cap)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, cap, "%s: %s", tmp, strerror(errno));
        return LP_EIO;
    }
    int ok = fwrite(a, 1, na, f) == na && (!nb || fwrite(b, 1, nb, f) == nb);
    ok &= fflush(f) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path)) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        remove(tmp);
        return LP_EIO;
    }
    return 0;
}

int pr_write_text(const char *path, const char *text, char *err, size_t cap)
{
    return write_atomic(path, text, strlen(text), NULL, 0, err, cap);
}

int pr_write_safetensors(const char *path, const pr_named *t, int n, char *err, size_t cap)
{
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, t[i].name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        size_t cnt = 1;
        for (int k = 0; k < t[i].ndim; k++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].ne[k]));
            cnt *= (size_t)t[i].ne[k];
        }
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        off += cnt * sizeof(float);
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) {
        snprintf(err, cap, "out of memory");
        return LP_ENOMEM;
    }
    size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
    size_t head_n = 8 + hl + pad;
    unsigned char *buf = malloc(head_n + off);
    if (!buf) {
        free(js);
        snprintf(err, cap, "out of memory");
        return LP_ENOMEM;
    }
    uint64_t L = hl + pad;
    for (int k = 0; k < 8; k++)
        buf[k] = (unsigned char)(L >> (8 * k));
    memcpy(buf + 8, js, hl);
    memset(buf + 8 + hl, ' ', pad);
    free(js);
    size_t p = head_n;
    for (int i = 0; i < n; i++) {
        size_t cnt = 1;
        for (int k = 0; k < t[i].ndim; k++)
            cnt *= (size_t)t[i].ne[k];
        memcpy(buf + p, t[i].data, cnt * sizeof(float)); /* little-endian hosts only */
        p += cnt * sizeof(float);
    }
    int rc = write_atomic(path, buf, head_n + off, NULL, 0, err, cap);
    free(buf);
    return rc;
}

int pr_read_tensor(const char *path, const char *name, float **data, int64_t *count, char *err, size_t cap)
{
    *data = NULL;
    *count = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return LP_EIO;
    }
    unsigned char lb[8];
    int rc = LP_EFORMAT;
    char *hj = NULL;
    cJSON *h = NULL;
    if (fread(lb, 1, 8, f) != 8)
        goto bad;
    uint64_t L = 0;
    for (int k = 0; k < 8; k++)
        L |= (uint64_t)lb[k] << (8 * k);
    if (L > (1u << 24) || !(hj = malloc(L + 1)) || fread(hj, 1, L, f) != L)
        goto bad;
    hj[L] = 0;
    h = cJSON_Parse(hj);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(h, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!e) {
        snprintf(err, cap, "%s: no tensor '%s'", path, name);
        rc = LP_ENOTFOUND;
        goto out;
    }
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") || cJSON_GetArraySize(of) != 2)
        goto bad;
    double a = cJSON_GetArrayItem(of, 0)->valuedouble, b = cJSON_GetArrayItem(of, 1)->valuedouble;
    if (a < 0 || b < a || (size_t)(b - a) % sizeof(float))
        goto bad;
    size_t nb = (size_t)(b - a);
    *data = malloc(nb ? nb : 1);
    if (!*data || fseek(f, (long)(8 + L + (uint64_t)a), SEEK_SET) || fread(*data, 1, nb, f) != nb) {
        free(*data);
        *data = NULL;
        goto bad;
    }
    *count = (int64_t)(nb / sizeof(float));
    rc = 0;
    goto out;
bad:
    snprintf(err, cap, "%s: not a readable F32 safetensors file (tensor '%s')", path, name);
    rc = LP_EFORMAT;
out:
    cJSON_Delete(h);
    free(hj);
    fclose(f);
    return rc;
}
