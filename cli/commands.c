/* loupe subcommands over the core library: info, tokenize, generate, logits, cache, hooks. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *arch_name(lp_arch a)
{
    return a == LP_ARCH_GPT2 ? "gpt2" : a == LP_ARCH_LLAMA ? "llama" : "gpt_neox";
}

static const char *act_name(lp_act_kind a)
{
    static const char *const n[] = {"gelu_tanh", "gelu_erf", "silu", "relu"};
    return n[a];
}

static void print_json(cJSON *j)
{
    char *s = cJSON_Print(j);
    puts(s);
    free(s);
    cJSON_Delete(j);
}

/* Printable form of a token's bytes: escapes controls and invalid UTF-8. */
static void token_display(const lp_tokenizer *tok, int32_t id, char *out, size_t cap)
{
    char raw[256];
    int n = lp_tokenizer_token_bytes(tok, id, raw, sizeof raw);
    if (n < 0) {
        snprintf(out, cap, "<?>");
        return;
    }
    if (n > (int)sizeof raw)
        n = sizeof raw;
    size_t k = 0;
    for (int i = 0; i < n && k + 8 < cap; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\n') k += (size_t)snprintf(out + k, cap - k, "\\n");
        else if (c == '\t') k += (size_t)snprintf(out + k, cap - k, "\\t");
        else if (c == '\r') k += (size_t)snprintf(out + k, cap - k, "\\r");
        else if (c < 0x20 || c == 0x7f) k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
        else out[k++] = (char)c;
    }
    out[k] = 0;
}

/* [MODEL] then the rest: with fewer positionals than the command needs, the model is the default. */
static const char *pick_model(const char *opt_model, const char **pos, int n_pos, int needed, int *shift)
{
    *shift = 0;
    if (opt_model)
        return opt_model;
    if (n_pos > needed) {
        *shift = 1;
        return pos[0];
    }
    return DEFAULT_MODEL;
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL, *pos[2];
    int json = 0, n_pos, help;
    cli_opt opts[] = {{"--json", 0, 0, NULL, &json}, {"--model", 'm', 1, &model, NULL}, {0}};
    int rc = cli_parse(argc, argv, opts, pos, 1, &n_pos, "usage: loupe info [MODEL] [--json]\n"
                                                      "Architecture, sizes, dtype, parameter count, files, tokenizer and BLAS.\n",
                       &help);
    if (rc || help)
        return rc;
    int shift;
    const char *spec = pick_model(model, pos, n_pos, 0, &shift);
    lp_model *m;
    if ((rc = cli_load_model(spec, &m)))
        return rc;
    const lp_config *c = lp_model_config(m);
    lp_tokenizer *tok = lp_model_tokenizer(m);
    char blas[512];
    lp_blas_info(blas, sizeof blas);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", lp_model_name(m));
        cJSON_AddStringToObject(j, "dir", lp_model_dir(m));
        cJSON_AddStringToObject(j, "architecture", arch_name(c->arch));
        cJSON_AddStringToObject(j, "model_type", c->model_type);
        cJSON_AddStringToObject(j, "dtype", c->dtype);
        cJSON_AddNumberToObject(j, "n_params", (double)lp_model_n_params(m));
        cJSON_AddNumberToObject(j, "n_layers", c->n_layers);
        cJSON_AddNumberToObject(j, "d_model", c->d_model);
        cJSON_AddNumberToObject(j, "n_heads", c->n_heads);
        cJSON_AddNumberToObject(j, "n_kv_heads", c->n_kv_heads);
        cJSON_AddNumberToObject(j, "d_head", c->d_head);
        cJSON_AddNumberToObject(j, "d_mlp", c->d_mlp);
        cJSON_AddNumberToObject(j, "d_vocab", c->d_vocab);
        cJSON_AddNumberToObject(j, "n_ctx", c->n_ctx);
        cJSON_AddStringToObject(j, "normalization", c->norm == LP_NORM_RMSNORM ? "rmsnorm" : "layernorm");
        cJSON_AddStringToObject(j, "activation", act_name(c->act));
        cJSON_AddBoolToObject(j, "gated_mlp", c->gated_mlp);
        cJSON_AddBoolToObject(j, "parallel_blocks", c->parallel_blocks);
        cJSON_AddStringToObject(j, "positional", c->learned_pos ? "learned" : "rotary");
        cJSON_AddNumberToObject(j, "rotary_dim", c->rotary_dim);
        if (c->rotary_dim)
            cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
        cJSON_AddBoolToObject(j, "tied_embeddings", c->tied_embeddings);
        cJSON_AddStringToObject(j, "tokenizer", tok ? lp_tokenizer_kind(tok) : "none");
        cJSON_AddBoolToObject(j, "prepend_bos", c->prepend_bos);
        cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
        cJSON_AddNumberToObject(j, "eos_token_id", c->eos_token_id);
        cJSON_AddNumberToObject(j, "n_hook_points", lp_model_n_hook_points(m));
        cJSON *files = cJSON_AddArrayToObject(j, "files");
        for (int i = 0; i < lp_model_n_files(m); i++)
            cJSON_AddItemToArray(files, cJSON_CreateString(lp_model_file(m, i)));
        cJSON_AddNumberToObject(j, "load_ms", lp_model_load_seconds(m) * 1e3);
        cJSON_AddStringToObject(j, "blas", blas);
        print_json(j);
    } else {
        printf("model        %s (%s)\n", lp_model_name(m), lp_model_dir(m));
        printf("architecture %s (model_type %s), %s weights\n", arch_name(c->arch), c->model_type, c->dtype);
        printf("parameters   %.2fM (%lld)\n", lp_model_n_params(m) / 1e6, (long long)lp_model_n_params(m));
        printf("sizes        %d layers, d_model %d, %d heads (%d kv), d_head %d, d_mlp %d, vocab %d, context %d\n",
               c->n_layers, c->d_model, c->n_heads, c->n_kv_heads, c->d_head, c->d_mlp, c->d_vocab, c->n_ctx);
        printf("blocks       %s, %s, %s MLP%s, %s positions", c->norm == LP_NORM_RMSNORM ? "RMSNorm" : "LayerNorm",
               act_name(c->act), c->gated_mlp ? "gated" : "dense", c->parallel_blocks ? ", parallel attn+MLP" : "",
               c->learned_pos ? "learned" : "rotary");
        if (c->rotary_dim)
            printf(" (%d of %d dims, theta %g)", c->rotary_dim, c->d_head, c->rope_theta);
        printf(", %s embeddings\n", c->tied_embeddings ? "tied" : "separate");
        printf("tokenizer    %s", tok ? lp_tokenizer_kind(tok) : "none");
        if (tok)
            printf(", %d tokens, bos %d, eos %d", lp_tokenizer_n_vocab(tok), c->bos_token_id, c->eos_token_id);
        printf("\nprepend_bos  %s (from the tokenizer config; override with --bos/--no-bos)\n",
               c->prepend_bos ? "yes" : "no");
        printf("hook points  %d\n", lp_model_n_hook_points(m));
        for (int i = 0; i < lp_model_n_files(m); i++)
            printf("file         %s\n", lp_model_file(m, i));
        printf("load         %.1f ms\n", lp_model_load_seconds(m) * 1e3);
        printf("blas         %s\n", blas);
    }
    lp_model_free(m);
    return EXIT_OK;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *pos[2];
    int json = 0, bos = 0, no_bos = 0, n_pos, help;
    cli_opt opts[] = {{"--json", 0, 0, NULL, &json},
                      {"--bos", 0, 0, NULL, &bos},
                      {"--no-bos", 0, 0, NULL, &no_bos},
                      {"--model", 'm', 1, &model, NULL},
                      {0}};
    int rc = cli_parse(argc, argv, opts, pos, 2, &n_pos,
                       "usage: loupe tokenize [MODEL] TEXT [--json] [--bos|--no-bos]\n"
                       "Token ids and token strings of TEXT (BOS follows the tokenizer config unless overridden).\n",
                       &help);
    if (rc || help)
        return rc;
    if (n_pos < 1)
        return cli_error("tokenize: missing TEXT (see --help)");
    int shift;
    const char *spec = pick_model(model, pos, n_pos, 1, &shift);
    lp_model *m;
    if ((rc = cli_load_model(spec, &m)))
        return rc;
    int32_t *ids;
    int n;
    if ((rc = cli_tokens(m, pos[shift], NULL, bos, no_bos, &ids, &n))) {
        lp_model_free(m);
        return rc;
    }
    lp_tokenizer *tok = lp_model_tokenizer(m);
    char disp[1024];
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(j, "ids");
        cJSON *t = cJSON_AddArrayToObject(j, "tokens");
        for (int i = 0; i < n; i++) {
            char raw[512];
            int l = lp_tokenizer_token_bytes(tok, ids[i], raw, sizeof raw - 1);
            raw[l < 0 ? 0 : (l > (int)sizeof raw - 1 ? (int)sizeof raw - 1 : l)] = 0;
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
            cJSON_AddItemToArray(t, cJSON_CreateString(raw));
        }
        print_json(j);
    } else {
        for (int i = 0; i < n; i++) {
            token_display(tok, ids[i], disp, sizeof disp);
            printf("%6d  %s\n", ids[i], disp);
        }
    }
    free(ids);
    lp_model_free(m);
    return EXIT_OK;
}

/* Streams text as tokens arrive: decodes the whole sequence and prints what is new,
 * holding back a trailing incomplete UTF-8 character (decoded as U+FFFD). */
typedef struct stream {
    lp_tokenizer *tok;
    int32_t *ids;
    int n, cap;
    size_t printed;
} stream;

static int stream_token(int32_t id, void *user)
{
    stream *s = user;
    if (s->n == s->cap)
        return 0;
    s->ids[s->n++] = id;
    char *t = lp_tokenizer_decode(s->tok, s->ids, (size_t)s->n, 1, NULL);
    if (!t)
        return 0;
    size_t len = strlen(t);
    if (len >= 3 && !memcmp(t + len - 3, "\xef\xbf\xbd", 3))
        len -= 3;
    if (len > s->printed) {
        fwrite(t + s->printed, 1, len - s->printed, stdout);
        s->printed = len;
    }
    free(t);
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *pos[2], *n_s = "20", *temp_s = "0", *topk_s = "0", *seed_s = "0", *ids_s = NULL;
    int json = 0, bos = 0, no_bos = 0, n_pos, help;
    cli_opt opts[] = {{"--json", 0, 0, NULL, &json},
                      {"--bos", 0, 0, NULL, &bos},
                      {"--no-bos", 0, 0, NULL, &no_bos},
                      {"--model", 'm', 1, &model, NULL},
                      {"--tokens", 'n', 1, &n_s, NULL},
                      {"--temperature", 't', 1, &temp_s, NULL},
                      {"--top-k", 'k', 1, &topk_s, NULL},
                      {"--seed", 's', 1, &seed_s, NULL},
                      {"--ids", 0, 1, &ids_s, NULL},
                      {0}};
    int rc = cli_parse(argc, argv, opts, pos, 2, &n_pos,
                       "usage: loupe generate [MODEL] PROMPT [-n N] [--temperature T] [--top-k K] [--seed S]\n"
                       "                      [--ids 1,2,3] [--bos|--no-bos] [--json]\n"
                       "Continue PROMPT with a KV cache: greedy at temperature 0 (the default), else sampled.\n",
                       &help);
    if (rc || help)
        return rc;
    if (n_pos < 1 && !ids_s)
        return cli_error("generate: missing PROMPT (see --help)");
    char *end;
    long n_new = strtol(n_s, &end, 10);
    if (*end || n_new < 0 || n_new > 100000)
        return cli_error("generate: -n wants a token count, got '%s'", n_s);
    double temp = strtod(temp_s, &end);
    if (*end || temp < 0)
        return cli_error("generate: --temperature wants a number >= 0, got '%s'", temp_s);
    long top_k = strtol(topk_s, &end, 10);
    if (*end || top_k < 0)
        return cli_error("generate: --top-k wants a count >= 0, got '%s'", topk_s);
    unsigned long long seed = strtoull(seed_s, &end, 10);
    if (*end)
        return cli_error("generate: --seed wants an integer, got '%s'", seed_s);
    int shift;
    const char *spec = pick_model(model, pos, n_pos, ids_s ? 0 : 1, &shift);
    lp_model *m;
    if ((rc = cli_load_model(spec, &m)))
        return rc;
    int32_t *ids = NULL, *out = NULL;
    stream st = {NULL, NULL, 0, 0, 0};
    int n;
    if ((rc = cli_tokens(m, ids_s ? NULL : pos[shift], ids_s, bos, no_bos, &ids, &n)))
        goto done;
    lp_tokenizer *tok = lp_model_tokenizer(m);
    lp_gen_opts g = lp_gen_opts_default();
    g.n_new = (int)n_new;
    g.temperature = (float)temp;
    g.top_k = (int)top_k;
    g.seed = seed;
    st.tok = tok;
    if (!json && tok) {
        st.cap = n + (int)n_new;
        st.ids = malloc((size_t)st.cap * sizeof *st.ids);
        memcpy(st.ids, ids, (size_t)n * sizeof *ids);
        st.n = n;
        char *p = lp_tokenizer_decode(tok, ids, (size_t)n, 1, NULL);
        if (p) {
            fputs(p, stdout);
            st.printed = strlen(p);
        }
        free(p);
        fflush(stdout);
        g.on_token = stream_token;
        g.user = &st;
    }
    out = malloc(((size_t)n_new + 1) * sizeof *out);
    int n_out = 0;
    lp_error err = {0};
    if (lp_model_generate(m, ids, n, &g, out, &n_out, &err)) {
        if (!json)
            putchar('\n');
        rc = cli_fail(&err);
        goto done;
    }
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(j, "prompt_ids");
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
        a = cJSON_AddArrayToObject(j, "ids");
        for (int i = 0; i < n_out; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(out[i]));
        if (tok) {
            char *txt = lp_tokenizer_decode(tok, out, (size_t)n_out, 0, NULL);
            cJSON_AddStringToObject(j, "text", txt ? txt : "");
            free(txt);
        }
        print_json(j);
    } else if (!tok) {
        for (int i = 0; i < n_out; i++)
            printf("%s%d", i ? "," : "", out[i]);
        putchar('\n');
    } else {
        putchar('\n');
    }
done:
    free(st.ids);
    free(ids);
    free(out);
    lp_model_free(m);
    return rc;
}

int cmd_logits(int argc, char **argv)
{
    const char *model = NULL, *pos[1], *text = NULL, *ids_s = NULL, *outp = NULL;
    int bos = 0, no_bos = 0, last = 0, n_pos, help;
    cli_opt opts[] = {{"--text", 0, 1, &text, NULL},     {"--ids", 0, 1, &ids_s, NULL},
                      {"--output", 'o', 1, &outp, NULL}, {"--bos", 0, 0, NULL, &bos},
                      {"--no-bos", 0, 0, NULL, &no_bos}, {"--last", 0, 0, NULL, &last},
                      {"--model", 'm', 1, &model, NULL}, {0}};
    int rc = cli_parse(argc, argv, opts, pos, 1, &n_pos,
                       "usage: loupe logits [MODEL] (--text T | --ids 1,2,3) -o OUT.npy [--last] [--bos|--no-bos]\n"
                       "Writes float32 logits [pos, d_vocab] (or [d_vocab] with --last) as a NumPy .npy file.\n",
                       &help);
    if (rc || help)
        return rc;
    if (!outp)
        return cli_error("logits: missing -o OUT.npy");
    const char *spec = model ? model : n_pos ? pos[0] : DEFAULT_MODEL;
    lp_model *m;
    if ((rc = cli_load_model(spec, &m)))
        return rc;
    int32_t *ids;
    int n;
    if ((rc = cli_tokens(m, text, ids_s, bos, no_bos, &ids, &n))) {
        lp_model_free(m);
        return rc;
    }
    const lp_config *c = lp_model_config(m);
    float *logits = malloc((size_t)(last ? 1 : n) * c->d_vocab * sizeof(float));
    lp_run_opts ro = lp_run_opts_default();
    ro.logits = last ? LP_LOGITS_LAST : LP_LOGITS_ALL;
    ro.logits_out = logits;
    lp_batch b = {ids, 1, n, NULL};
    lp_error err = {0};
    if (!logits)
        rc = cli_error("out of memory");
    else if (lp_model_run(m, &b, &ro, &err))
        rc = cli_fail(&err);
    else {
        int64_t ne[2] = {n, c->d_vocab};
        lp_tensor t = last ? lp_tensor_make(LP_F32, logits, 1, ne + 1) : lp_tensor_make(LP_F32, logits, 2, ne);
        if (lp_npy_save(outp, &t, &err))
            rc = cli_fail(&err);
    }
    free(logits);
    free(ids);
    lp_model_free(m);
    return rc;
}

int cmd_cache(int argc, char **argv)
{
    const char *model = NULL, *pos[1], *text = NULL, *ids_s = NULL, *outp = NULL, *names = NULL, *dtype = "f32";
    int bos = 0, no_bos = 0, n_pos, help;
    cli_opt opts[] = {{"--text", 0, 1, &text, NULL},     {"--ids", 0, 1, &ids_s, NULL},
                      {"--output", 'o', 1, &outp, NULL}, {"--names", 0, 1, &names, NULL},
                      {"--dtype", 0, 1, &dtype, NULL},   {"--bos", 0, 0, NULL, &bos},
                      {"--no-bos", 0, 0, NULL, &no_bos}, {"--model", 'm', 1, &model, NULL},
                      {0}};
    int rc = cli_parse(argc, argv, opts, pos, 1, &n_pos,
                       "usage: loupe cache [MODEL] (--text T | --ids 1,2,3) [--names GLOB,...] -o OUT.safetensors\n"
                       "                   [--dtype f32|f16|bf16] [--bos|--no-bos]\n"
                       "Runs the model and writes one tensor per hook point (TransformerLens names and shapes,\n"
                       "without the batch dimension). --names filters with exact names or globs,\n"
                       "e.g. 'blocks.*.hook_resid_post,blocks.0.attn.hook_pattern'; default: everything.\n",
                       &help);
    if (rc || help)
        return rc;
    if (!outp)
        return cli_error("cache: missing -o OUT.safetensors");
    lp_dtype as = !strcmp(dtype, "f32") ? LP_F32 : !strcmp(dtype, "f16") ? LP_F16 : !strcmp(dtype, "bf16") ? LP_BF16 : LP_DTYPE_COUNT;
    if (as == LP_DTYPE_COUNT)
        return cli_error("cache: --dtype must be f32, f16 or bf16, not '%s'", dtype);
    const char *spec = model ? model : n_pos ? pos[0] : DEFAULT_MODEL;
    lp_model *m;
    if ((rc = cli_load_model(spec, &m)))
        return rc;
    int32_t *ids = NULL;
    int n;
    lp_cache *cache = lp_cache_new();
    lp_st_writer *w = lp_st_writer_new();
    char *namebuf = names ? strdup(names) : NULL;
    const char *pats[512];
    int n_pats = 0;
    lp_error err = {0};
    if ((rc = cli_tokens(m, text, ids_s, bos, no_bos, &ids, &n)))
        goto done;
    if (namebuf) {
        char *save = NULL;
        for (char *p = strtok_r(namebuf, ",", &save); p && n_pats < 512; p = strtok_r(NULL, ",", &save))
            if (*p)
                pats[n_pats++] = p;
        /* Every pattern must name something this model has. */
        for (int i = 0; i < n_pats; i++) {
            int hit = 0;
            char nm[96];
            for (int h = 0; h < lp_model_n_hook_points(m) && !hit; h++) {
                lp_hook_kind k;
                int L;
                lp_model_hook_point(m, h, &k, &L);
                lp_hook_name(k, L, nm, sizeof nm);
                hit = lp_hook_match(pats[i], nm);
            }
            if (!hit) {
                rc = cli_error("cache: '%s' matches no hook point of this model (see loupe hooks)", pats[i]);
                goto done;
            }
        }
    }
    if (lp_cache_set_filter(cache, pats, n_pats, &err)) {
        rc = cli_fail(&err);
        goto done;
    }
    lp_run_opts ro = lp_run_opts_default();
    ro.cache = cache;
    lp_batch b = {ids, 1, n, NULL};
    if (lp_model_run(m, &b, &ro, &err)) {
        rc = cli_fail(&err);
        goto done;
    }
    for (int i = 0; i < lp_cache_count(cache); i++) {
        lp_tensor t = lp_cache_entry(cache, i);
        lp_tensor one = lp_tensor_select(&t, 0, 0);
        if (lp_st_writer_add(w, lp_cache_name(cache, i), &one, as, &err)) {
            rc = cli_fail(&err);
            goto done;
        }
    }
    char idstr[64];
    snprintf(idstr, sizeof idstr, "%d", n);
    lp_st_writer_set_metadata(w, "model", lp_model_name(m), NULL);
    lp_st_writer_set_metadata(w, "n_tokens", idstr, NULL);
    if (lp_st_writer_finish(w, outp, &err))
        rc = cli_fail(&err);
done:
    free(namebuf);
    free(ids);
    lp_st_writer_free(w);
    lp_cache_free(cache);
    lp_model_free(m);
    return rc;
}

int cmd_hooks(int argc, char **argv)
{
    const char *model = NULL, *pos[1], *np_s = "1";
    int json = 0, n_pos, help;
    cli_opt opts[] = {{"--json", 0, 0, NULL, &json}, {"--model", 'm', 1, &model, NULL}, {"--pos", 0, 1, &np_s, NULL}, {0}};
    int rc = cli_parse(argc, argv, opts, pos, 1, &n_pos,
                       "usage: loupe hooks [MODEL] [--json] [--pos N]\n"
                       "Every hook point in forward order with its shape for a batch of one N-token prompt.\n",
                       &help);
    if (rc || help)
        return rc;
    int P = atoi(np_s);
    if (P < 1)
        return cli_error("hooks: --pos wants a positive count");
    lp_model *m;
    if ((rc = cli_load_model(model ? model : n_pos ? pos[0] : DEFAULT_MODEL, &m)))
        return rc;
    cJSON *j = json ? cJSON_CreateArray() : NULL;
    for (int i = 0; i < lp_model_n_hook_points(m); i++) {
        lp_hook_kind k;
        int L;
        char nm[96], shp[96];
        int64_t ne[LP_MAX_DIMS];
        lp_model_hook_point(m, i, &k, &L);
        lp_hook_name(k, L, nm, sizeof nm);
        int nd = lp_model_hook_shape(m, k, 1, P, P, ne);
        size_t l = 0;
        for (int d = 0; d < nd; d++)
            l += (size_t)snprintf(shp + l, sizeof shp - l, "%s%lld", d ? ", " : "", (long long)ne[d]);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", nm);
            cJSON *s = cJSON_AddArrayToObject(o, "shape");
            for (int d = 0; d < nd; d++)
                cJSON_AddItemToArray(s, cJSON_CreateNumber((double)ne[d]));
            cJSON_AddItemToArray(j, o);
        } else {
            printf("%-36s [%s]\n", nm, shp);
        }
    }
    if (json)
        print_json(j);
    lp_model_free(m);
    return EXIT_OK;
}
