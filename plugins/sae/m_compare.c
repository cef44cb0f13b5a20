/* sae — sae.compare: mean max cosine similarity of two dictionaries. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glue.h"

static const lp_param_desc compare_params[] = {
    {"a", LP_PARAM_STRING, NULL, "first SAE folder"},
    {"b", LP_PARAM_STRING, NULL, "second SAE folder"},
};

static const char compare_help[] =
    "Mean max cosine similarity between decoder directions: for each latent of A the best\n"
    "cosine with any latent of B (and the other way). 1 means every direction of A is in B.\n"
    "Results: mmcs_ab, mmcs_ba, max_cos_ab [d_sae of A], matched_0_9 (fraction of A above 0.9).\n";

static void unit_rows(const float *W, int n, int d, float *out)
{
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int k = 0; k < d; k++)
            ss += (double)W[(size_t)i * d + k] * W[(size_t)i * d + k];
        float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
        for (int k = 0; k < d; k++)
            out[(size_t)i * d + k] = W[(size_t)i * d + k] * inv;
    }
}

static int compare(lp_call *call, const lp_host_api *h)
{
    sae A, B;
    char err[SAE_ERR_MAX];
    int rc = sae_load(h->param_str(call, "a"), &A, err);
    if (rc)
        return h->error(call, rc, "%s", err);
    if ((rc = sae_load(h->param_str(call, "b"), &B, err))) {
        sae_free(&A);
        return h->error(call, rc, "%s", err);
    }
    if (A.d_in != B.d_in) {
        sae_free(&A), sae_free(&B);
        return h->error(call, LP_EINVAL, "the SAEs have different d_in (%d and %d)", A.d_in, B.d_in);
    }
    int d = A.d_in, na = A.d_sae, nb = B.d_sae, CH = 512;
    float *ua = malloc(sizeof(float) * (size_t)na * d), *ub = malloc(sizeof(float) * (size_t)nb * d),
          *sim = malloc(sizeof(float) * (size_t)CH * nb), *best_b = malloc(sizeof(float) * (size_t)nb);
    int64_t ne[1] = {na};
    lp_tensor mc = h->result_tensor(call, "max_cos_ab", 1, ne, "feature");
    if (!ua || !ub || !sim || !best_b || !mc.data) {
        rc = h->error(call, LP_ENOMEM, "out of memory");
        goto out;
    }
    unit_rows(A.W_dec, na, d, ua);
    unit_rows(B.W_dec, nb, d, ub);
    for (int j = 0; j < nb; j++)
        best_b[j] = -2;
    double sab = 0, sba = 0;
    int matched = 0;
    for (int i0 = 0; i0 < na; i0 += CH) {
        int n = na - i0 < CH ? na - i0 : CH;
        sae_host->sgemm(0, 1, n, nb, d, 1.0f, ua + (size_t)i0 * d, d, ub, d, 0.0f, sim, nb);
        for (int i = 0; i < n; i++) {
            float bst = -2;
            for (int j = 0; j < nb; j++) {
                float v = sim[(size_t)i * nb + j];
                bst = v > bst ? v : bst;
                best_b[j] = v > best_b[j] ? v : best_b[j];
            }
            ((float *)mc.data)[i0 + i] = bst;
            sab += bst;
            matched += bst > 0.9f;
        }
        if (h->progress(call, i0 + n, na, "latents")) {
            rc = h->error(call, LP_ECANCELLED, "cancelled");
            goto out;
        }
    }
    for (int j = 0; j < nb; j++)
        sba += best_b[j];
    h->result_scalar(call, "mmcs_ab", sab / na);
    h->result_scalar(call, "mmcs_ba", sba / nb);
    h->result_scalar(call, "matched_0_9", (double)matched / na);
out:
    free(ua), free(ub), free(sim), free(best_b);
    sae_free(&A), sae_free(&B);
    return rc;
}

const lp_method_desc sae_method_compare =
    SAE_DESC("compare", "mean max cosine similarity between two SAEs' decoder directions", compare_help, compare_params,
             0, compare);
