-- Plugins from Lua: loupe.call, loupe.plugins sugar, loupe.methods, parameter checks.
-- args: GPT2_FIXTURE_DIR
local T = dofile((arg[0]:match("(.*/)") or "./") .. "check.lua")
local check, raises = T.check, T.raises
local dir = assert(arg[1], "GPT2_FIXTURE_DIR")
local m <close> = assert(loupe.load(dir))

local methods = loupe.methods()
local ll
for _, mi in ipairs(methods) do if mi.name == "logit_lens.run" then ll = mi end end
if not ll then T.skip("the logit_lens plugin was not found") end
check(ll.plugin == "logit_lens" and ll.method == "run" and #ll.summary > 0 and #ll.help > 0, "methods() lists logit_lens.run with help")
local req
for _, p in ipairs(ll.params) do if p.name == "prompt" then req = p end end
check(req and req.required and req.type == "text", "params carry type and required")

local r = loupe.call("logit_lens.run", m, {prompt = {12, 52, 90, 11, 17}, k = 3})
check(type(r) == "table" and getmetatable(r.kl) and r.kl.ndim == 2, "results: tensors become Tensors")
check(type(r.top) == "table" and #r.top > 0 and r.top.columns and r.top[1].layer ~= nil, "results: tables become rows keyed by column")
local r2 = loupe.plugins.logit_lens.run(m, {prompt = {12, 52, 90, 11, 17}, k = 3})
check(T.maxdiff(r2.kl, r.kl) == 0 and #r2.top == #r.top, "loupe.plugins.logit_lens.run sugar")
check(loupe.plugins.logit_lens.name == "logit_lens" and #loupe.plugins.logit_lens.version > 0, "plugin table fields")
local names = {}
for k in pairs(loupe.plugins) do names[#names + 1] = k end
check(#names >= 1, "pairs(loupe.plugins)")
local r3 = loupe.call("logit_lens.run", m, {prompt = loupe.tensor{12, 52, 90}, k = 2, positions = "-1", logits = true})
check(r3.kl.shape[2] == 1 and r3.logits ~= nil, "string, bool params and ids as a Tensor")

raises(function() loupe.call("logit_lens.run", m, {prompt = {1, 2}, kk = 3}) end, "unknown parameter 'kk' (valid: prompt, k", "unknown parameter lists the valid ones")
raises(function() loupe.call("logit_lens.run", m, {k = 3}) end, "missing required parameter 'prompt'", "missing required parameter")
raises(function() loupe.call("logit_lens.run", m, {prompt = {1, 2}, k = "many"}) end, "parameter 'k'", "badly typed parameter")
raises(function() loupe.call("logit_lens.run", m, {prompt = {1, 2}, k = {}}) end, "cannot be a table", "table for an int")
raises(function() loupe.call("logit_lens.nope", m, {}) end, "no plugin method 'logit_lens.nope'", "unknown method")
raises(function() return loupe.plugins.nope end, "no plugin 'nope'", "unknown plugin")
raises(function() return loupe.plugins.logit_lens.nope end, "no plugin method", "unknown method via sugar")
raises(function() loupe.call("logit_lens.run", 42, {prompt = {1}}) end, "expected a Model", "non-model argument")
raises(function() loupe.call("logit_lens.run", m, {prompt = "text"}) end, "", "text without a tokenizer fails cleanly")
check(T.maxdiff(m:run({1, 2, 3}), m:run({1, 2, 3})) == 0, "model still usable after plugin errors")
T.done()
