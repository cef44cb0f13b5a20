/* sae — sae.auroc: single latents against a labelled variable. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glue.h"

static const lp_param_desc auroc_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder"},
    {"data", LP_PARAM_STRING, NULL, "JSONL with a \"text\" field and labels"},
    {"mode", LP_PARAM_STRING, "passage", "passage: one label per text (label_field); words: labelled char offsets"},
    {"label_field", LP_PARAM_STRING, "label", "passage mode: the numeric label"},
    {"reduce", LP_PARAM_STRING, "last", "passage mode: a latent's value per text: last, max or mean over tokens"},
    {"words_field", LP_PARAM_STRING, "words", "words mode: array of objects with \"char\" and value_field"},
    {"value_field", LP_PARAM_STRING, "depth", "words mode: the numeric value of each word"},
    {"threshold", LP_PARAM_FLOAT, "0", "a sample's label is 1 when its value > threshold"},
    {"prepend_bos", LP_PARAM_INT, "-1", "1/0, or -1: the SAE's prepend_bos"},
    {"max_items", LP_PARAM_INT, "0", "use at most this many lines (0: all)"},
    {"n_best", LP_PARAM_INT, "10", "latents listed"},
};

static const char auroc_help[] =
    "How well single latents track a labelled variable: for every latent, the AUROC of its\n"
    "activation as a score for label 1 (Mann-Whitney, ties counted half). passage mode scores\n"
    "each text once (the latent at the last token, or its max / mean); words mode scores the token\n"
    "at each labelled char offset (e.g. nesting depth > 0). A latent that fires for label 0 has\n"
    "AUROC near 0: `best` ranks by max(AUROC, 1 - AUROC) and says which way.\n"
    "Results: samples, positives, best_auroc, best_feature; table best (feature, auroc,\n"
    "direction, mean_pos, mean_neg); tensor auroc [d_sae].\n";

typedef struct scored {
    float v;
    uint8_t y;
} scored;

static int scored_cmp(const void *a, const void *b)
{
    float x = ((const scored *)a)->v, y = ((const scored *)b)->v;
    return (x > y) - (x < y);
}

static int auroc(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), NULL, &s, hook, sizeof hook);
    if (rc)
        return rc;
    const char *mode = h->param_str(call, "mode"), *red = h->param_str(call, "reduce");
    int words = !strcmp(mode, "words");
    if (!words && strcmp(mode, "passage"))
        return h->error(call, LP_EINVAL, "mode must be passage or words");
    int bos = (int)h->param_int(call, "prepend_bos");
    if (bos < 0)
        bos = s->prepend_bos;
    double thr = h->param_float(call, "threshold");
    int64_t max_items = h->param_int(call, "max_items");
    const char *data = h->param_str(call, "data");
    char *text = sae_slurp(data, NULL);
    if (!text)
        return h->error(call, LP_ENOTFOUND, "data %s: cannot read", data);
    int D = s->d_in, S = s->d_sae, cap = 0, n = 0, npos = 0;
    const lp_config *cfg = h->model_config(m);
    float *X = NULL;   /* [n, S] samples */
    uint8_t *Y = NULL; /* [n] */
    int64_t items = 0;
    for (char *p = text; *p && !rc && (max_items <= 0 || items < max_items);) {
        char *end = strchr(p, '\n');
        if (end)
            *end = 0;
        cJSON *j = cJSON_Parse(p);
        p = end ? end + 1 : p + strlen(p);
        const cJSON *t = cJSON_GetObjectItem(j, "text");
        if (!cJSON_IsString(t)) {
            cJSON_Delete(j);
            continue;
        }
        items++;
        int32_t *ids = NULL;
        int T = 0;
        lp_error e = {0};
        if ((rc = h->tokenize(m, t->valuestring, 0, &ids, &T, &e))) {
            rc = h->error(call, rc, "%s: %s", data, e.msg);
            cJSON_Delete(j);
            break;
        }
        int off0 = bos ? 1 : 0, TT = T + off0;
        if (TT > cfg->n_ctx)
            TT = cfg->n_ctx;
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(TT > 0 ? TT : 1));
        if (bos)
            tok[0] = cfg->bos_token_id >= 0 ? cfg->bos_token_id : cfg->eos_token_id;
        memcpy(tok + off0, ids, sizeof(int32_t) * (size_t)(TT - off0));
        float *x = malloc(sizeof(float) * (size_t)TT * D), *f = malloc(sizeof(float) * (size_t)TT * S);
        hook_io io = {x, D, s->hook_head_index, 0, NULL, 0};
        rc = sae_run_ctx(call, m, tok, 1, TT, hook, &io, NULL);
        if (!rc)
            sae_encode(s, x, TT, f);
        /* samples of this text */
        int want = 0;
        const cJSON *ws = NULL;
        if (!rc && words) {
            ws = cJSON_GetObjectItem(j, h->param_str(call, "words_field"));
            want = cJSON_GetArraySize(ws);
        } else if (!rc)
            want = 1;
        if (n + want > cap) {
            cap = (n + want) * 2 + 64;
            X = realloc(X, sizeof(float) * (size_t)cap * S);
            Y = realloc(Y, (size_t)cap);
        }
        if (!rc && !words) {
            const cJSON *lb = cJSON_GetObjectItem(j, h->param_str(call, "label_field"));
            if (cJSON_IsNumber(lb)) {
                float *o = X + (size_t)n * S;
                int a = off0 < TT ? off0 : 0;
                for (int i = 0; i < S; i++) {
                    double v = !strcmp(red, "last") ? f[(size_t)(TT - 1) * S + i] : 0;
                    if (strcmp(red, "last"))
                        for (int q = a; q < TT; q++) {
                            float fv = f[(size_t)q * S + i];
                            v = !strcmp(red, "max") ? (fv > v ? fv : v) : v + fv / (TT - a);
                        }
                    o[i] = (float)v;
                }
                Y[n] = lb->valuedouble > thr;
                npos += Y[n];
                n++;
            }
        } else if (!rc) {
            /* char offset → token: walk the token bytes */
            int *start = malloc(sizeof(int) * (size_t)(TT + 1));
            int off = 0;
            for (int q = off0; q < TT; q++) {
                char b[256];
                int l = h->token_bytes(m, tok[q], b, sizeof b);
                start[q] = off;
                off += l > 0 ? l : 0;
            }
            start[TT] = off;
            const cJSON *w;
            cJSON_ArrayForEach(w, ws)
            {
                const cJSON *c = cJSON_GetObjectItem(w, "char"),
                            *v = cJSON_GetObjectItem(w, h->param_str(call, "value_field"));
                if (!cJSON_IsNumber(c) || !cJSON_IsNumber(v))
                    continue;
                int ch = c->valueint, q = -1;
                for (int r = off0; r < TT; r++)
                    if (start[r] <= ch && ch < start[r + 1])
                        q = r;
                if (q < 0)
                    continue;
                memcpy(X + (size_t)n * S, f + (size_t)q * S, sizeof(float) * (size_t)S);
                Y[n] = v->valuedouble > thr;
                npos += Y[n];
                n++;
            }
            free(start);
        }
        free(x), free(f), free(tok);
        h->free(ids);
        cJSON_Delete(j);
        if (!rc && h->progress(call, (double)items, max_items > 0 ? (double)max_items : 0, "texts"))
            rc = h->error(call, LP_ECANCELLED, "cancelled");
    }
    free(text);
    if (!rc && (npos == 0 || npos == n))
        rc = h->error(call, LP_EINVAL, "%s: need samples of both labels (%d of %d positive)", data, npos, n);
    if (rc) {
        free(X), free(Y);
        return rc;
    }
    int64_t neS[1] = {S};
    lp_tensor at = h->result_tensor(call, "auroc", 1, neS, "feature");
    scored *col = malloc(sizeof(scored) * (size_t)n);
    float *au = malloc(sizeof(float) * (size_t)S);
    double *mp = calloc((size_t)S, sizeof(double)), *mn = calloc((size_t)S, sizeof(double));
    for (int i = 0; i < S; i++) {
        for (int q = 0; q < n; q++) {
            col[q] = (scored){X[(size_t)q * S + i], Y[q]};
            if (Y[q])
                mp[i] += col[q].v / npos;
            else
                mn[i] += col[q].v / (n - npos);
        }
        qsort(col, (size_t)n, sizeof(scored), scored_cmp);
        double rank_sum = 0; /* ranks of positives, ties averaged */
        for (int a = 0; a < n;) {
            int b = a;
            while (b < n && col[b].v == col[a].v)
                b++;
            double r = (a + 1 + b) / 2.0;
            for (int q = a; q < b; q++)
                if (col[q].y)
                    rank_sum += r;
            a = b;
        }
        double U = rank_sum - (double)npos * (npos + 1) / 2;
        au[i] = (float)(U / ((double)npos * (n - npos)));
        if (at.data)
            ((float *)at.data)[i] = au[i];
    }
    int nb = (int)h->param_int(call, "n_best");
    const char *cols[] = {"feature", "auroc", "direction", "mean_pos", "mean_neg"};
    int tb = h->result_table(call, "best", 5, cols);
    uint8_t *taken = calloc((size_t)S, 1);
    int best = -1;
    for (int r = 0; r < nb && r < S; r++) {
        int bi = -1;
        for (int i = 0; i < S; i++)
            if (!taken[i] && (bi < 0 || fmaxf(au[i], 1 - au[i]) > fmaxf(au[bi], 1 - au[bi])))
                bi = i;
        taken[bi] = 1;
        if (r == 0)
            best = bi;
        lp_cell row[5] = {{1, bi, NULL},
                          {1, fmaxf(au[bi], 1 - au[bi]), NULL},
                          {0, 0, au[bi] >= 0.5f ? "label 1" : "label 0"},
                          {1, mp[bi], NULL},
                          {1, mn[bi], NULL}};
        h->table_row(call, tb, row);
    }
    h->result_scalar(call, "samples", n);
    h->result_scalar(call, "positives", npos);
    h->result_scalar(call, "best_feature", best);
    h->result_scalar(call, "best_auroc", fmaxf(au[best], 1 - au[best]));
    free(taken), free(col), free(au), free(mp), free(mn), free(X), free(Y);
    return 0;
}

const lp_method_desc sae_method_auroc =
    SAE_DESC("auroc", "AUROC of each latent for a labelled variable (passage labels or labelled words)", auroc_help,
             auroc_params, LP_CAP_READS_ACTIVATIONS, auroc);
