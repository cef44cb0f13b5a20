-- Steering with a concept direction: the difference of means of happy vs sad passages'
-- residual stream (probe.steer builds it from the labelled passages), added with strength
-- alpha at a layer while generating; the share of happy and sad words in the generations
-- moves with alpha.
-- usage: loupe run scripts/steering.lua [MODEL] [HOOK]
local model = arg[1] or "toy"
local m <close> = assert(loupe.load(model))
local hook = arg[2] or "blocks.0.hook_resid_post"
local data = m.cfg.dir .. "/data/eval/mood.jsonl"
local s = loupe.call("probe.steer", m, {prompt = "Sue read a book.", hook = hook, dataset = data,
  alphas = "-2,0,2", samples = 16, n = 48, temperature = 0.8,
  pos_words = "bright,cheerful,sunny,warm,lovely,joyful,glad,merry,golden,radiant,sweet,pleasant,smiled,laughed,grinned,sang,danced,beamed,giggled,cheered,happily,gladly,eagerly,warmly,brightly,cheerfully",
  neg_words = "gloomy,dreary,grey,cold,bleak,dismal,somber,dull,heavy,lonely,bitter,hollow,sighed,wept,frowned,sobbed,moaned,sulked,groaned,mourned,sadly,slowly,wearily,quietly,heavily,bitterly"})
print(string.format("%s: mood direction (mean of happy - mean of sad passages) added at %s", model, hook))
local bal = {}
for _, row in ipairs(s.shares) do
  print(string.format("  alpha %+g: happy-word share %.3f, sad-word share %.3f", row.alpha, row.pos_share, row.neg_share))
  bal[#bal + 1] = row.pos_share - row.neg_share
end
assert(bal[1] < bal[2] and bal[2] < bal[3], "the happy - sad balance should grow with alpha")
