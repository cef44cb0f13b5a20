-- IOI activation patching on the bundled model: clean "... John gave a drink to" (answer
-- " Mary") vs corrupted "... Mary gave a drink to" (answer " John"); patch the residual
-- stream per layer x position, then each head, and report how much each restores
-- (0 = corrupted, 1 = clean) and the total restored by the heads that matter.
-- usage: loupe run scripts/ioi_patching.lua [MODEL] [K]
local model = arg[1] or "toy"
local K = tonumber(arg[2] or "3")
local m <close> = assert(loupe.load(model))
local p = {clean = "When John and Mary went to the store, John gave a drink to",
           corrupted = "When John and Mary went to the store, Mary gave a drink to",
           answer = " Mary", wrong = " John"}
p.what = "resid_pre"
local r = loupe.call("patching.run", m, p)
print(string.format("%s: logit diff clean %.3f, corrupted %.3f", model, r.clean_metric, r.corrupted_metric))
print("resid_pre patching, layer x position (normalized):")
print(r.patched)
p.what = "heads"
local h = loupe.call("patching.run", m, p)
print(string.format("heads restoring the most (of %d):", m.cfg.n_layers * m.cfg.n_heads))
local total, names = 0, {}
for i = 1, K do
  local row = h.top[i]
  print(string.format("  L%d.H%d  %+.3f", row.layer, row.head, row.normalized))
  total = total + row.normalized
  names[#names + 1] = string.format("%d.%d", row.layer, row.head)
end
print(string.format("the top %d heads (%s) restore %.1f%% of the logit difference one by one (sum)", K,
  table.concat(names, ","), 100 * total))
-- patching the final residual stream (resid_post of the last block) at the last position
-- restores the metric exactly
p.what = "resid_post"
local last = loupe.call("patching.run", m, p).patched[{m.cfg.n_layers, -1}]
print(string.format("final residual at the last position restores %.6f", last))
assert(math.abs(last - 1) < 1e-4, "patching the final residual should restore the metric exactly")
assert(total > 0.5, "a few heads should restore most of the logit difference")
