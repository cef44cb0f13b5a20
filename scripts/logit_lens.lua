-- Logit lens: what each layer's residual stream would predict, through the logit_lens plugin.
-- usage: loupe run scripts/logit_lens.lua [MODEL] [PROMPT] [OUT.csv]
local model = arg[1] or "toy"
local prompt = arg[2] or "When John and Mary went to the store, John gave a drink to"
local m <close> = assert(loupe.load(model))
local r = loupe.plugins.logit_lens.run(m, {prompt = prompt, k = 3, positions = "-1"})
print(string.format("%s — logit lens at the last position of %q", m.cfg.name, prompt))
for _, row in ipairs(r.top) do
  if row.rank == 1 then
    print(string.format("  layer %-3s %-16s p=%.3f", tostring(row.layer), string.format("%q", row.token), row.prob))
  end
end
if arg[3] then assert(loupe.write_csv(arg[3], r.top)); print("wrote " .. arg[3]) end
-- the first layer at which the final answer is already top-1
local final, first = nil, nil
for _, row in ipairs(r.top) do
  if row.rank == 1 and row.layer == m.cfg.n_layers then final = row.token end
end
for _, row in ipairs(r.top) do
  if row.rank == 1 and row.token == final and (first == nil or row.layer < first) then first = row.layer end
end
print(string.format("the answer %q is top-1 from layer %d on (first_layer_top1 = %d)", final, first, r.first_layer_top1))
if arg[2] == nil and m.cfg.name == "toy" then assert(final == " Mary", "the IOI answer should be ' Mary'") end
