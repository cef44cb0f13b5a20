-- The bundled toy model's SAE (plugins/sae/toy/), through Lua's loupe.call: on held-out eval
-- text, CE loss recovered >= 90% at L0 <= 32, and latents tracking the planted variables
-- (passage mood, nesting depth) with AUROC >= 0.9. Skips when models/toy or the SAE is absent
-- (plugins/sae/toy/train_toy_sae.sh makes the SAE).
-- args: SRC_ROOT
local src = assert(arg[1], "SRC_ROOT")
local T = dofile(src .. "/tests/lua/check.lua")
local check = T.check
local toy, sae = src .. "/models/toy", src .. "/plugins/sae/toy/resid2_topk24"
local function exists(p) local f = io.open(p, "rb"); if f then f:close() end; return f ~= nil end
local ev = exists(toy .. "/eval/mood.jsonl") and toy .. "/eval" or toy .. "/data/eval" -- either layout
if not exists(toy .. "/config.json") then T.skip("models/toy is not here yet") end
if not exists(sae .. "/cfg.json") then T.skip("no toy SAE: run plugins/sae/toy/train_toy_sae.sh") end
do -- the SAE belongs to one set of toy weights
  local f = io.open(sae .. "/model.sha256")
  local want = f and f:read("l"); if f then f:close() end
  local p = io.popen("sha256sum '" .. toy .. "/model.safetensors' 2>/dev/null")
  local have = p and (p:read("l") or ""):match("^(%x+)"); if p then p:close() end
  if want and have and want ~= have then
    T.skip("models/toy has changed since the SAE was trained: re-run plugins/sae/toy/train_toy_sae.sh")
  end
end
local m <close> = assert(loupe.load(toy))

local info = loupe.call("sae.info", m, {sae = sae})
check(info.fits_model == "yes" and info.architecture == "topk", "the toy SAE fits the toy model (" .. info.hook_name .. ")")
for _, set in ipairs({"mood", "nesting"}) do
  local r = loupe.call("sae.evaluate", m, {sae = sae, corpus = ev .. "/" .. set .. ".jsonl", contexts = 64})
  print(string.format("# %s: L0 %.1f, explained variance %.4f, CE clean %.4f sae %.4f zero %.4f mean %.4f, " ..
    "recovered %.4f (zero) %.4f (mean), KL %.4f", set, r.l0, r.explained_variance, r.ce_clean, r.ce_sae,
    r.ce_zero, r.ce_mean, r.ce_recovered_zero, r.ce_recovered_mean, r.kl_sae))
  check(r.l0 <= 32 and r.ce_recovered_zero >= 0.9 and r.ce_recovered_mean >= 0.9,
    string.format("%s: CE loss recovered %.3f / %.3f >= 0.9 at L0 %.1f <= 32", set, r.ce_recovered_zero,
      r.ce_recovered_mean, r.l0))
  check(#r.histogram == 10 and r.density.shape[1] == info.d_sae, set .. ": density histogram and per-latent density")
end
local mood = loupe.call("sae.auroc", m, {sae = sae, data = ev .. "/mood.jsonl", mode = "passage", reduce = "mean",
  prepend_bos = 1})
print(string.format("# mood: latent %d AUROC %.4f (%s); %d passages", mood.best[1].feature, mood.best[1].auroc,
  mood.best[1].direction, mood.samples))
check(mood.best_auroc >= 0.9, string.format("a latent tracks the passage mood: AUROC %.3f >= 0.9", mood.best_auroc))
local nest = loupe.call("sae.auroc", m, {sae = sae, data = ev .. "/nesting.jsonl", mode = "words",
  value_field = "depth", threshold = 0, prepend_bos = 1})
print(string.format("# nesting depth > 0: latent %d AUROC %.4f (%s); %d words", nest.best[1].feature,
  nest.best[1].auroc, nest.best[1].direction, nest.samples))
check(nest.best_auroc >= 0.9, string.format("a latent tracks nesting depth > 0 per word: AUROC %.3f >= 0.9",
  nest.best_auroc))
-- the dashboard of the mood latent, from Lua as tables
local enc = loupe.call("sae.encode", m, {sae = sae, prompt = "Mia happily smiled. She laughed.", k = 4})
check(#enc.features > 0 and enc.features[1].feature ~= nil, "encode from Lua: rows keyed by column")
-- without a store, the dashboard is the logit effects: the mood latent promotes happy verbs
local happy = {[" smiled"] = true, [" laughed"] = true, [" grinned"] = true, [" sang"] = true, [" danced"] = true,
  [" beamed"] = true, [" giggled"] = true, [" cheered"] = true}
local d = loupe.call("sae.dashboard", m, {sae = sae, feature = mood.best[1].feature})
local n_up, n_happy = 0, 0
for _, row in ipairs(d.logits) do
  if row.direction == "up" then n_up = n_up + 1; if happy[row.token] then n_happy = n_happy + 1 end end
end
print(string.format("# dashboard of latent %d without a store: %d of the %d promoted tokens are happy verbs; %s",
  mood.best[1].feature, n_happy, n_up, d.note))
check(d.examples == nil and d.note:find("store") and n_up == 10 and n_happy >= 3,
  "dashboard without a store: the mood latent's logit effects promote happy verbs")
T.done()
