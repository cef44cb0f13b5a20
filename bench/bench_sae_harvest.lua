-- Harvest throughput (sae.harvest) against the model's forward-only throughput on the same
-- contexts: contexts of 128 tokens (BOS + 127 corpus tokens, documents = lines joined by BOS),
-- batches of 16; the forward pass runs every block with the last position's logits only.
-- Usage: loupe run bench/bench_sae_harvest.lua MODEL CORPUS HOOK [TOKENS] [OUTDIR]
local model, corpus, hook = assert(arg[1]), assert(arg[2]), assert(arg[3])
local ntok = tonumber(arg[4] or "262144")
local out = arg[5] or os.tmpname() .. "_store"
local m <close> = assert(loupe.load(model))
local T, B = 128, 16
local bos = m.cfg.bos_token_id
local stream = {}
for line in io.lines(corpus) do
  if #stream >= ntok then break end
  if #stream > 0 then stream[#stream + 1] = bos end
  for _, id in ipairs(m:tokenize(line, {bos = false})) do stream[#stream + 1] = id end
end
local nctx = math.min(#stream // (T - 1), ntok // T)
local ctx = {}
for c = 0, nctx - 1 do
  local row = {bos}
  for p = 1, T - 1 do row[p + 1] = stream[c * (T - 1) + p] end
  ctx[#ctx + 1] = row
end
-- forward only
local t0 = loupe.clock()
for c = 1, nctx, B do
  local batch = {}
  for q = c, math.min(c + B - 1, nctx) do batch[#batch + 1] = ctx[q] end
  m:run(batch, {last_only = true})
end
local fwd = nctx * T / (loupe.clock() - t0)
-- harvest (fresh folder)
os.execute("rm -rf '" .. out .. "'")
local r = loupe.call("sae.harvest", m, {corpus = corpus, docs = "lines", hook = hook, out = out,
  context_size = T, prepend_bos = 1, max_tokens = nctx * T, shard_tokens = 65536, batch = B})
os.execute("rm -rf '" .. out .. "'")
print(string.format("%d contexts of %d: forward-only %.0f tok/s, harvest of %s %.0f tok/s (%.2fx)",
  nctx, T, fwd, hook, r.tokens_per_s, r.tokens_per_s / fwd))
