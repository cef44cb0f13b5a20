/* Weights by TransformerLens name, as strided views into the model's own storage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

static lp_tensor vec(const float *p, int64_t n)
{
    return lp_tensor_make(LP_F32, (void *)p, 1, &n);
}

/* [n_in, n_out] view of a linear layer's weight (whatever its storage order). */
static lp_tensor lin_view(const lpi_linear *l)
{
    int64_t ne[2] = {l->n_in, l->n_out};
    lp_tensor t = lp_tensor_make(LP_F32, (void *)l->w, 2, ne);
    if (l->trans) {
        t.nb[0] = 4;
        t.nb[1] = (int64_t)l->ld * 4;
    } else {
        t.nb[0] = (int64_t)l->ld * 4;
        t.nb[1] = 4;
    }
    return t;
}

static lp_tensor t3(const float *p, int64_t a, int64_t b, int64_t c, int64_t sa, int64_t sb, int64_t sc)
{
    int64_t ne[3] = {a, b, c};
    lp_tensor t = lp_tensor_make(LP_F32, (void *)p, 3, ne);
    t.nb[0] = sa * 4;
    t.nb[1] = sb * 4;
    t.nb[2] = sc * 4;
    return t;
}

/* W_Q/W_K/W_V (s = 0/1/2) as [heads, d_model, d_head]. */
static int qkv_weight(const lp_model *m, const lpi_layer *y, int s, lp_tensor *out)
{
    const lp_config *c = &m->cfg;
    int64_t D = c->d_model, H = c->n_heads, Dh = c->d_head;
    switch (c->arch) {
    case LP_ARCH_GPT2: *out = t3(y->qkv.w + s * D, H, D, Dh, Dh, 3 * D, 1); return LP_OK;
    case LP_ARCH_GPT_NEOX: *out = t3(y->qkv.w + s * Dh * D, H, D, Dh, 3 * Dh * D, 1, D); return LP_OK;
    case LP_ARCH_LLAMA: {
        const lpi_linear *l = s == 0 ? &y->q : s == 1 ? &y->k : &y->v;
        int64_t hh = s == 0 ? H : c->n_kv_heads;
        *out = t3(l->w, hh, D, Dh, Dh * D, 1, D);
        return LP_OK;
    }
    }
    return LP_ENOTFOUND;
}

static int qkv_bias(const lp_model *m, const lpi_layer *y, int s, lp_tensor *out)
{
    const lp_config *c = &m->cfg;
    int64_t D = c->d_model, H = c->n_heads, Dh = c->d_head;
    int64_t ne[2] = {H, Dh};
    switch (c->arch) {
    case LP_ARCH_GPT2:
        if (!y->qkv.b)
            return LP_ENOTFOUND;
        *out = lp_tensor_make(LP_F32, (void *)(y->qkv.b + s * D), 2, ne);
        return LP_OK;
    case LP_ARCH_GPT_NEOX:
        if (!y->qkv.b)
            return LP_ENOTFOUND;
        *out = lp_tensor_make(LP_F32, (void *)(y->qkv.b + s * Dh), 2, ne);
        out->nb[0] = 3 * Dh * 4;
        return LP_OK;
    case LP_ARCH_LLAMA: {
        const lpi_linear *l = s == 0 ? &y->q : s == 1 ? &y->k : &y->v;
        if (!l->b)
            return LP_ENOTFOUND;
        ne[0] = s == 0 ? H : c->n_kv_heads;
        *out = lp_tensor_make(LP_F32, (void *)l->b, 2, ne);
        return LP_OK;
    }
    }
    return LP_ENOTFOUND;
}

static int block_weight(const lp_model *m, int L, const char *n, lp_tensor *out)
{
    const lp_config *c = &m->cfg;
    const lpi_layer *y = &m->layers[L];
    int64_t D = c->d_model, H = c->n_heads, Dh = c->d_head;
    const float *p = NULL;
    if (!strcmp(n, "ln1.w")) p = y->ln1_w;
    else if (!strcmp(n, "ln1.b")) p = y->ln1_b;
    else if (!strcmp(n, "ln2.w")) p = y->ln2_w;
    else if (!strcmp(n, "ln2.b")) p = y->ln2_b;
    else if (!strcmp(n, "attn.b_O")) p = y->o.b;
    else if (!strcmp(n, "mlp.b_in")) p = y->mlp_in.b;
    else if (!strcmp(n, "mlp.b_gate")) p = y->mlp_gate.b;
    else if (!strcmp(n, "mlp.b_out")) p = y->mlp_out.b;
    if (p) {
        int64_t len = !strncmp(n, "mlp.b_in", 8) || !strncmp(n, "mlp.b_gate", 10) ? c->d_mlp : D;
        *out = vec(p, len);
        return LP_OK;
    }
    static const char *const qkvw[] = {"attn.W_Q", "attn.W_K", "attn.W_V"};
    static const char *const qkvb[] = {"attn.b_Q", "attn.b_K", "attn.b_V"};
    for (int s = 0; s < 3; s++) {
        if (!strcmp(n, qkvw[s]))
            return qkv_weight(m, y, s, out);
        if (!strcmp(n, qkvb[s]))
            return qkv_bias(m, y, s, out);
    }
    if (!strcmp(n, "attn.W_O")) {
        if (y->o.trans)
            *out = t3(y->o.w, H, Dh, D, Dh, 1, H * Dh);
        else
            *out = t3(y->o.w, H, Dh, D, Dh * D, D, 1);
        return LP_OK;
    }
    if (!strcmp(n, "mlp.W_in")) {
        *out = lin_view(&y->mlp_in);
        return LP_OK;
    }
    if (!strcmp(n, "mlp.W_gate") && c->gated_mlp) {
        *out = lin_view(&y->mlp_gate);
        return LP_OK;
    }
    if (!strcmp(n, "mlp.W_out")) {
        *out = lin_view(&y->mlp_out);
        return LP_OK;
    }
    return LP_ENOTFOUND;
}

int lp_model_weight(const lp_model *m, const char *name, lp_tensor *out, lp_error *err)
{
    const lp_config *c = &m->cfg;
    int rc = LP_ENOTFOUND;
    if (!strcmp(name, "W_E")) {
        int64_t ne[2] = {c->d_vocab, c->d_model};
        *out = lp_tensor_make(LP_F32, (void *)m->wte, 2, ne);
        rc = LP_OK;
    } else if (!strcmp(name, "W_pos") && m->wpe) {
        int64_t ne[2] = {c->n_ctx, c->d_model};
        *out = lp_tensor_make(LP_F32, (void *)m->wpe, 2, ne);
        rc = LP_OK;
    } else if (!strcmp(name, "W_U")) {
        *out = lin_view(&m->unembed);
        rc = LP_OK;
    } else if (!strcmp(name, "b_U") && m->b_U) {
        *out = vec(m->b_U, c->d_vocab);
        rc = LP_OK;
    } else if (!strcmp(name, "ln_final.w") && m->lnf_w) {
        *out = vec(m->lnf_w, c->d_model);
        rc = LP_OK;
    } else if (!strcmp(name, "ln_final.b") && m->lnf_b) {
        *out = vec(m->lnf_b, c->d_model);
        rc = LP_OK;
    } else if (!strncmp(name, "blocks.", 7)) {
        char *end;
        long L = strtol(name + 7, &end, 10);
        if (end != name + 7 && *end == '.' && L >= 0 && L < c->n_layers)
            rc = block_weight(m, (int)L, end + 1, out);
        else if (end != name + 7 && *end == '.')
            return lp_error_set(err, LP_EINVAL, "weight '%s': block %ld out of range 0..%d", name, L, c->n_layers - 1);
    }
    if (rc == LP_OK && out->data == NULL)
        rc = LP_ENOTFOUND;
    if (rc)
        return lp_error_set(err, LP_ENOTFOUND, "weight '%s' does not exist in this %s model", name, c->model_type);
    return LP_OK;
}
