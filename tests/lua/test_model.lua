-- The Model binding on the golden fixtures: logits equal `loupe logits`, batches, hooks
-- (reading, zeroing in place, replacing by return value, patching from another run's
-- cache), errors inside hooks, caches, stop_at_layer, weights, generation, closing.
-- args: FIXTURES_DIR LOUPE_EXE
local T = dofile((arg[0]:match("(.*/)") or "./") .. "check.lua")
local check, raises = T.check, T.raises
local fixtures, exe = assert(arg[1], "FIXTURES_DIR"), assert(arg[2], "LOUPE_EXE")
local tmp = os.getenv("TMPDIR") or "/tmp"

local function read_json_ids(path, key)
  local f = assert(io.open(path))
  local s = f:read("a"); f:close()
  local body = s:match('"' .. key .. '"%s*:%s*%[([^%]]*)%]')
  local ids = {}
  for n in body:gmatch("%d+") do ids[#ids + 1] = tonumber(n) end
  return ids
end

for _, name in ipairs{"gpt2", "llama", "neox"} do
  local dir = fixtures .. "/" .. name
  local m = assert(loupe.load(dir))
  local ids = read_json_ids(dir .. "/inputs.json", "ids")
  local cfg = m.cfg
  check(cfg.n_layers >= 2 and cfg.d_model > 0 and cfg.d_vocab > 0 and type(cfg.model_type) == "string", name .. ": cfg")

  -- logits equal the CLI's exactly
  local out = string.format("%s/loupe_lua_%s_%d.npy", tmp, name, math.random(1 << 30))
  local cmd = string.format("%q logits %q --ids %s -o %q", exe, dir, table.concat(ids, ","), out)
  check(os.execute(cmd), name .. ": loupe logits ran")
  local ref = assert(loupe.load_npy(out))
  os.remove(out)
  local logits = m:run(ids)
  check(T.same_shape(logits, {1, #ids, cfg.d_vocab}), name .. ": logits shape [1, pos, vocab]")
  check(T.maxdiff(logits[1], ref) == 0, name .. ": logits equal `loupe logits` exactly")
  check(T.maxdiff(m:run(loupe.tensor(ids)), logits) == 0, name .. ": a 1-d Tensor of ids runs the same")

  -- last_only
  local last = m:run(ids, {last_only = true})
  check(T.same_shape(last, {1, cfg.d_vocab}) and T.maxdiff(last[1], logits[{1, -1}]) < 1e-4, name .. ": last_only")

  -- batch (right padded) rows equal single runs
  local a, b = {table.unpack(ids, 1, 5)}, {table.unpack(ids, 1, 9)}
  local batch = m:run({a, b})
  check(T.same_shape(batch, {2, 9, cfg.d_vocab}), name .. ": batch shape")
  check(T.maxdiff(batch[{1, {1, 5}}], m:run(a)[1]) < 1e-4 and T.maxdiff(batch[2], m:run(b)[1]) < 1e-4,
        name .. ": padded batch rows equal single runs")

  -- a hook sees the activation with ctx; zeroing in place changes the output
  local seen
  m:run(ids, {hooks = {["blocks.1.attn.hook_pattern"] = function(t, ctx)
    seen = {name = ctx.name, layer = ctx.layer, kind = ctx.kind, shape = t.shape, sum = t[{1, 1, -1}]:sum()}
  end}})
  check(seen and seen.name == "blocks.1.attn.hook_pattern" and seen.layer == 1 and seen.kind == "attn.hook_pattern",
        name .. ": hook ctx name/layer/kind")
  check(seen and seen.shape[2] == cfg.n_heads and seen.shape[3] == #ids and T.near(seen.sum, 1, 1e-4),
        name .. ": pattern rows sum to 1")
  local zeroed = m:run(ids, {hooks = {["blocks.0.hook_mlp_out"] = function(t) t:fill(0) end}})
  check(T.maxdiff(zeroed, logits) > 1e-3, name .. ": zeroing hook_mlp_out in place changes the logits")
  local returned = m:run(ids, {hooks = {["blocks.0.hook_mlp_out"] = function(t) return loupe.zeros(t.shape) end}})
  check(T.maxdiff(returned, zeroed) == 0, name .. ": returning a tensor replaces the activation")
  local after_cache
  local _, c0 = m:run_with_cache(ids, {names = {"blocks.0.hook_mlp_out"},
                                       hooks = {["blocks.0.hook_mlp_out"] = function(t) t:fill(0) end}})
  check(c0["blocks.0.hook_mlp_out"]:abs():sum() == 0, name .. ": the cache stores the hooked value")
  local globbed = 0
  m:run(ids, {hooks = {["blocks.*.hook_resid_post"] = function() globbed = globbed + 1 end}})
  check(globbed == cfg.n_layers, name .. ": glob hooks fire once per block")

  -- patching resid_pre from another run's cache reproduces that run's logits
  local other = {}
  for i = 1, #ids do other[i] = (ids[i] * 7 + 3) % cfg.d_vocab end
  local other_logits, cache = m:run_with_cache(other, {names = {"blocks.1.hook_resid_pre"}})
  check(#cache == 1 and cache:keys()[1] == "blocks.1.hook_resid_pre", name .. ": cache holds what names asked for")
  local patched = m:run(ids, {hooks = {["blocks.1.hook_resid_pre"] = function(t)
    return cache["blocks.1.hook_resid_pre"]
  end}})
  check(T.maxdiff(patched, other_logits) < 1e-5, name .. ": patching resid_pre reproduces the other run")
  local pos_patched = m:run(ids, {hooks = {["blocks.1.hook_resid_pre"] = function(t)
    t[{1, -1}] = cache["blocks.1.hook_resid_pre"][{1, -1}]
  end}})
  check(T.maxdiff(pos_patched[{1, {1, -2}}], logits[{1, {1, -2}}]) < 1e-5 and
        T.maxdiff(pos_patched[{1, -1}], logits[{1, -1}]) > 1e-4, name .. ": patching one position changes only it")

  -- stop_at_layer returns the residual stream
  local _, full = m:run_with_cache(ids)
  check(#full == #m:hook_points() and #full > 10, name .. ": an unfiltered cache holds every hook point")
  local resid = m:run(ids, {stop_at_layer = 1})
  check(T.same_shape(resid, {1, #ids, cfg.d_model}) and T.maxdiff(resid, full["blocks.1.hook_resid_pre"]) == 0,
        name .. ": stop_at_layer=1 returns blocks.1.hook_resid_pre")
  local n = 0
  for k, v in pairs(full) do n = n + 1; assert(type(k) == "string" and v.ndim >= 3) end
  check(n == #full, name .. ": pairs(cache)")
  check(full:get("nope") == nil, name .. ": cache:get of a missing name is nil")
  raises(function() return full["blocks.99.hook_resid_pre"] end, "the cache has no", name .. ": cache[missing] raises")

  -- an error inside a hook: a Lua error with the message, and the model still works
  local ok, err = pcall(m.run, m, ids, {hooks = {["blocks.0.hook_resid_pre"] = function() error("boom") end}})
  check(not ok and err:find("boom") and err:find("blocks.0.hook_resid_pre", 1, true), name .. ": hook error is raised")
  check(T.maxdiff(m:run(ids), logits) == 0, name .. ": the model is usable after a failing hook")
  raises(function() m:run(ids, {hooks = {["blocks.0.hook_resid_pre"] = function() return 5 end}}) end,
         "must return nil or a Tensor", name .. ": hook returning a number")
  raises(function() m:run(ids, {hooks = {["blocks.0.hook_resid_pre"] = function(t) return loupe.zeros{3} end}}) end,
         "shape", name .. ": hook returning the wrong shape")
  raises(function() m:run(ids, {hooks = {["blocks.0.hook_resid_pre"] = function() m:run(ids) end}}) end,
         "already running", name .. ": re-entering the model from a hook")
  check(T.maxdiff(m:run(ids), logits) == 0, name .. ": still usable")
  local kept
  m:run(ids, {hooks = {["blocks.0.hook_resid_pre"] = function(t) kept = t; keep_row = t[1] end}})
  raises(function() return kept:sum() end, "used after the hook returned", name .. ": stale hook tensor")
  raises(function() return keep_row:sum() end, "used after the hook returned", name .. ": stale view of a hook tensor")
  local cloned
  m:run(ids, {hooks = {["blocks.0.hook_resid_pre"] = function(t) cloned = t:clone() end}})
  check(cloned:sum() == full["blocks.0.hook_resid_pre"]:sum(), name .. ": a clone outlives the hook")

  -- weights
  local WE = m:weight("W_E")
  check(T.same_shape(WE, {cfg.d_vocab, cfg.d_model}), name .. ": W_E shape")
  check(T.same_shape(m:weight("blocks.0.attn.W_O"), {cfg.n_heads, cfg.d_head, cfg.d_model}), name .. ": W_O shape")
  raises(function() m:weight("blocks.9.attn.W_O") end, "", name .. ": unknown weight raises")
  local shp = m:hook_shape("blocks.0.attn.hook_pattern", 4)
  check(shp[1] == 1 and shp[2] == cfg.n_heads and shp[4] == 4, name .. ": hook_shape")

  -- misuse
  raises(function() m:run(ids, {hooks = {["blocks.0.hook_nothing"] = function() end}}) end,
         "matches no hook point", name .. ": unknown hook name")
  raises(function() m:run(ids, {hooks = {["blocks.7.hook_resid_pre"] = function() end}}) end,
         "matches no hook point", name .. ": layer out of range in a hook name")
  raises(function() m:run(ids, {hook = {}}) end, "unknown option 'hook'", name .. ": unknown option")
  raises(function() m:run({1, cfg.d_vocab}) end, "is not an integer in 0..", name .. ": token id out of range")
  raises(function() m:run(ids, {stop_at_layer = 99}) end, "out of range", name .. ": stop_at_layer out of range")
  raises(function() m:run(ids, {last_only = 1}) end, "must be a boolean", name .. ": wrong option type")
  raises(function() m:run() end, "tokens expected", name .. ": missing tokens")
  raises(function() m:run("some text") end, "has no tokenizer", name .. ": text without a tokenizer")
  raises(function() m:run_with_cache(ids, {names = {"blocks.5.nope"}}) end, "matches no hook point", name .. ": bad cache name")
  raises(function() m.run(42, ids) end, "loupe.Model expected", name .. ": method on a non-model")

  -- closing: views of a closed cache or model raise instead of reading freed memory
  do
    local _, c <close> = m:run_with_cache(ids, {names = {"hook_embed"}})
    keep_embed = c["hook_embed"]
  end
  raises(function() return keep_embed:sum() end, "cache this tensor belongs to was closed", name .. ": closed cache view")
  m:close()
  raises(function() return WE:sum() end, "was closed", name .. ": weight view of a closed model")
  raises(function() m:run(ids) end, "model is closed", name .. ": run on a closed model")
end

-- generation on the gpt2 fixture equals the reference greedy continuation
do
  local dir = fixtures .. "/gpt2"
  local m <close> = assert(loupe.load(dir))
  local prompt = read_json_ids(dir .. "/greedy.json", "prompt")
  local want = read_json_ids(dir .. "/greedy.json", "continuation")
  local text, ids = m:generate(prompt, {n = #want})
  check(text == nil and #ids == #want, "generate returns ids (no tokenizer: text is nil)")
  local same = true
  for i = 1, #want do same = same and ids[i] == want[i] end
  check(same, "greedy generation equals transformers'")
  local _, ids2 = m:generate(prompt, {n = 5, temperature = 1.0, top_k = 5, seed = 3})
  local _, ids3 = m:generate(prompt, {n = 5, temperature = 1.0, top_k = 5, seed = 3})
  check(table.concat(ids2, ",") == table.concat(ids3, ","), "sampling is reproducible with a seed")
  local steps = 0
  local _, ids4 = m:generate(prompt, {n = 4, hooks = {["blocks.0.hook_resid_pre"] = function() steps = steps + 1 end}})
  check(steps == 4 and #ids4 == 4, "hooks run on every generation step")
  raises(function() m:generate(prompt, {n = 3, tempreature = 1}) end, "unknown option 'tempreature'", "generate option typo")
end

-- loading failures are nil, msg
local nm, msg = loupe.load(fixtures .. "/no_such_model")
check(nm == nil and type(msg) == "string", "loupe.load of a missing model → nil, msg")
T.done()
