/* Binding checkpoint tensors to the model's weight slots, per architecture.
 * Every tensor in the files must be either used or a known buffer; every needed
 * tensor must exist with the exact shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

typedef struct binder {
    lp_model *m;
    lp_error *err;
    const char *prefix;   /* "transformer.", "model.", "gpt_neox." */
    unsigned char **used; /* per file, per tensor */
    int rc;
} binder;

static int locate(binder *b, const char *name, int *fi, int *ti)
{
    char full[512];
    for (int pass = 0; pass < 2; pass++) {
        const char *n = name;
        if (pass == 0 && b->prefix) {
            snprintf(full, sizeof full, "%s%s", b->prefix, name);
            n = full;
        } else if (pass == 0) {
            continue;
        }
        for (int f = 0; f < b->m->n_files; f++) {
            int t = lp_st_find(b->m->files[f], n);
            if (t >= 0) {
                *fi = f;
                *ti = t;
                return 1;
            }
        }
    }
    return 0;
}

static int keep_owned(lp_model *m, float *p)
{
    if (m->n_owned == m->cap_owned) {
        int nc = m->cap_owned ? 2 * m->cap_owned : 64;
        float **no = realloc(m->owned, (size_t)nc * sizeof *no);
        if (!no)
            return LP_ENOMEM;
        m->owned = no;
        m->cap_owned = nc;
    }
    m->owned[m->n_owned++] = p;
    return LP_OK;
}

/* An f32 view of a tensor with exactly the given shape (n dims), or NULL with b->rc set. */
static const float *get(binder *b, const char *name, int nd, int64_t d0, int64_t d1)
{
    if (b->rc)
        return NULL;
    int fi, ti;
    if (!locate(b, name, &fi, &ti)) {
        /* name the weight file (or the shard index) the tensor should have been in */
        if (b->m->n_files == 1)
            b->rc = lp_error_set(b->err, LP_ENOTFOUND, "%s: missing tensor '%s%s'", lp_st_path(b->m->files[0]),
                                 b->prefix ? b->prefix : "", name);
        else
            b->rc = lp_error_set(b->err, LP_ENOTFOUND, "%s/model.safetensors.index.json: missing tensor '%s%s'",
                                 b->m->dir, b->prefix ? b->prefix : "", name);
        return NULL;
    }
    lp_st_file *f = b->m->files[fi];
    lp_tensor t = lp_st_tensor(f, ti);
    int64_t want[2] = {d0, d1};
    int ok = t.ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = t.ne[i] == want[i];
    if (!ok) {
        char got[128] = "", exp[64] = "";
        size_t l = 0;
        for (int i = 0; i < t.ndim; i++)
            l += (size_t)snprintf(got + l, sizeof got - l, "%s%lld", i ? ", " : "", (long long)t.ne[i]);
        if (nd == 1)
            snprintf(exp, sizeof exp, "%lld", (long long)d0);
        else
            snprintf(exp, sizeof exp, "%lld, %lld", (long long)d0, (long long)d1);
        b->rc = lp_error_set(b->err, LP_EFORMAT, "%s: tensor '%s' has shape [%s], config says [%s]", lp_st_path(f),
                             lp_st_name(f, ti), got, exp);
        return NULL;
    }
    if (t.dtype != LP_F32 && t.dtype != LP_F16 && t.dtype != LP_BF16 && t.dtype != LP_F64) {
        b->rc = lp_error_set(b->err, LP_EUNSUPPORTED, "%s: tensor '%s' has dtype %s; weights must be floating point",
                             lp_st_path(f), lp_st_name(f, ti), lp_dtype_name(t.dtype));
        return NULL;
    }
    int64_t nel = lp_tensor_nelem(&t);
    b->used[fi][ti] = 1;
    b->m->n_params += nel;
    if (t.dtype == LP_F32 && ((uintptr_t)t.data & 3) == 0)
        return t.data;
    float *buf = lpi_aligned_alloc((size_t)nel * 4);
    if (!buf || keep_owned(b->m, buf)) {
        free(buf);
        b->rc = lp_error_set(b->err, LP_ENOMEM, "%s: out of memory converting '%s'", lp_st_path(f), name);
        return NULL;
    }
    lp_tensor_to_f32(&t, buf);
    lp_st_release(f, ti);
    return buf;
}

static lpi_linear lin(binder *b, const char *wname, const char *bname, int n_in, int n_out, int trans)
{
    lpi_linear l = {0};
    l.n_in = n_in;
    l.n_out = n_out;
    l.trans = trans;
    l.ld = trans ? n_in : n_out;
    l.w = trans ? get(b, wname, 2, n_out, n_in) : get(b, wname, 2, n_in, n_out);
    if (bname)
        l.b = get(b, bname, 1, n_out, 0);
    return l;
}

static int is_known_buffer(const char *n)
{
    static const char *const suffixes[] = {".attn.bias", ".attn.masked_bias", ".attention.bias",
                                           ".attention.masked_bias", ".rotary_emb.inv_freq"};
    size_t ln = strlen(n);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t ls = strlen(suffixes[i]);
        if (ln >= ls && strcmp(n + ln - ls, suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

/* The unembedding: the separate head `name` unless the config ties it to the token
 * embedding. Checkpoints that store a tied head anyway have it accepted (and unused). */
static void bind_unembed(binder *b, const char *name)
{
    lp_model *m = b->m;
    const lp_config *c = &m->cfg;
    b->prefix = NULL;
    if (!c->tied_embeddings) {
        m->unembed = lin(b, name, NULL, c->d_model, c->d_vocab, 1);
        return;
    }
    int fi, ti;
    if (locate(b, name, &fi, &ti))
        b->used[fi][ti] = 1;
    m->unembed = (lpi_linear){m->wte, NULL, c->d_model, c->d_vocab, 1, c->d_model};
}

static void bind_gpt2(binder *b)
{
    lp_model *m = b->m;
    const lp_config *c = &m->cfg;
    int D = c->d_model, F = c->d_mlp;
    b->prefix = "transformer.";
    m->wte = get(b, "wte.weight", 2, c->d_vocab, D);
    m->wpe = get(b, "wpe.weight", 2, c->n_ctx, D);
    char n1[128], n2[128];
    for (int L = 0; L < c->n_layers && !b->rc; L++) {
        lpi_layer *y = &m->layers[L];
#define NM(buf, s) (snprintf(buf, sizeof buf, "h.%d." s, L), buf)
        y->ln1_w = get(b, NM(n1, "ln_1.weight"), 1, D, 0);
        y->ln1_b = get(b, NM(n1, "ln_1.bias"), 1, D, 0);
        y->ln2_w = get(b, NM(n1, "ln_2.weight"), 1, D, 0);
        y->ln2_b = get(b, NM(n1, "ln_2.bias"), 1, D, 0);
        y->qkv = lin(b, NM(n1, "attn.c_attn.weight"), NM(n2, "attn.c_attn.bias"), D, 3 * D, 0);
        y->o = lin(b, NM(n1, "attn.c_proj.weight"), NM(n2, "attn.c_proj.bias"), D, D, 0);
        y->mlp_in = lin(b, NM(n1, "mlp.c_fc.weight"), NM(n2, "mlp.c_fc.bias"), D, F, 0);
        y->mlp_out = lin(b, NM(n1, "mlp.c_proj.weight"), NM(n2, "mlp.c_proj.bias"), F, D, 0);
#undef NM
    }
    m->lnf_w = get(b, "ln_f.weight", 1, D, 0);
    m->lnf_b = get(b, "ln_f.bias", 1, D, 0);
    bind_unembed(b, "lm_head.weight");
}

static void bind_llama(binder *b)
{
    lp_model *m = b->m;
    const lp_config *c = &m->cfg;
    int D = c->d_model, F = c->d_mlp, HQ = c->n_heads * c->d_head, HK = c->n_kv_heads * c->d_head;
    b->prefix = "model.";
    m->wte = get(b, "embed_tokens.weight", 2, c->d_vocab, D);
    char n1[128], n2[128];
    for (int L = 0; L < c->n_layers && !b->rc; L++) {
        lpi_layer *y = &m->layers[L];
#define NM(buf, s) (snprintf(buf, sizeof buf, "layers.%d." s, L), buf)
#define BIAS(buf, s, on) ((on) ? NM(buf, s) : NULL)
        y->ln1_w = get(b, NM(n1, "input_layernorm.weight"), 1, D, 0);
        y->ln2_w = get(b, NM(n1, "post_attention_layernorm.weight"), 1, D, 0);
        y->q = lin(b, NM(n1, "self_attn.q_proj.weight"), BIAS(n2, "self_attn.q_proj.bias", c->attn_bias), D, HQ, 1);
        y->k = lin(b, NM(n1, "self_attn.k_proj.weight"), BIAS(n2, "self_attn.k_proj.bias", c->attn_bias), D, HK, 1);
        y->v = lin(b, NM(n1, "self_attn.v_proj.weight"), BIAS(n2, "self_attn.v_proj.bias", c->attn_bias), D, HK, 1);
        y->o = lin(b, NM(n1, "self_attn.o_proj.weight"), BIAS(n2, "self_attn.o_proj.bias", c->attn_bias), HQ, D, 1);
        y->mlp_gate = lin(b, NM(n1, "mlp.gate_proj.weight"), BIAS(n2, "mlp.gate_proj.bias", c->mlp_bias), D, F, 1);
        y->mlp_in = lin(b, NM(n1, "mlp.up_proj.weight"), BIAS(n2, "mlp.up_proj.bias", c->mlp_bias), D, F, 1);
        y->mlp_out = lin(b, NM(n1, "mlp.down_proj.weight"), BIAS(n2, "mlp.down_proj.bias", c->mlp_bias), F, D, 1);
#undef BIAS
#undef NM
    }
    m->lnf_w = get(b, "norm.weight", 1, D, 0);
    bind_unembed(b, "lm_head.weight");
}

static void bind_neox(binder *b)
{
    lp_model *m = b->m;
    const lp_config *c = &m->cfg;
    int D = c->d_model, F = c->d_mlp;
    b->prefix = "gpt_neox.";
    m->wte = get(b, "embed_in.weight", 2, c->d_vocab, D);
    char n1[128], n2[128];
    for (int L = 0; L < c->n_layers && !b->rc; L++) {
        lpi_layer *y = &m->layers[L];
#define NM(buf, s) (snprintf(buf, sizeof buf, "layers.%d." s, L), buf)
        y->ln1_w = get(b, NM(n1, "input_layernorm.weight"), 1, D, 0);
        y->ln1_b = get(b, NM(n1, "input_layernorm.bias"), 1, D, 0);
        y->ln2_w = get(b, NM(n1, "post_attention_layernorm.weight"), 1, D, 0);
        y->ln2_b = get(b, NM(n1, "post_attention_layernorm.bias"), 1, D, 0);
        y->qkv = lin(b, NM(n1, "attention.query_key_value.weight"),
                     c->attn_bias ? NM(n2, "attention.query_key_value.bias") : NULL, D, 3 * D, 1);
        y->o = lin(b, NM(n1, "attention.dense.weight"), c->attn_bias ? NM(n2, "attention.dense.bias") : NULL, D, D,
                   1);
        y->mlp_in = lin(b, NM(n1, "mlp.dense_h_to_4h.weight"), NM(n2, "mlp.dense_h_to_4h.bias"), D, F, 1);
        y->mlp_out = lin(b, NM(n1, "mlp.dense_4h_to_h.weight"), NM(n2, "mlp.dense_4h_to_h.bias"), F, D, 1);
#undef NM
    }
    m->lnf_w = get(b, "final_layer_norm.weight", 1, D, 0);
    m->lnf_b = get(b, "final_layer_norm.bias", 1, D, 0);
    bind_unembed(b, "embed_out.weight");
}

int lpi_model_bind(lp_model *m, lp_error *err)
{
    binder b = {m, err, NULL, NULL, LP_OK};
    m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
    b.used = calloc((size_t)m->n_files, sizeof *b.used);
    if (!m->layers || !b.used) {
        free(b.used);
        return lp_error_set(err, LP_ENOMEM, "out of memory");
    }
    for (int f = 0; f < m->n_files; f++)
        b.used[f] = calloc((size_t)lp_st_count(m->files[f]) + 1, 1);
    switch (m->cfg.arch) {
    case LP_ARCH_GPT2: bind_gpt2(&b); break;
    case LP_ARCH_LLAMA: bind_llama(&b); break;
    case LP_ARCH_GPT_NEOX: bind_neox(&b); break;
    }
    for (int f = 0; f < m->n_files && !b.rc; f++)
        for (int t = 0; t < lp_st_count(m->files[f]); t++)
            if (!b.used[f][t] && !is_known_buffer(lp_st_name(m->files[f], t))) {
                b.rc = lp_error_set(err, LP_EFORMAT, "%s: unexpected tensor '%s' for a %s model",
                                    lp_st_path(m->files[f]), lp_st_name(m->files[f], t), m->cfg.model_type);
                break;
            }
    for (int f = 0; f < m->n_files; f++)
        free(b.used[f]);
    free(b.used);
    if (b.rc)
        return b.rc;
    if (m->cfg.rotary_dim > 0) {
        int half = m->cfg.rotary_dim / 2;
        m->rope_inv_freq = malloc((size_t)half * sizeof(float));
        if (!m->rope_inv_freq)
            return lp_error_set(err, LP_ENOMEM, "out of memory");
        for (int i = 0; i < half; i++)
            m->rope_inv_freq[i] = 1.0f / powf(m->cfg.rope_theta, (float)(2 * i) / (float)m->cfg.rotary_dim);
    }
    return LP_OK;
}
