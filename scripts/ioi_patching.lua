-- Activation patching on indirect object identification: run a corrupted prompt (the
-- names swapped) and patch in the clean run's residual stream at one (layer, position) at
-- a time; report how much of the clean logit difference each patch restores.
-- usage: loupe run scripts/ioi_patching.lua [MODEL] [OUT.csv]
local model = arg[1] or "toy"
local m <close> = assert(loupe.load(model))
local clean = "When John and Mary went to the store, John gave a drink to"
local corrupt = "When John and Mary went to the store, Mary gave a drink to"
local io_id, s_id = m:to_single_token(" Mary"), m:to_single_token(" John")
local clean_ids, corrupt_ids = m:tokenize(clean), m:tokenize(corrupt)
assert(#clean_ids == #corrupt_ids, "the two prompts must have the same length")

local function logit_diff(logits) -- [1, pos, vocab] → io - s at the last position
  local last = logits[{1, -1}]
  return last[io_id + 1] - last[s_id + 1]
end
local clean_logits, cache <close> = m:run_with_cache(clean_ids, {names = {"blocks.*.hook_resid_pre"}})
local base_clean, base_corrupt = logit_diff(clean_logits), logit_diff(m:run(corrupt_ids))
print(string.format("%s: logit diff clean %.3f, corrupted %.3f", m.cfg.name, base_clean, base_corrupt))
local rows, strs = {}, m:to_str_tokens(clean_ids)
local bar <close> = loupe.progress(m.cfg.n_layers * #clean_ids, "patching")
for layer = 0, m.cfg.n_layers - 1 do
  local name = string.format("blocks.%d.hook_resid_pre", layer)
  local src = cache[name]
  local line = {}
  for pos = 1, #clean_ids do
    local ld = logit_diff(m:run(corrupt_ids, {hooks = {[name] = function(t) t[{1, pos}] = src[{1, pos}] end}}))
    local restored = (ld - base_corrupt) / (base_clean - base_corrupt)
    rows[#rows + 1] = {layer = layer, pos = pos - 1, token = strs[pos], restored = restored}
    line[#line + 1] = string.format("%5.2f", restored)
    bar:tick()
  end
  io.stderr:write("") -- keep the bar on its own line
  rows[#rows].line = table.concat(line, " ")
end
bar:done()
for _, r in ipairs(rows) do if r.line then print(string.format("L%-2d %s", r.layer, r.line)) end end
if arg[2] then assert(loupe.write_csv(arg[2], rows, {"layer", "pos", "token", "restored"})) end
