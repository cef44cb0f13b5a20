-- SAE features of a prompt, then the dashboard of the strongest one, all as Lua tables.
-- usage: loupe run scripts/sae_features.lua [MODEL] [SAE] [STORE] [PROMPT]
-- (STORE: an activation store of the SAE's hook point, from sae.harvest; without one the
-- dashboard part is skipped)
local model = arg[1] or "toy"
local sae = arg[2] or "plugins/sae/toy/resid2_topk24"
local store = arg[3]
local prompt = arg[4] or "Mia sadly closed the window. She mourned."
local m <close> = assert(loupe.load(model))
local enc = loupe.call("sae.encode", m, {sae = sae, prompt = prompt, k = 3})
print(string.format("%s on %s: forward %.1f ms, encode %.1f ms", sae, enc.hook, enc.forward_ms, enc.encode_ms))
local best
for _, r in ipairs(enc.features) do
  print(string.format("  pos %2d %-12s #%d feature %5d  %.3f", r.pos, "'" .. r.token .. "'", r.rank, r.feature, r.activation))
  if not best or r.activation > best.activation then best = r end
end
if not store or not best then return end
local d = loupe.call("sae.dashboard", m, {sae = sae, store = store, feature = best.feature, n_top = 5})
print(string.format("\nfeature %d: density %.4f, max %.3f", best.feature, d.density, d.max_activation))
for _, e in ipairs(d.examples) do
  print(string.format("  %-4s %6.3f  %s", e.kind, e.activation, e.text))
end
io.write("  promotes:")
for _, l in ipairs(d.logits) do if l.direction == "up" then io.write(" ", l.token) end end
print()
