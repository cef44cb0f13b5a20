-- 1,000 forward passes of a 16-token prompt from Lua, against the same loop in C
-- (bench/bench_lua_c.c). usage:
--   build/loupe run bench/bench_lua.lua [MODEL] [N] [BENCH_LUA_C]
-- MODEL defaults to the bundled toy model when present, else the gpt2 golden fixture.
local src = (arg[0]:match("(.*/)") or "./") .. "../"
local model = arg[1]
if not model then
  local f = io.open(src .. "models/toy/config.json")
  if f then f:close(); model = src .. "models/toy" else model = src .. "tests/golden/fixtures/gpt2" end
end
local N = tonumber(arg[2] or 1000)
local cbench = arg[3] or (src .. "build/bench/bench_lua_c")

local m <close> = assert(loupe.load(model))
local ids = {}
for i = 0, 15 do ids[#ids + 1] = (i * 37 + 11) % m.cfg.d_vocab end

local function lua_loop(opts)
  for _ = 1, 20 do m:run(ids, opts) end
  collectgarbage()
  local start = loupe.clock()
  for _ = 1, N do m:run(ids, opts) end
  return (loupe.clock() - start) / N * 1e6
end

local function c_loop()
  local p = io.popen(string.format("%q %q %d", cbench, model, N))
  local out = p and p:read("a") or ""
  if p then p:close() end
  return tonumber(out:match("([%d.]+) us/pass")) or math.huge
end

-- wall time per pass (monotonic clock); Lua and C rounds alternate and the best of 5 of
-- each is kept, to dampen a shared machine
local hook = {hooks = {["blocks.0.hook_resid_pre"] = function(t) end}}
local best, hooked, cbest = math.huge, math.huge, math.huge
for _ = 1, 5 do
  best = math.min(best, lua_loop())
  cbest = math.min(cbest, c_loop())
  hooked = math.min(hooked, lua_loop(hook))
end
print(string.format("model %s (%d layers, d_model %d, vocab %d), %d passes of 16 tokens",
                    m.cfg.name, m.cfg.n_layers, m.cfg.d_model, m.cfg.d_vocab, N))
print(string.format("lua m:run            %8.2f us/pass", best))
print(string.format("lua m:run + 1 hook   %8.2f us/pass", hooked))
if cbest < math.huge then
  print(string.format("c   lp_model_run     %8.2f us/pass", cbest))
  print(string.format("ratio lua / c        %8.3f", best / cbest))
else
  print("c benchmark not found at " .. cbench .. " (ninja -C build bench/bench_lua_c)")
end
