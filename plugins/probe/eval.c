/* probe — evaluation: fixed-seed splits by text (examples from one text never straddle
 * train and test), k-fold, accuracy, AUROC, R^2, and the majority-class baseline. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe_impl.h"

uint64_t pr_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int *pr_split(int n_texts, int folds, double test_frac, uint64_t seed, int *n_folds)
{
    int *perm = malloc(sizeof(int) * (size_t)n_texts), *fold = malloc(sizeof(int) * (size_t)n_texts);
    if (!perm || !fold) {
        free(perm);
        free(fold);
        return NULL;
    }
    uint64_t s = seed;
    for (int i = 0; i < n_texts; i++)
        perm[i] = i;
    for (int i = n_texts - 1; i > 0; i--) {
        int j = (int)(pr_rand(&s) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    if (folds > 1) {
        for (int i = 0; i < n_texts; i++)
            fold[perm[i]] = i % folds;
        *n_folds = folds;
    } else {
        int n_test = (int)lround(test_frac * n_texts);
        if (n_test < 1)
            n_test = 1;
        if (n_test >= n_texts)
            n_test = n_texts - 1;
        for (int i = 0; i < n_texts; i++)
            fold[perm[i]] = i < n_test ? 0 : 1;
        *n_folds = 1; /* only fold 0 is a test fold */
    }
    free(perm);
    return fold;
}

typedef struct scored {
    float s;
    int pos;
} scored;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return x < y ? -1 : x > y;
}

/* Mann-Whitney AUROC with ties counted half; NaN when a class is absent. */
double pr_auroc(const float *score, const int *pos, int n)
{
    scored *v = malloc(sizeof(scored) * (size_t)(n > 0 ? n : 1));
    if (!v)
        return NAN;
    long np = 0;
    for (int i = 0; i < n; i++) {
        v[i] = (scored){score[i], pos[i]};
        np += pos[i] != 0;
    }
    long nn = n - np;
    if (!np || !nn) {
        free(v);
        return NAN;
    }
    qsort(v, (size_t)n, sizeof *v, by_score);
    double rank_sum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].s == v[i].s)
            j++;
        double avg = 0.5 * (i + 1 + j); /* ranks i+1..j */
        for (int q = i; q < j; q++)
            if (v[q].pos)
                rank_sum += avg;
        i = j;
    }
    free(v);
    return (rank_sum - (double)np * (np + 1) / 2) / ((double)np * nn);
}

int pr_evaluate(const pr_data *d, const float *X, int dim, const pr_fit_opts *o, const int *fold, int n_folds,
                pr_metrics *m, pr_probe *probe_out)
{
    memset(m, 0, sizeof *m);
    if (probe_out)
        memset(probe_out, 0, sizeof *probe_out);
    int *tr = malloc(sizeof(int) * (size_t)d->n), *te = malloc(sizeof(int) * (size_t)d->n);
    int K = d->n_classes > 2 ? d->n_classes : 1;
    float *sc = malloc(sizeof(float) * (size_t)d->n * K), *col = malloc(sizeof(float) * (size_t)d->n);
    int *lab = malloc(sizeof(int) * (size_t)d->n);
    long *cnt = calloc((size_t)(d->n_classes > 0 ? d->n_classes : 1), sizeof(long));
    int rc = 0, nf_used = 0;
    double acc = 0, au = 0, maj = 0;
    int au_n = 0;
    if (!tr || !te || !sc || !col || !lab || !cnt) {
        rc = LP_ENOMEM;
        goto out;
    }
    for (int f = 0; f < n_folds; f++) {
        int ntr = 0, nte = 0;
        for (int i = 0; i < d->n; i++) {
            if (fold[d->tix[i]] == f)
                te[nte++] = i;
            else
                tr[ntr++] = i;
        }
        if (!nte || ntr < 2)
            continue;
        pr_probe p;
        if ((rc = pr_fit(&p, o, X, dim, d->y, tr, ntr, d->n_classes)))
            goto out;
        pr_scores(&p, X, te, nte, sc);
        if (d->n_classes == 0) { /* R^2, and the train mean's R^2 as the baseline */
            double ym = 0, yt = 0, ss_res = 0, ss_tot = 0, ss_base = 0;
            for (int i = 0; i < ntr; i++)
                ym += d->y[tr[i]];
            ym /= ntr;
            for (int i = 0; i < nte; i++)
                yt += d->y[te[i]];
            yt /= nte;
            for (int i = 0; i < nte; i++) {
                double t = d->y[te[i]];
                ss_res += (sc[i] - t) * (sc[i] - t);
                ss_tot += (t - yt) * (t - yt);
                ss_base += (ym - t) * (ym - t);
            }
            ss_tot = ss_tot > 0 ? ss_tot : 1;
            acc += 1 - ss_res / ss_tot;
            maj += 1 - ss_base / ss_tot;
        } else {
            memset(cnt, 0, sizeof(long) * (size_t)d->n_classes);
            for (int i = 0; i < ntr; i++)
                cnt[(int)d->y[tr[i]]]++;
            int mc = 0;
            for (int c = 1; c < d->n_classes; c++)
                if (cnt[c] > cnt[mc])
                    mc = c;
            int hit = 0, mhit = 0;
            for (int i = 0; i < nte; i++) {
                int yy = (int)d->y[te[i]];
                hit += (int)pr_predict_row(&p, sc + (size_t)i * p.k) == yy;
                mhit += yy == mc;
            }
            acc += (double)hit / nte;
            maj += (double)mhit / nte;
            /* AUROC: binary on the score; more classes: macro one-vs-rest */
            double a = 0;
            int an = 0;
            for (int c = (p.k == 1 ? 1 : 0); c < (p.k == 1 ? 2 : p.k); c++) {
                for (int i = 0; i < nte; i++) {
                    col[i] = sc[(size_t)i * p.k + (p.k == 1 ? 0 : c)];
                    lab[i] = (int)d->y[te[i]] == c;
                }
                double v = pr_auroc(col, lab, nte);
                if (!isnan(v)) {
                    a += v;
                    an++;
                }
            }
            if (an) {
                au += a / an;
                au_n++;
            }
        }
        m->n_test += nte;
        nf_used++;
        if (probe_out && f == n_folds - 1)
            *probe_out = p;
        else
            pr_probe_free(&p);
    }
    if (!nf_used) {
        rc = LP_EINVAL;
        goto out;
    }
    m->acc = acc / nf_used;
    m->majority = maj / nf_used;
    m->auroc = au_n ? au / au_n : NAN;
out:
    free(tr);
    free(te);
    free(sc);
    free(col);
    free(lab);
    free(cnt);
    return rc;
}

int pr_accuracy_rows(const pr_data *d, const float *X, int dim, const pr_fit_opts *o, const int *tr, int ntr,
                     const int *te, int nte, double *acc, double *majority)
{
    pr_probe p;
    int rc = pr_fit(&p, o, X, dim, d->y, tr, ntr, d->n_classes);
    if (rc)
        return rc;
    float *sc = malloc(sizeof(float) * (size_t)(nte > 0 ? nte : 1) * p.k);
    long *cnt = calloc((size_t)d->n_classes + 1, sizeof(long));
    if (!sc || !cnt) {
        free(sc);
        free(cnt);
        pr_probe_free(&p);
        return LP_ENOMEM;
    }
    pr_scores(&p, X, te, nte, sc);
    for (int i = 0; i < ntr; i++)
        cnt[(int)d->y[tr[i]]]++;
    int mc = 0;
    for (int c = 1; c < d->n_classes; c++)
        if (cnt[c] > cnt[mc])
            mc = c;
    int hit = 0, mhit = 0;
    for (int i = 0; i < nte; i++) {
        hit += (int)pr_predict_row(&p, sc + (size_t)i * p.k) == (int)d->y[te[i]];
        mhit += (int)d->y[te[i]] == mc;
    }
    *acc = nte ? (double)hit / nte : NAN;
    if (majority)
        *majority = nte ? (double)mhit / nte : NAN;
    free(sc);
    free(cnt);
    pr_probe_free(&p);
    return 0;
}
