/* config.json → lp_config for the supported architectures. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe_impl.h"

typedef struct reader {
    const cJSON *root;
    const char *path;
    lp_error *err;
    int rc;
} reader;

/* An integer field; `def` < 0 with required=1 means it must be present. */
static int get_int(reader *r, const char *key, int def, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required && !r->rc)
            r->rc = lp_error_set(r->err, LP_EFORMAT, "%s: missing required field '%s'", r->path, key);
        return def;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 1e9) {
        if (!r->rc)
            r->rc = lp_error_set(r->err, LP_EFORMAT, "%s: field '%s' must be a non-negative integer", r->path, key);
        return def;
    }
    return (int)v->valuedouble;
}

static double get_num(reader *r, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v))
        return def;
    if (!cJSON_IsNumber(v)) {
        if (!r->rc)
            r->rc = lp_error_set(r->err, LP_EFORMAT, "%s: field '%s' must be a number", r->path, key);
        return def;
    }
    return v->valuedouble;
}

static int get_bool(reader *r, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v))
        return def;
    if (!cJSON_IsBool(v)) {
        if (!r->rc)
            r->rc = lp_error_set(r->err, LP_EFORMAT, "%s: field '%s' must be true or false", r->path, key);
        return def;
    }
    return cJSON_IsTrue(v);
}

static const char *get_str(reader *r, const char *key, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v))
        return def;
    if (!cJSON_IsString(v)) {
        if (!r->rc)
            r->rc = lp_error_set(r->err, LP_EFORMAT, "%s: field '%s' must be a string", r->path, key);
        return def;
    }
    return v->valuestring;
}

static int parse_act(reader *r, const char *name, lp_act_kind *out)
{
    static const struct {
        const char *n;
        lp_act_kind k;
    } acts[] = {{"gelu_new", LP_ACT_GELU_TANH},          {"gelu_pytorch_tanh", LP_ACT_GELU_TANH},
                {"gelu_fast", LP_ACT_GELU_TANH},         {"gelu", LP_ACT_GELU_ERF},
                {"silu", LP_ACT_SILU},                   {"swish", LP_ACT_SILU},
                {"relu", LP_ACT_RELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(name, acts[i].n) == 0) {
            *out = acts[i].k;
            return LP_OK;
        }
    return lp_error_set(r->err, LP_EUNSUPPORTED, "%s: unsupported activation function '%s'", r->path, name);
}

/* A token id (number or first element of an array); -1 when absent or not a valid id
 * (out-of-range doubles are not converted: that would be undefined behaviour). */
static int token_id(reader *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (cJSON_IsArray(v))
        v = cJSON_GetArrayItem(v, 0);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2147483647.0)
        return (int)v->valuedouble;
    return -1;
}

int lpi_config_parse(const char *path, lp_config *cfg, lp_error *err)
{
    char *text;
    size_t len;
    int rc = lpi_read_file(path, &text, &len, err);
    if (rc)
        return rc;
    rc = lpi_config_parse_mem(text, len, path, cfg, err);
    free(text);
    return rc;
}

int lpi_config_parse_mem(const char *text, size_t len, const char *path, lp_config *cfg, lp_error *err)
{
    if (!path)
        path = "config.json";
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root)
        return lp_error_set(err, LP_EFORMAT, "%s: not valid JSON", path);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lp_error_set(err, LP_EFORMAT, "%s: not a JSON object", path);
    }
    reader r = {root, path, err, LP_OK};
    memset(cfg, 0, sizeof *cfg);
    const char *mt = get_str(&r, "model_type", NULL);
    if (!mt) {
        cJSON_Delete(root);
        return r.rc ? r.rc : lp_error_set(err, LP_EFORMAT, "%s: missing 'model_type'", path);
    }
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt);
    snprintf(cfg->dtype, sizeof cfg->dtype, "%s", get_str(&r, "torch_dtype", "float32"));
    cfg->bos_token_id = token_id(&r, "bos_token_id");
    cfg->eos_token_id = token_id(&r, "eos_token_id");
    const char *act = NULL;
    if (strcmp(mt, "gpt2") == 0) {
        cfg->arch = LP_ARCH_GPT2;
        cfg->d_model = get_int(&r, "n_embd", 768, 0);
        cfg->n_layers = get_int(&r, "n_layer", 12, 0);
        cfg->n_heads = get_int(&r, "n_head", 12, 0);
        cfg->n_ctx = get_int(&r, "n_positions", 1024, 0);
        cfg->d_vocab = get_int(&r, "vocab_size", 50257, 0);
        cfg->d_mlp = get_int(&r, "n_inner", 0, 0);
        if (cfg->d_mlp == 0 && cfg->d_model <= (1 << 20))
            cfg->d_mlp = 4 * cfg->d_model; /* (bounded: get_int allows up to 1e9) */
        cfg->norm = LP_NORM_LAYERNORM;
        cfg->norm_eps = (float)get_num(&r, "layer_norm_epsilon", 1e-5);
        act = get_str(&r, "activation_function", "gelu_new");
        cfg->learned_pos = 1;
        cfg->tied_embeddings = get_bool(&r, "tie_word_embeddings", 1);
        cfg->attn_bias = cfg->mlp_bias = 1;
        int scale = get_bool(&r, "scale_attn_weights", 1);
        cfg->scale_attn_by_inverse_layer_idx = get_bool(&r, "scale_attn_by_inverse_layer_idx", 0);
        cfg->n_kv_heads = cfg->n_heads;
        cfg->d_head = cfg->n_heads ? cfg->d_model / cfg->n_heads : 0;
        cfg->attn_scale = scale && cfg->d_head ? 1.0f / sqrtf((float)cfg->d_head) : 1.0f;
    } else if (strcmp(mt, "llama") == 0) {
        cfg->arch = LP_ARCH_LLAMA;
        cfg->d_model = get_int(&r, "hidden_size", 0, 1);
        cfg->n_layers = get_int(&r, "num_hidden_layers", 0, 1);
        cfg->n_heads = get_int(&r, "num_attention_heads", 0, 1);
        cfg->n_kv_heads = get_int(&r, "num_key_value_heads", cfg->n_heads, 0);
        cfg->d_mlp = get_int(&r, "intermediate_size", 0, 1);
        cfg->d_vocab = get_int(&r, "vocab_size", 32000, 0);
        cfg->n_ctx = get_int(&r, "max_position_embeddings", 2048, 0);
        cfg->d_head = get_int(&r, "head_dim", cfg->n_heads ? cfg->d_model / cfg->n_heads : 0, 0);
        cfg->norm = LP_NORM_RMSNORM;
        cfg->norm_eps = (float)get_num(&r, "rms_norm_eps", 1e-6);
        act = get_str(&r, "hidden_act", "silu");
        cfg->gated_mlp = 1;
        cfg->rotary_dim = cfg->d_head;
        cfg->rope_theta = (float)get_num(&r, "rope_theta", 10000.0);
        cfg->tied_embeddings = get_bool(&r, "tie_word_embeddings", 0);
        cfg->attn_bias = get_bool(&r, "attention_bias", 0);
        cfg->mlp_bias = get_bool(&r, "mlp_bias", 0);
        cfg->attn_scale = cfg->d_head ? 1.0f / sqrtf((float)cfg->d_head) : 1.0f;
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
        if (rs && !cJSON_IsNull(rs) && !r.rc) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
            if (!ty)
                ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
            r.rc = lp_error_set(err, LP_EUNSUPPORTED, "%s: rope_scaling of type '%s' is not supported yet", path,
                                cJSON_IsString(ty) ? ty->valuestring : "?");
        }
    } else if (strcmp(mt, "gpt_neox") == 0) {
        cfg->arch = LP_ARCH_GPT_NEOX;
        cfg->d_model = get_int(&r, "hidden_size", 0, 1);
        cfg->n_layers = get_int(&r, "num_hidden_layers", 0, 1);
        cfg->n_heads = get_int(&r, "num_attention_heads", 0, 1);
        cfg->n_kv_heads = cfg->n_heads;
        cfg->d_mlp = get_int(&r, "intermediate_size", 0, 1);
        cfg->d_vocab = get_int(&r, "vocab_size", 50432, 0);
        cfg->n_ctx = get_int(&r, "max_position_embeddings", 2048, 0);
        cfg->d_head = cfg->n_heads ? cfg->d_model / cfg->n_heads : 0;
        cfg->norm = LP_NORM_LAYERNORM;
        cfg->norm_eps = (float)get_num(&r, "layer_norm_eps", 1e-5);
        act = get_str(&r, "hidden_act", "gelu");
        double pct = get_num(&r, "rotary_pct", get_num(&r, "partial_rotary_factor", 0.25));
        if (!(pct >= 0 && pct <= 1) && !r.rc)
            r.rc = lp_error_set(err, LP_EFORMAT, "%s: field 'rotary_pct' must be between 0 and 1", path);
        cfg->rotary_dim = r.rc ? 0 : (int)(cfg->d_head * pct);
        cfg->rope_theta = (float)get_num(&r, "rotary_emb_base", get_num(&r, "rope_theta", 10000.0));
        cfg->parallel_blocks = get_bool(&r, "use_parallel_residual", 1);
        cfg->tied_embeddings = get_bool(&r, "tie_word_embeddings", 0);
        cfg->attn_bias = get_bool(&r, "attention_bias", 1);
        cfg->mlp_bias = 1;
        cfg->attn_scale = cfg->d_head ? 1.0f / sqrtf((float)cfg->d_head) : 1.0f;
    } else {
        /* mt points into root: report the copy in cfg (mt is freed with root) */
        cJSON_Delete(root);
        return lp_error_set(err, LP_EUNSUPPORTED,
                            "%s: unsupported model_type '%s' (supported: gpt2, llama, gpt_neox)", path,
                            cfg->model_type);
    }
    if (!r.rc && act)
        r.rc = parse_act(&r, act, &cfg->act);
    cJSON_Delete(root);
    if (r.rc)
        return r.rc;
    if (cfg->d_model <= 0 || cfg->n_layers <= 0 || cfg->n_heads <= 0 || cfg->d_head <= 0 || cfg->d_vocab <= 0 ||
        cfg->d_mlp <= 0 || cfg->n_ctx <= 0 || cfg->n_kv_heads <= 0 || cfg->n_heads % cfg->n_kv_heads != 0 ||
        cfg->rotary_dim % 2 != 0 || cfg->rotary_dim > cfg->d_head)
        return lp_error_set(err, LP_EFORMAT,
                            "%s: inconsistent sizes (d_model %d, layers %d, heads %d/%d kv, d_head %d, d_mlp %d, "
                            "vocab %d, n_ctx %d, rotary %d)",
                            path, cfg->d_model, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads, cfg->d_head, cfg->d_mlp,
                            cfg->d_vocab, cfg->n_ctx, cfg->rotary_dim);
    if (cfg->d_model > 65536 || cfg->n_layers > 1024 || cfg->d_vocab > 4000000 || cfg->d_mlp > 1 << 20 ||
        cfg->n_heads > 1024 || cfg->d_head > 65536)
        return lp_error_set(err, LP_EFORMAT, "%s: sizes are implausibly large", path);
    if (cfg->arch != LP_ARCH_LLAMA && cfg->n_heads * cfg->d_head != cfg->d_model)
        return lp_error_set(err, LP_EFORMAT, "%s: d_model %d is not divisible by %d heads", path, cfg->d_model,
                            cfg->n_heads);
    cfg->prepend_bos = 0;
    return LP_OK;
}
