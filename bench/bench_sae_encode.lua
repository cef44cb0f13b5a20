-- sae.encode latency, as the UI calls it: the plugin stays loaded (the SAE is cached after
-- the first call), a 64-token prompt, median of 20 calls after 3 warm-up calls.
-- Usage: loupe run bench/bench_sae_encode.lua MODEL SAE [N_TOKENS]
-- A GPT-2-small-shaped model and a random 768 x 24576 SAE:
--   /usr/bin/python3 bench/torch_reference.py --make-model /tmp/loupe-gpt2-small --tokens 1 --reps 1 --json >/dev/null
--   build/plugins/sae/sae_tool random 768 24576 topk 32 blocks.6.hook_resid_pre /tmp/sae768
--   build/loupe run bench/bench_sae_encode.lua /tmp/loupe-gpt2-small /tmp/sae768
local model, sae = assert(arg[1]), assert(arg[2])
local n = tonumber(arg[3] or "64")
local m <close> = assert(loupe.load(model))
local ids = {}
for i = 1, n do ids[i] = (i * 7919) % m.cfg.d_vocab end
local t = {forward_ms = {}, encode_ms = {}, total_ms = {}}
for it = 1, 23 do
  local r = loupe.call("sae.encode", m, {sae = sae, prompt = ids, k = 8})
  if it > 3 then for k, v in pairs(t) do v[#v + 1] = r[k] end end
end
local out = {}
for _, k in ipairs({"forward_ms", "encode_ms", "total_ms"}) do
  table.sort(t[k]); out[#out + 1] = string.format("%s median %.2f (min %.2f)", k, t[k][#t[k] // 2 + 1], t[k][1])
end
print(string.format("%d tokens: %s", n, table.concat(out, ", ")))
