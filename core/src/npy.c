/* NumPy .npy: magic "\x93NUMPY", version, header length, a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (a, b), } padded to 64 bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe/npy.h"
#include "loupe_impl.h"

static const char *descr_of(lp_dtype t)
{
    switch (t) {
    case LP_F32: return "<f4";
    case LP_F64: return "<f8";
    case LP_F16: return "<f2";
    case LP_I32: return "<i4";
    case LP_I64: return "<i8";
    case LP_U8: return "|u1";
    case LP_BOOL: return "|b1";
    default: return NULL;
    }
}

int lp_npy_save(const char *path, const lp_tensor *t, lp_error *err)
{
    lp_dtype dt = descr_of(t->dtype) ? t->dtype : LP_F32;
    char shape[256] = "";
    size_t sl = 0;
    for (int i = 0; i < t->ndim; i++)
        sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%lld%s", (long long)t->ne[i],
                               t->ndim == 1 ? "," : (i + 1 < t->ndim ? ", " : ""));
    char hdr[512];
    int hl = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr_of(dt), shape);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    memset(hdr + 10 + hl, ' ', (size_t)pad);
    hdr[10 + hl + pad] = '\n';
    int hlen = hl + pad + 1;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hlen & 0xff);
    hdr[9] = (char)(hlen >> 8);
    size_t nbytes = (size_t)lp_tensor_nelem(t) * lp_dtype_size(dt);
    void *body = NULL;
    const void *src = t->data;
    if (!(dt == t->dtype && lp_tensor_is_contiguous(t))) {
        body = malloc(nbytes ? nbytes : 1);
        if (!body)
            return lp_error_set(err, LP_ENOMEM, "%s: out of memory", path);
        lp_tensor_to_f32(t, body);
        src = body;
    }
    const void *parts[2] = {hdr, src};
    size_t lens[2] = {(size_t)(10 + hlen), nbytes};
    int rc = lpi_write_atomic(path, parts, lens, 2, err);
    free(body);
    return rc;
}

int lp_npy_load(const char *path, lp_tensor *out, void **data, lp_error *err)
{
    char *buf;
    size_t len;
    *data = NULL;
    int rc = lpi_read_file(path, &buf, &len, err);
    if (rc)
        return rc;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        free(buf);
        return lp_error_set(err, LP_EFORMAT, "%s: not a .npy file", path);
    }
    size_t hlen, hoff;
    if (buf[6] == 1) {
        hlen = (unsigned char)buf[8] | ((size_t)(unsigned char)buf[9] << 8);
        hoff = 10;
    } else if (len >= 12) {
        hlen = (unsigned char)buf[8] | ((size_t)(unsigned char)buf[9] << 8) |
               ((size_t)(unsigned char)buf[10] << 16) | ((size_t)(unsigned char)buf[11] << 24);
        hoff = 12;
    } else {
        free(buf);
        return lp_error_set(err, LP_EFORMAT, "%s: truncated .npy header", path);
    }
    if (hoff + hlen > len) {
        free(buf);
        return lp_error_set(err, LP_EFORMAT, "%s: .npy header runs past the end of the file", path);
    }
    char *h = malloc(hlen + 1);
    memcpy(h, buf + hoff, hlen);
    h[hlen] = 0;
    lp_dtype dt = LP_DTYPE_COUNT;
    static const struct {
        const char *d;
        lp_dtype t;
    } map[] = {{"<f4", LP_F32}, {"<f8", LP_F64}, {"<f2", LP_F16}, {"<i4", LP_I32},
               {"<i8", LP_I64}, {"|u1", LP_U8},  {"|b1", LP_BOOL}};
    const char *d = strstr(h, "'descr'");
    for (size_t i = 0; d && i < sizeof map / sizeof map[0]; i++)
        if (strstr(d, map[i].d) == strchr(d + 7, '\'') + 1)
            dt = map[i].t;
    const char *fo = strstr(h, "'fortran_order'");
    const char *sh = strstr(h, "'shape'");
    int64_t ne[LP_MAX_DIMS];
    int nd = 0;
    if (dt == LP_DTYPE_COUNT || !fo || strncmp(strchr(fo + 15, ':') + 1 + strspn(strchr(fo + 15, ':') + 1, " "), "False", 5) != 0 ||
        !sh || !strchr(sh, '(')) {
        free(h);
        free(buf);
        return lp_error_set(err, LP_EUNSUPPORTED, "%s: unsupported .npy (need little-endian C-order f4/f8/f2/i4/i8/u1/b1)", path);
    }
    const char *q = strchr(sh, '(') + 1;
    while (*q && *q != ')') {
        while (*q == ' ' || *q == ',')
            q++;
        if (*q == ')')
            break;
        char *end;
        long long v = strtoll(q, &end, 10);
        if (end == q || v < 0 || nd == LP_MAX_DIMS) {
            free(h);
            free(buf);
            return lp_error_set(err, LP_EFORMAT, "%s: bad shape in .npy header", path);
        }
        ne[nd++] = v;
        q = end;
    }
    free(h);
    lp_tensor t = lp_tensor_make(dt, NULL, nd, ne);
    size_t need = lp_tensor_nbytes(&t);
    if (len - hoff - hlen != need) {
        free(buf);
        return lp_error_set(err, LP_EFORMAT, "%s: .npy data is %zu bytes, shape needs %zu", path, len - hoff - hlen, need);
    }
    memmove(buf, buf + hoff + hlen, need);
    t.data = buf;
    *out = t;
    *data = buf;
    return LP_OK;
}
