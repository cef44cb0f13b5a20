-- Induction heads: on a random token sequence repeated twice, an induction head at
-- position i of the second copy attends to the token after i's earlier occurrence.
-- Score = mean attention on that "diagonal" (TransformerLens' induction score).
-- usage: loupe run scripts/induction_heads.lua [MODEL] [SEQ_LEN] [OUT.csv]
local model = arg[1] or "toy"
local L = tonumber(arg[3] and arg[2] or arg[2] or 20)
local m <close> = assert(loupe.load(model))
local cfg = m.cfg
local r = loupe.randn({L}, 1)
local seq = {}
for i = 1, L do seq[i] = math.floor(math.abs(r[i]) * 1e4) % (cfg.d_vocab - 10) + 5 end
local ids = {}
if cfg.prepend_bos and cfg.bos_token_id >= 0 then ids[1] = cfg.bos_token_id end
local off = #ids
for k = 1, 2 do for i = 1, L do ids[#ids + 1] = seq[i] end end
local _, cache <close> = m:run_with_cache(ids, {names = {"blocks.*.attn.hook_pattern"}})
local rows = {}
for layer = 0, cfg.n_layers - 1 do
  local pat = cache[string.format("blocks.%d.attn.hook_pattern", layer)][1] -- [head, q, k]
  for h = 1, cfg.n_heads do
    local s = 0
    for q = off + L + 1, off + 2 * L do s = s + pat:get(h, q, q - L + 1) end
    rows[#rows + 1] = {layer = layer, head = h - 1, score = s / L}
  end
end
table.sort(rows, function(a, b) return a.score > b.score end)
print(string.format("%s — induction scores on %d random tokens repeated twice", cfg.name, L))
for i = 1, math.min(8, #rows) do
  print(string.format("  L%d.H%d  %.3f", rows[i].layer, rows[i].head, rows[i].score))
end
if arg[3] then assert(loupe.write_csv(arg[3], rows, {"layer", "head", "score"})) end
assert(rows[1].score > 0.5, "the best head should score above 0.5 as an induction head")
