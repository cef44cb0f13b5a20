/* probe — labelled datasets from CSV or JSONL.
 *
 * CSV: a header row naming at least `text` and the label column (RFC 4180 quoting);
 * an optional `position` column (token index, negative from the end).
 * JSONL: one object per line with "text" and the label; optional "position" (token
 * index or array of them), or "char" / "chars" / "probe_chars" (byte offsets into the
 * text, number or array: one example per offset, at the token covering it). With
 * `expand=KEY` every object of the array line[KEY] is one example carrying its own
 * label and "char" / "position" (nesting.jsonl's words). Without a position an example
 * is read at the last token. Labels: strings (classes in sorted order), non-negative
 * integers (class indices), or any number for continuous targets. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_impl.h"

typedef struct builder {
    pr_data *d;
    int cap, tcap;
    int continuous;
    char **raw_labels; /* string labels, resolved to classes at the end; NULL entries for numbers */
    char *err;
    size_t errcap;
} builder;

static int fail(builder *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(builder *b, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errcap, fmt, ap);
    va_end(ap);
    return code;
}

static int add_text(builder *b, const char *text)
{
    pr_data *d = b->d;
    if (d->n_texts == b->tcap) {
        b->tcap = b->tcap ? 2 * b->tcap : 256;
        char **t = realloc(d->text, sizeof *t * (size_t)b->tcap);
        if (!t)
            return LP_ENOMEM;
        d->text = t;
    }
    if (!(d->text[d->n_texts] = strdup(text)))
        return LP_ENOMEM;
    d->n_texts++;
    return 0;
}

/* one example of the latest text; label is a number (str NULL) or a string */
static int add_example(builder *b, int tok, int chr, double num, const char *str)
{
    pr_data *d = b->d;
    if (d->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        size_t c = (size_t)b->cap;
        int *tix = realloc(d->tix, sizeof(int) * c);
        if (tix)
            d->tix = tix;
        int *tk = realloc(d->tok, sizeof(int) * c);
        if (tk)
            d->tok = tk;
        int *ch = realloc(d->chr, sizeof(int) * c);
        if (ch)
            d->chr = ch;
        double *y = realloc(d->y, sizeof(double) * c);
        if (y)
            d->y = y;
        char **rl = realloc(b->raw_labels, sizeof(char *) * c);
        if (rl)
            b->raw_labels = rl;
        if (!tix || !tk || !ch || !y || !rl)
            return LP_ENOMEM;
    }
    d->tix[d->n] = d->n_texts - 1;
    d->tok[d->n] = tok;
    d->chr[d->n] = chr;
    d->y[d->n] = num;
    b->raw_labels[d->n] = NULL;
    if (str && !(b->raw_labels[d->n] = strdup(str)))
        return LP_ENOMEM;
    d->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* classes from labels: all strings → sorted names; all integers ≥ 0 → indices */
static int finish(builder *b, const char *path)
{
    pr_data *d = b->d;
    if (d->n == 0)
        return fail(b, LP_EINVAL, "%s: no examples", path);
    int n_str = 0;
    for (int i = 0; i < d->n; i++)
        n_str += b->raw_labels[i] != NULL;
    if (n_str && n_str != d->n)
        return fail(b, LP_EINVAL, "%s: labels mix strings and numbers", path);
    if (b->continuous) {
        if (n_str)
            return fail(b, LP_EINVAL, "%s: continuous targets must be numbers (label '%s')", path, b->raw_labels[0]);
        d->n_classes = 0;
        return 0;
    }
    if (n_str) {
        char **u = malloc(sizeof(char *) * (size_t)d->n);
        if (!u)
            return LP_ENOMEM;
        memcpy(u, b->raw_labels, sizeof(char *) * (size_t)d->n);
        qsort(u, (size_t)d->n, sizeof *u, cmp_str);
        int k = 0;
        for (int i = 0; i < d->n; i++)
            if (k == 0 || strcmp(u[k - 1], u[i]))
                u[k++] = u[i];
        d->class_names = calloc((size_t)k, sizeof(char *));
        if (!d->class_names) {
            free(u);
            return LP_ENOMEM;
        }
        for (int c = 0; c < k; c++)
            d->class_names[c] = strdup(u[c]);
        d->n_classes = k;
        for (int i = 0; i < d->n; i++) {
            char **hit = bsearch(&b->raw_labels[i], u, (size_t)k, sizeof *u, cmp_str);
            d->y[i] = (double)(hit - u);
        }
        free(u);
    } else {
        int k = 0;
        for (int i = 0; i < d->n; i++) {
            double v = d->y[i];
            if (v < 0 || v != (double)(int)v || v > 100000)
                return fail(b, LP_EINVAL,
                            "%s: class label %g is not a non-negative integer (use kind=ridge for continuous targets)",
                            path, v);
            if ((int)v + 1 > k)
                k = (int)v + 1;
        }
        d->class_names = calloc((size_t)k, sizeof(char *));
        if (!d->class_names)
            return LP_ENOMEM;
        for (int c = 0; c < k; c++) {
            char nm[32];
            snprintf(nm, sizeof nm, "%d", c);
            d->class_names[c] = strdup(nm);
        }
        d->n_classes = k;
    }
    if (d->n_classes < 2)
        return fail(b, LP_EINVAL, "%s: only one class", path);
    return 0;
}

/* label of a JSON object */
static int json_label(builder *b, const cJSON *o, const char *key, double *num, const char **str, const char *where)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, key);
    *str = NULL;
    if (cJSON_IsNumber(l))
        *num = l->valuedouble;
    else if (cJSON_IsString(l))
        *str = l->valuestring;
    else if (cJSON_IsBool(l))
        *num = cJSON_IsTrue(l);
    else
        return fail(b, LP_EINVAL, "%s: no \"%s\" (number or string)", where, key);
    return 0;
}

/* positions of an object: "position" (token), else "char"/"chars"/"probe_chars" (bytes);
 * calls add_example for each, or once at the last token */
static int json_positions(builder *b, const cJSON *o, double num, const char *str, const char *where)
{
    static const char *const keys[] = {"position", "char", "chars", "probe_chars"};
    for (int k = 0; k < 4; k++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        if (!p)
            continue;
        int is_tok = k == 0, rc;
        if (cJSON_IsNumber(p))
            return add_example(b, is_tok ? (int)p->valuedouble : -1, is_tok ? -1 : (int)p->valuedouble, num, str);
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) == 0)
            return fail(b, LP_EINVAL, "%s: \"%s\" must be a number or a non-empty array", where, keys[k]);
        const cJSON *e;
        cJSON_ArrayForEach(e, p)
        {
            if (!cJSON_IsNumber(e))
                return fail(b, LP_EINVAL, "%s: \"%s\" holds a non-number", where, keys[k]);
            if (!is_tok && e->valuedouble < 0)
                return fail(b, LP_EINVAL, "%s: negative char offset", where);
            if ((rc = add_example(b, is_tok ? (int)e->valuedouble : -1, is_tok ? -1 : (int)e->valuedouble, num, str)))
                return rc;
        }
        return 0;
    }
    return add_example(b, -1, -1, num, str);
}

static int load_jsonl(builder *b, const char *path, char *buf, const char *label_key, const char *expand)
{
    int line_no = 0, rc;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        while (*line == ' ' || *line == '\t' || *line == '\r')
            line++;
        if (!*line)
            continue;
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, line_no);
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return fail(b, LP_EFORMAT, "%s: not a JSON object", where);
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (!cJSON_IsString(t)) {
            cJSON_Delete(o);
            return fail(b, LP_EINVAL, "%s: no \"text\" string", where);
        }
        if ((rc = add_text(b, t->valuestring))) {
            cJSON_Delete(o);
            return rc;
        }
        double num = 0;
        const char *str = NULL;
        if (expand && *expand) {
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, expand), *e;
            if (!cJSON_IsArray(arr))
                rc = fail(b, LP_EINVAL, "%s: no \"%s\" array", where, expand);
            cJSON_ArrayForEach(e, arr)
            {
                if ((rc = json_label(b, e, label_key, &num, &str, where)) || (rc = json_positions(b, e, num, str, where)))
                    break;
            }
        } else if (!(rc = json_label(b, o, label_key, &num, &str, where)))
            rc = json_positions(b, o, num, str, where);
        cJSON_Delete(o);
        if (rc)
            return rc;
    }
    return 0;
}

/* next CSV field from *p (RFC 4180); writes it unquoted in place, returns its start;
 * *end_of_row set at a line break or the end */
static char *csv_field(char **p, int *end_of_row)
{
    char *s = *p, *out = s, *start = s;
    *end_of_row = 0;
    if (*s == '"') {
        s++;
        for (;;) {
            if (!*s)
                break;
            if (*s == '"') {
                if (s[1] == '"') {
                    *out++ = '"';
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            *out++ = *s++;
        }
    }
    while (*s && *s != ',' && *s != '\n' && *s != '\r')
        *out++ = *s++;
    if (*s == ',')
        s++;
    else {
        while (*s == '\r')
            s++;
        if (*s == '\n')
            s++;
        *end_of_row = 1;
    }
    *out = 0;
    *p = s;
    return start;
}

static int load_csv(builder *b, const char *path, char *buf, const char *label_key)
{
    char *p = buf;
    int eor = 0, n_cols = 0, c_text = -1, c_label = -1, c_pos = -1, rc;
    while (!eor && *p) {
        char *f = csv_field(&p, &eor);
        if (!strcmp(f, "text"))
            c_text = n_cols;
        else if (!strcmp(f, label_key))
            c_label = n_cols;
        else if (!strcmp(f, "position"))
            c_pos = n_cols;
        n_cols++;
    }
    if (c_text < 0 || c_label < 0)
        return fail(b, LP_EINVAL, "%s: the CSV header needs columns 'text' and '%s'", path, label_key);
    int row = 1;
    while (*p) {
        row++;
        const char *text = NULL, *label = NULL, *pos = NULL;
        int col = 0;
        eor = 0;
        while (!eor && *p) {
            char *f = csv_field(&p, &eor);
            if (col == c_text)
                text = f;
            else if (col == c_label)
                label = f;
            else if (col == c_pos)
                pos = f;
            col++;
        }
        if (col == 1 && text && !*text)
            continue; /* blank line */
        if (!text || !label)
            return fail(b, LP_EINVAL, "%s: row %d has %d fields, expected %d", path, row, col, n_cols);
        if ((rc = add_text(b, text)))
            return rc;
        char *end;
        errno = 0;
        double v = strtod(label, &end);
        int is_num = *label && !*end && !errno;
        int tok = -1;
        if (pos && *pos) {
            long t = strtol(pos, &end, 10);
            if (*end)
                return fail(b, LP_EINVAL, "%s: row %d: position '%s' is not an integer", path, row, pos);
            tok = (int)t;
        }
        if (b->continuous && !is_num)
            return fail(b, LP_EINVAL, "%s: row %d: target '%s' is not a number", path, row, label);
        if ((rc = add_example(b, tok, -1, is_num ? v : 0, is_num ? NULL : label)))
            return rc;
    }
    return 0;
}

void pr_data_free(pr_data *d)
{
    for (int i = 0; i < d->n_texts; i++)
        free(d->text[i]);
    for (int c = 0; c < d->n_classes; c++)
        free(d->class_names[c]);
    free(d->text);
    free(d->class_names);
    free(d->tix);
    free(d->tok);
    free(d->chr);
    free(d->y);
    memset(d, 0, sizeof *d);
}

int pr_data_load(const char *path, const char *label_key, const char *expand, int continuous, pr_data *d, char *err,
                 size_t cap)
{
    memset(d, 0, sizeof *d);
    builder b = {.d = d, .continuous = continuous, .err = err, .errcap = cap};
    err[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(&b, LP_EIO, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)(sz > 0 ? sz : 0) + 1);
    size_t got = buf && sz > 0 ? fread(buf, 1, (size_t)sz, f) : 0;
    fclose(f);
    if (!buf)
        return fail(&b, LP_ENOMEM, "out of memory reading %s", path);
    buf[got] = 0;
    size_t L = strlen(path);
    int is_csv = L > 4 && !strcmp(path + L - 4, ".csv");
    int rc = is_csv ? load_csv(&b, path, buf, label_key) : load_jsonl(&b, path, buf, label_key, expand);
    free(buf);
    if (!rc)
        rc = finish(&b, path);
    for (int i = 0; i < d->n; i++)
        free(b.raw_labels[i]);
    free(b.raw_labels);
    if (rc) {
        if (!err[0])
            snprintf(err, cap, "%s: out of memory", path);
        pr_data_free(d);
    }
    return rc;
}
