-- probe from Lua (loupe.call and loupe.plugins.probe), as a script would use it, on
-- stories260K with a CSV dataset written here. args: SHARED_DIR TMPDIR. Skips (77) when
-- ../shared is absent.
local T = dofile(os.getenv("LOUPE_SRC") .. "/tests/lua/check.lua")
local check, raises = T.check, T.raises
local dir = (arg[1] or "../shared") .. "/models/stories260K"
local f = io.open(dir .. "/config.json")
if not f then T.skip(dir .. " not found (the shared models folder is absent in a fresh clone)") end
f:close()
local tmp = arg[2] or "/tmp"

local happy = {"happy", "glad", "joyful", "merry", "bright", "sunny"}
local sad = {"sad", "gloomy", "grey", "dull", "bleak", "lonely"}
local who = {"Tom", "Lily", "Sam", "Mia", "Ben", "Sue"}
local path = tmp .. "/probe_lua.csv"
local out = assert(io.open(path, "w"))
out:write("text,label\n")
local seed = 11
local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed // 65536 % n + 1 end
for _ = 1, 240 do
  local y = rnd(2) - 1
  local w = (y == 1 and happy or sad)[rnd(6)]
  out:write(string.format('"%s was %s, and then",%d\n', who[rnd(6)], w, y))
end
out:close()

local m <close> = assert(loupe.load(dir))
local r = loupe.call("probe.sweep", m, {dataset = path, folds = 3})
check(#r.sweep == m.cfg.n_layers, "sweep: one row per layer")
for _, row in ipairs(r.sweep) do
  check(row.baseline_majority ~= nil and row.baseline_embed ~= nil,
    string.format("%s: %.3f beside majority %.3f and embedding %.3f", row.hook, row.probe,
      row.baseline_majority, row.baseline_embed))
end
check(r.accuracy.shape[1] == m.cfg.n_layers and r.accuracy.shape[2] == 3, "accuracy tensor [layer, 3]")
check(r.best >= 0.8, string.format("best layer %d: %.3f", r.best_layer, r.best))

local t = loupe.plugins.probe.train(m, {dataset = path, hook = r.best_hook, save = tmp .. "/probe_lua"})
check(t.saved == tmp .. "/probe_lua.safetensors", "train saves " .. tostring(t.saved))
local a = loupe.call("probe.apply", m, {probe = tmp .. "/probe_lua", dataset = path})
check(a.score >= t.best - 0.1, string.format("apply: %.3f with majority %.3f", a.score, a.baseline_majority))
raises(function() loupe.call("probe.train", m, {dataset = path, hook = r.best_hook, kind = "tree"}) end,
  "kind must be", "bad kind")
T.done()
