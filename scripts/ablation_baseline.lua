-- Head ablation: zero (or mean-ablate) each attention head's output (hook_z) and measure
-- the change in the loss of the prompt's next-token predictions.
-- usage: loupe run scripts/ablation_baseline.lua [MODEL] [zero|mean] [OUT.csv]
local model = arg[1] or "toy"
local mode = arg[2] or "zero"
assert(mode == "zero" or mode == "mean", "mode is zero or mean")
local m <close> = assert(loupe.load(model))
local text = "Once upon a time, there was a little girl who loved to play in the park with her dog."
local ids = m:tokenize(text)
local function loss(logits) -- mean next-token cross-entropy
  local lp = logits[1]:log_softmax()
  local s = 0
  for i = 1, #ids - 1 do s = s - lp:get(i, ids[i + 1] + 1) end
  return s / (#ids - 1)
end
local _, cache <close> = m:run_with_cache(ids, {names = {"blocks.*.attn.hook_z"}})
local base = loss(m:run(ids))
local rows = {}
for layer = 0, m.cfg.n_layers - 1 do
  local name = string.format("blocks.%d.attn.hook_z", layer)
  local mean_z = cache[name]:mean(2, true) -- [1, 1, head, d_head]: mean over positions
  for h = 1, m.cfg.n_heads do
    local l = loss(m:run(ids, {hooks = {[name] = function(z)
      if mode == "zero" then z[{":", ":", h}] = 0 else z[{":", ":", h}] = mean_z[{":", ":", h}] end
    end}}))
    rows[#rows + 1] = {layer = layer, head = h - 1, delta_loss = l - base}
  end
end
table.sort(rows, function(a, b) return a.delta_loss > b.delta_loss end)
print(string.format("%s: base loss %.4f; %s-ablating each head", m.cfg.name, base, mode))
for i = 1, math.min(10, #rows) do
  print(string.format("  L%d.H%d  %+.4f", rows[i].layer, rows[i].head, rows[i].delta_loss))
end
if arg[3] then assert(loupe.write_csv(arg[3], rows, {"layer", "head", "delta_loss"})) end
