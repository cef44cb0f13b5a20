/* sae — sae.encode: the active features of a prompt's tokens. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glue.h"

static const lp_param_desc encode_params[] = {
    {"sae", LP_PARAM_STRING, NULL, "SAE folder (SAELens layout) or Gemma Scope params.npz"},
    {"prompt", LP_PARAM_TEXT, NULL, "the text to encode"},
    {"k", LP_PARAM_INT, "8", "top features listed per token"},
    {"hook", LP_PARAM_STRING, "", "override the SAE's hook point"},
    {"dense", LP_PARAM_BOOL, "false", "also return all activations [pos, d_sae]"},
};

static const char encode_help[] =
    "Run the prompt to the SAE's hook point and encode each token's activation (SAELens'\n"
    "encode: b_dec subtracted when apply_b_dec_to_input, then the architecture's nonlinearity).\n"
    "The SAE stays loaded between calls (reloaded when its file changes).\n"
    "\n"
    "Results: table `features` (pos, token, rank, feature, activation), l0 [pos],\n"
    "recon_error [pos] (|x - x̂| / |x|), forward_ms, encode_ms, acts [pos, d_sae] (dense=true).\n";

static int encode(lp_call *call, const lp_host_api *h)
{
    lp_model *m = h->call_model(call);
    if (!m)
        return h->error(call, LP_EINVAL, "needs a model");
    double t0 = sae_now();
    const sae *s;
    char hook[128];
    int rc = sae_for_model(call, m, h->param_str(call, "sae"), h->param_str(call, "hook"), &s, hook, sizeof hook);
    if (rc)
        return rc;
    int T;
    const int32_t *tok = h->param_tokens(call, "prompt", &T);
    int k = (int)h->param_int(call, "k");
    if (k < 1)
        k = 1;
    if (k > s->d_sae)
        k = s->d_sae;
    int D = s->d_in, S = s->d_sae;
    float *x = malloc(sizeof(float) * (size_t)T * D), *f = malloc(sizeof(float) * (size_t)T * S),
          *xh = malloc(sizeof(float) * (size_t)T * D);
    if (!x || !f || !xh) {
        free(x), free(f), free(xh);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    double t1 = sae_now();
    hook_io io = {x, D, s->hook_head_index, 0, NULL, 0};
    rc = sae_run_ctx(call, m, tok, 1, T, hook, &io, NULL);
    double t2 = sae_now();
    if (!rc && sae_encode(s, x, T, f))
        rc = h->error(call, LP_ENOMEM, "out of memory");
    double t3 = sae_now();
    if (rc) {
        free(x), free(f), free(xh);
        return rc;
    }
    sae_reconstruct(s, x, f, T, xh);
    int *act = malloc(sizeof(int) * (size_t)S);
    if (!act) {
        free(x), free(f), free(xh);
        return h->error(call, LP_ENOMEM, "out of memory");
    }
    const char *cols[] = {"pos", "token", "rank", "feature", "activation"};
    int tb = h->result_table(call, "features", 5, cols);
    int64_t neT[1] = {T}, neTS[2] = {T, S};
    lp_tensor l0 = h->result_tensor(call, "l0", 1, neT, "pos");
    lp_tensor re = h->result_tensor(call, "recon_error", 1, neT, "pos");
    for (int p = 0; p < T; p++) {
        const float *fr = f + (size_t)p * S;
        int cnt = 0;
        for (int i = 0; i < S; i++)
            cnt += fr[i] != 0;
        ((float *)l0.data)[p] = (float)cnt;
        double e2 = 0, x2 = 0;
        for (int d = 0; d < D; d++) {
            double dx = xh[(size_t)p * D + d] - x[(size_t)p * D + d];
            e2 += dx * dx;
            x2 += (double)x[(size_t)p * D + d] * x[(size_t)p * D + d];
        }
        ((float *)re.data)[p] = (float)(x2 > 0 ? sqrt(e2 / x2) : 0);
        char text[96];
        sae_token_text(m, tok[p], text, sizeof text);
        /* the k largest active features: collect the nonzeros, then partial selection */
        int na = 0;
        for (int i = 0; i < S; i++)
            if (fr[i] > 0)
                act[na++] = i;
        for (int r = 0; r < k && r < na; r++) {
            int b = r;
            for (int q = r + 1; q < na; q++)
                if (fr[act[q]] > fr[act[b]] || (fr[act[q]] == fr[act[b]] && act[q] < act[b]))
                    b = q;
            int tmpi = act[r];
            act[r] = act[b];
            act[b] = tmpi;
            lp_cell row[5] = {{1, p, NULL}, {0, 0, text}, {1, r + 1, NULL}, {1, act[r], NULL}, {1, fr[act[r]], NULL}};
            h->table_row(call, tb, row);
        }
    }
    if (h->param_bool(call, "dense")) {
        lp_tensor a = h->result_tensor(call, "acts", 2, neTS, "pos,feature");
        if (a.data)
            memcpy(a.data, f, sizeof(float) * (size_t)T * S);
    }
    h->result_scalar(call, "forward_ms", (t2 - t1) * 1e3);
    h->result_scalar(call, "encode_ms", (t3 - t2) * 1e3);
    h->result_scalar(call, "total_ms", (sae_now() - t0) * 1e3);
    h->result_string(call, "hook", hook);
    free(x), free(f), free(xh), free(act);
    return 0;
}

const lp_method_desc sae_method_encode = SAE_DESC("encode", "active SAE features of each token of a prompt",
                                                  encode_help, encode_params, LP_CAP_READS_ACTIVATIONS, encode);
