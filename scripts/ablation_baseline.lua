-- An explanation against a baseline: mean-ablate the heads that IOI patching says matter,
-- and the same number of random heads, and compare IOI accuracy on the held-out set.
-- usage: loupe run scripts/ablation_baseline.lua [MODEL] [K] [SEED]
local model = arg[1] or "toy"
local K = tonumber(arg[2] or "3")
local seed = tonumber(arg[3] or "1")
local m <close> = assert(loupe.load(model))
local eval = arg[4] or (m.cfg.dir .. "/data/eval/ioi.jsonl")
local p = {clean = "When John and Mary went to the store, John gave a drink to",
           corrupted = "When John and Mary went to the store, Mary gave a drink to",
           answer = " Mary", wrong = " John", what = "heads"}
local h = loupe.call("patching.run", m, p)
local top, chosen = {}, {}
for i = 1, K do
  local row = h.top[i]
  top[#top + 1] = string.format("%d.%d", row.layer, row.head)
  chosen[row.layer * m.cfg.n_heads + row.head] = true
end
math.randomseed(seed)
local rnd = {}
while #rnd < K do
  local k = math.random(0, m.cfg.n_layers * m.cfg.n_heads - 1)
  if not chosen[k] then
    chosen[k] = true
    rnd[#rnd + 1] = string.format("%d.%d", k // m.cfg.n_heads, k % m.cfg.n_heads)
  end
end
local function ablate(heads)
  return loupe.call("patching.ablate", m, {prompt = p.clean, answer = p.answer, wrong = p.wrong,
    components = "heads=" .. table.concat(heads, ","), mode = "mean", eval = eval})
end
local a, b = ablate(top), ablate(rnd)
print(string.format("%s: IOI top-1 %.3f before ablation (%d prompts)", model, a.top1_before, a.n_eval))
print(string.format("  mean-ablating the top %d IOI heads (%s): top-1 %.3f", K, table.concat(top, ","), a.top1_after))
print(string.format("  mean-ablating %d random heads (%s):      top-1 %.3f", K, table.concat(rnd, ","), b.top1_after))
assert(a.top1_before - a.top1_after > 0.3, "ablating the IOI heads should hurt IOI")
assert(b.top1_before - b.top1_after < 0.15, "ablating random heads should not")
