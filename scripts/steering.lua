-- Activation steering: add a direction (mean difference of two prompts' residual streams at
-- one layer) to every position while generating, and compare continuations.
-- usage: loupe run scripts/steering.lua [MODEL] [LAYER] [SCALE]
local model = arg[1] or "toy"
local m <close> = assert(loupe.load(model))
local layer = tonumber(arg[2] or math.floor(m.cfg.n_layers / 2))
local scale = tonumber(arg[3] or 4)
local name = string.format("blocks.%d.hook_resid_post", layer)
local function mean_resid(text)
  local _, c <close> = m:run_with_cache(text, {names = {name}})
  return c[name][1]:mean(1) -- [d_model]
end
local dir = mean_resid("I love this, it is wonderful and happy") - mean_resid("I hate this, it is awful and sad")
dir = dir / dir:norm()
local prompt = "The weather today is"
local plain = m:generate(prompt, {n = 20})
local steered = m:generate(prompt, {n = 20, hooks = {[name] = function(t) return t + dir * scale end}})
print(string.format("%s, %s, scale %g", m.cfg.name, name, scale))
print("plain:   " .. prompt .. plain)
print("steered: " .. prompt .. steered)
