-- Linear probes on the toy model through the probe plugin: a layer sweep of the passage
-- mood (each accuracy beside its baselines), LEACE at the best layer, and steering with
-- the mood direction.
-- usage: loupe run scripts/probe_mood.lua [MODEL] [MOOD.jsonl]
local model = arg[1] or "toy"
local data = arg[2] or "models/toy/data/eval/mood.jsonl"
local m <close> = assert(loupe.load(model))

local r = loupe.call("probe.sweep", m, {dataset = data, c = 0.5})
print(string.format("%-28s %8s %9s %9s", "hook", "probe", "majority", "embed"))
for _, row in ipairs(r.sweep) do
  print(string.format("%-28s %8.4f %9.4f %9.4f", row.hook, row.probe, row.baseline_majority, row.baseline_embed))
end

local e = loupe.call("probe.erase", m, {dataset = data, hook = r.best_hook, folds = 5})
print(string.format("LEACE at %s: %.4f before, %.4f after, chance %.4f, %.2f%% of the variance moved",
  r.best_hook, e.accuracy_before, e.accuracy_after, e.chance, 100 * e.relative_sq_change))

local s = loupe.call("probe.steer", m, {prompt = "Sue read a book.", hook = "blocks.0.hook_resid_post",
  dataset = data, alphas = "-2,0,2", samples = 4, n = 40,
  pos_words = "smiled,laughed,grinned,sang,danced,beamed,giggled,cheered,happily,gladly,warmly,bright,sunny,warm,glad",
  neg_words = "sighed,wept,frowned,sobbed,moaned,sulked,groaned,mourned,sadly,wearily,gloomy,grey,cold,bleak,dull"})
for _, row in ipairs(s.shares) do
  print(string.format("alpha %+g: happy %.3f sad %.3f", row.alpha, row.pos_share, row.neg_share))
end
