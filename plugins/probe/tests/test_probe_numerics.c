/* probe numerics without a model: the fits against scikit-learn's results
 * (golden_sklearn.json, written by tools/compare_sklearn.py --make-fixture), LEACE on a
 * planted linear concept, AUROC, the dataset readers and the safetensors round trip.
 * Usage: test_probe_numerics GOLDEN.json TMPDIR */
#include <cjson/cJSON.h>
#include <math.h>
#include <unistd.h>

#include "check.h"
#include "probe_impl.h"

static double cosine(const float *a, const double *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* a pr_data with one text per row and a fold array from the fixture's test mask */
static void set_data(const cJSON *s, pr_data *d, float **X, int **fold, double **coef, int *ncoef)
{
    int n = cJSON_GetObjectItem(s, "n")->valueint, dim = cJSON_GetObjectItem(s, "d")->valueint;
    memset(d, 0, sizeof *d);
    d->n = d->n_texts = n;
    d->n_classes = cJSON_GetObjectItem(s, "n_classes")->valueint;
    d->tix = malloc(sizeof(int) * (size_t)n);
    d->y = malloc(sizeof(double) * (size_t)n);
    *fold = malloc(sizeof(int) * (size_t)n);
    *X = malloc(sizeof(float) * (size_t)n * dim);
    const cJSON *xs = cJSON_GetObjectItem(s, "X"), *ys = cJSON_GetObjectItem(s, "y"),
                *ts = cJSON_GetObjectItem(s, "test"), *cs = cJSON_GetObjectItem(s, "coef"), *e;
    int i = 0;
    cJSON_ArrayForEach(e, xs)(*X)[i++] = (float)e->valuedouble;
    i = 0;
    cJSON_ArrayForEach(e, ys)
    {
        d->tix[i] = i;
        d->y[i++] = e->valuedouble;
    }
    i = 0;
    cJSON_ArrayForEach(e, ts)(*fold)[i++] = e->valueint ? 0 : 1;
    *ncoef = cJSON_GetArraySize(cs);
    *coef = malloc(sizeof(double) * (size_t)(*ncoef + 1));
    i = 0;
    cJSON_ArrayForEach(e, cs)(*coef)[i++] = e->valuedouble;
}

static void free_data(pr_data *d)
{
    free(d->tix);
    free(d->y);
}

static void test_golden(const char *path)
{
    char *txt = slurp(path);
    if (!check(txt != NULL, "read %s", path))
        return;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "sets"))
    {
        const char *name = cJSON_GetObjectItem(s, "name")->valuestring;
        const char *kind = cJSON_GetObjectItem(s, "kind")->valuestring;
        int dim = cJSON_GetObjectItem(s, "d")->valueint;
        double C = cJSON_GetObjectItem(s, "C")->valuedouble;
        double ref = cJSON_GetObjectItem(s, "test_score")->valuedouble;
        pr_data d;
        float *X;
        int *fold, ncoef;
        double *coef;
        set_data(s, &d, &X, &fold, &coef, &ncoef);
        pr_fit_opts o = pr_fit_opts_default();
        o.kind = !strcmp(kind, "ridge") ? PR_RIDGE : PR_LOGISTIC;
        o.C = C;
        o.lambda = C;
        pr_metrics m;
        pr_probe p;
        int rc = pr_evaluate(&d, X, dim, &o, fold, 1, &m, &p);
        check(rc == 0, "%s: fit", name);
        if (!strcmp(kind, "leace")) {
            check(fabs(m.acc - ref) <= 0.01, "%s: probe before erasure %.4f, scikit-learn %.4f", name, m.acc, ref);
            int *tr = malloc(sizeof(int) * (size_t)d.n), ntr = 0;
            for (int i = 0; i < d.n; i++)
                if (fold[i])
                    tr[ntr++] = i;
            pr_eraser e;
            check(pr_leace_fit(&e, X, dim, d.y, tr, ntr, 2) == 0, "%s: LEACE fit", name);
            float *Xe = malloc(sizeof(float) * (size_t)d.n * dim);
            memcpy(Xe, X, sizeof(float) * (size_t)d.n * dim);
            pr_leace_apply(&e, Xe, d.n);
            /* the training cross-covariance is zero after erasure */
            double maxcov = 0, mean1 = 0, n1 = 0;
            for (int i = 0; i < ntr; i++)
                n1 += d.y[tr[i]];
            mean1 = n1 / ntr;
            for (int c = 0; c < dim; c++) {
                double cov = 0, mx = 0;
                for (int i = 0; i < ntr; i++)
                    mx += Xe[(size_t)tr[i] * dim + c] / ntr;
                for (int i = 0; i < ntr; i++)
                    cov += (Xe[(size_t)tr[i] * dim + c] - mx) * (d.y[tr[i]] - mean1) / ntr;
                maxcov = fabs(cov) > maxcov ? fabs(cov) : maxcov;
            }
            check(maxcov < 1e-3, "%s: max |Cov(x', z)| after erasure on the training rows %.2e", name, maxcov);
            pr_metrics m2;
            pr_evaluate(&d, Xe, dim, &o, fold, 1, &m2, NULL);
            double chance = cJSON_GetObjectItem(s, "chance")->valuedouble;
            printf("     %s: fresh probe after LEACE %.4f, chance %.4f (%d test rows: too few for a 2-point check;\n"
                   "     test_leace_planted does that on 20000 rows)\n", name, m2.acc, chance, m2.n_test);
            double msc = 0;
            for (size_t i = 0; i < (size_t)d.n * dim; i++)
                msc += ((double)X[i] - Xe[i]) * ((double)X[i] - Xe[i]);
            printf("     %s: mean squared change %.4g per row\n", name, msc / d.n);
            free(tr);
            free(Xe);
            pr_eraser_free(&e);
        } else {
            const char *unit = o.kind == PR_RIDGE ? "R^2" : "accuracy";
            check(fabs(m.acc - ref) <= 0.01, "%s: test %s %.4f vs scikit-learn %.4f (within 1 point)", name, unit,
                  m.acc, ref);
            check(ncoef == p.k * dim, "%s: %d coefficients (scikit-learn %d)", name, p.k * dim, ncoef);
            for (int c = 0; c < p.k && ncoef == p.k * dim; c++) {
                double cs = cosine(p.W + (size_t)c * dim, coef + (size_t)c * dim, dim);
                check(cs >= 0.99, "%s: class row %d cosine with scikit-learn's coefficients %.6f", name, c, cs);
            }
            if (o.kind == PR_LOGISTIC)
                check(p.converged, "%s: L-BFGS converged in %d iterations", name, p.iters);
        }
        pr_probe_free(&p);
        free_data(&d);
        free(X);
        free(fold);
        free(coef);
    }
    cJSON_Delete(j);
}

static double gauss(uint64_t *s)
{
    double u = ((double)(pr_rand(s) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(pr_rand(s) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* LEACE on a planted linear concept, 20000 rows (5000 held out): a fresh probe decodes
 * it well before, falls within 2 points of chance after; and 3 classes. */
static void test_leace_planted(int k, double sep)
{
    const int n = 20000, d = 32;
    uint64_t s = 42 + (uint64_t)k;
    float *X = malloc(sizeof(float) * (size_t)n * d), *A = malloc(sizeof(float) * (size_t)d * d);
    float *mu = malloc(sizeof(float) * (size_t)k * d);
    pr_data dd = {0};
    dd.n = dd.n_texts = n;
    dd.n_classes = k;
    dd.tix = malloc(sizeof(int) * n);
    dd.y = malloc(sizeof(double) * n);
    int *fold = malloc(sizeof(int) * n), *tr = malloc(sizeof(int) * n), *te = malloc(sizeof(int) * n);
    for (int i = 0; i < d * d; i++)
        A[i] = (float)(gauss(&s) / sqrt(d));
    for (int i = 0; i < k * d; i++)
        mu[i] = (float)(gauss(&s) * sep);
    int ntr = 0, nte = 0;
    for (int i = 0; i < n; i++) {
        double g[32];
        for (int j = 0; j < d; j++)
            g[j] = gauss(&s);
        int y = (int)(pr_rand(&s) % (uint64_t)k);
        for (int j = 0; j < d; j++) {
            double v = mu[y * d + j] + 2.0;
            for (int q = 0; q < d; q++)
                v += A[q * d + j] * g[q];
            X[(size_t)i * d + j] = (float)v;
        }
        dd.tix[i] = i;
        dd.y[i] = y;
        fold[i] = i % 4 == 0 ? 0 : 1;
        if (fold[i])
            tr[ntr++] = i;
        else
            te[nte++] = i;
    }
    pr_fit_opts o = pr_fit_opts_default();
    double before, after, chance;
    pr_accuracy_rows(&dd, X, d, &o, tr, ntr, te, nte, &before, &chance);
    pr_eraser e;
    int rc = pr_leace_fit(&e, X, d, dd.y, tr, ntr, k);
    check(rc == 0 && e.r == k - 1, "planted %d classes: LEACE fit, rank %d", k, e.r);
    float *Xe = malloc(sizeof(float) * (size_t)n * d);
    memcpy(Xe, X, sizeof(float) * (size_t)n * d);
    pr_leace_apply(&e, Xe, n);
    pr_accuracy_rows(&dd, Xe, d, &o, tr, ntr, te, nte, &after, NULL);
    double msc = 0;
    for (int i = 0; i < nte; i++)
        for (int j = 0; j < d; j++) {
            double z = (double)X[(size_t)te[i] * d + j] - Xe[(size_t)te[i] * d + j];
            msc += z * z;
        }
    check(before >= chance + 0.2, "planted %d classes: probe before erasure %.4f vs chance %.4f", k, before, chance);
    check(fabs(after - chance) <= 0.02, "planted %d classes: fresh probe after LEACE %.4f, chance %.4f (within 2 points); "
          "mean squared change %.4g", k, after, chance, msc / nte);
    pr_eraser_free(&e);
    free(X);
    free(Xe);
    free(A);
    free(mu);
    free(dd.tix);
    free(dd.y);
    free(fold);
    free(tr);
    free(te);
}

static void test_auroc(void)
{
    float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    int y[] = {0, 0, 1, 1};
    check(fabs(pr_auroc(s, y, 4) - 0.75) < 1e-12, "AUROC of the sklearn docs example is 0.75");
    float t[] = {1, 1, 1, 1};
    check(fabs(pr_auroc(t, y, 4) - 0.5) < 1e-12, "AUROC with all ties is 0.5");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void test_datasets(const char *tmp)
{
    char p[1024], err[512];
    pr_data d;
    snprintf(p, sizeof p, "%s/probe_t.csv", tmp);
    write_file(p, "id,text,label,position\n1,\"a, \"\"quoted\"\" text\",happy,-2\r\n2,plain,sad,\n");
    int rc = pr_data_load(p, "label", "", 0, &d, err, sizeof err);
    if (check(rc == 0, "CSV loads (%s)", err)) {
        check(d.n == 2 && d.n_classes == 2 && !strcmp(d.text[0], "a, \"quoted\" text"), "CSV quoting: '%s'",
              d.text[0]);
        check(d.y[0] == 0 && d.y[1] == 1 && !strcmp(d.class_names[1], "sad"), "string labels become sorted classes");
        check(d.tok[0] == -2 && d.tok[1] == -1 && d.chr[0] == -1, "CSV positions (default: last token)");
        pr_data_free(&d);
    }
    snprintf(p, sizeof p, "%s/probe_t.jsonl", tmp);
    write_file(p, "{\"text\": \"x y z\", \"label\": 1, \"probe_chars\": [0, 2]}\n\n"
                  "{\"text\": \"( a )\", \"words\": [{\"char\": 2, \"depth\": 1}], \"label\": 0}\n");
    rc = pr_data_load(p, "label", "", 0, &d, err, sizeof err);
    if (check(rc == 0, "JSONL loads (%s)", err)) {
        check(d.n == 3 && d.n_texts == 2 && d.chr[0] == 0 && d.chr[1] == 2 && d.tix[1] == 0 && d.tix[2] == 1,
              "JSONL char arrays give one example each");
        pr_data_free(&d);
    }
    rc = pr_data_load(p, "depth", "words", 0, &d, err, sizeof err);
    check(rc != 0 && strstr(err, "words"), "expand=words on a line without it fails: %s", err);
    snprintf(p, sizeof p, "%s/probe_t2.jsonl", tmp);
    write_file(p, "{\"text\": \"( a ( b ) )\", \"words\": [{\"char\": 2, \"depth\": 1}, {\"char\": 6, \"depth\": 2}]}\n"
                  "{\"text\": \"c\", \"words\": [{\"char\": 0, \"depth\": 0}]}\n");
    rc = pr_data_load(p, "depth", "words", 0, &d, err, sizeof err);
    if (check(rc == 0, "expand=words loads (%s)", err)) {
        check(d.n == 3 && d.n_classes == 3 && d.y[1] == 2 && d.chr[1] == 6, "expand: one example per word");
        pr_data_free(&d);
    }
    rc = pr_data_load(p, "depth", "", 0, &d, err, sizeof err);
    check(rc == LP_EINVAL && strstr(err, ":1"), "a missing label names the line: %s", err);
    snprintf(p, sizeof p, "%s/probe_t3.jsonl", tmp);
    write_file(p, "{\"text\": \"a\", \"label\": 0.5}\n{\"text\": \"b\", \"label\": 2}\n");
    rc = pr_data_load(p, "label", "", 0, &d, err, sizeof err);
    check(rc == LP_EINVAL, "a fractional class label is refused: %s", err);
    rc = pr_data_load(p, "label", "", 1, &d, err, sizeof err);
    if (check(rc == 0 && d.n_classes == 0 && d.y[0] == 0.5, "continuous targets load"))
        pr_data_free(&d);
    rc = pr_data_load("/nonexistent/x.jsonl", "label", "", 0, &d, err, sizeof err);
    check(rc == LP_EIO && strstr(err, "/nonexistent/x.jsonl"), "a missing file names it: %s", err);
}

static void test_files(const char *tmp)
{
    char p[1024], err[512];
    snprintf(p, sizeof p, "%s/probe_t.safetensors", tmp);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {-1, 0.5f};
    pr_named t[2] = {{"w", 2, {2, 3}, a}, {"b", 1, {2}, b}};
    check(pr_write_safetensors(p, t, 2, err, sizeof err) == 0, "write safetensors (%s)", err);
    float *r;
    int64_t n;
    check(pr_read_tensor(p, "b", &r, &n, err, sizeof err) == 0 && n == 2 && r[0] == -1 && r[1] == 0.5f,
          "read it back");
    free(r);
    check(pr_read_tensor(p, "nope", &r, &n, err, sizeof err) == LP_ENOTFOUND, "a missing tensor: %s", err);
    char tmpname[1100];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", p);
    check(access(tmpname, F_OK) != 0, "no temporary file left behind");
    remove(p);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_probe_numerics GOLDEN.json TMPDIR\n");
        return 2;
    }
    test_golden(argv[1]);
    test_auroc();
    test_leace_planted(2, 0.3);
    test_leace_planted(3, 0.3);
    test_datasets(argv[2]);
    test_files(argv[2]);
    return check_done();
}
