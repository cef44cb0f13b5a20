-- stories260K (a real tiny Llama with a tokenizer) from Lua: text in, text out.
-- args: SHARED_DIR. Skips (77) when ../shared is absent.
local T = dofile((arg[0]:match("(.*/)") or "./") .. "check.lua")
local check, raises = T.check, T.raises
local dir = (arg[1] or "../shared") .. "/models/stories260K"
local f = io.open(dir .. "/config.json")
if not f then T.skip(dir .. " not found (the shared models folder is absent in a fresh clone)") end
f:close()

local m <close> = assert(loupe.load(dir))
check(m.cfg.prepend_bos and m.cfg.bos_token_id == 1 and m.cfg.tokenizer ~= nil, "cfg: prepend_bos, tokenizer")
local ids = m:tokenize("Once upon a time")
check(ids[1] == 1 and #ids > 2, "tokenize prepends BOS by the model's rule")
check(m:tokenize("Once upon a time", {bos = false})[1] ~= 1, "tokenize {bos=false}")
local toks = m:to_tokens("Once upon a time")
check(T.same_shape(toks, {1, #ids}) and toks:get(1, 2) == ids[2], "to_tokens → [1, pos] tensor")
local strs = m:to_str_tokens(ids)
check(#strs == #ids and table.concat(strs, "", 2):find("upon"), "to_str_tokens")
check(m:decode(ids, {skip_special = true}) == "Once upon a time", "decode round trip")
check(m:to_single_token("time") > 0, "to_single_token")
raises(function() m:to_single_token(" once upon") end, "not one", "to_single_token of two tokens")

-- reference logits (float64 reference, BOS + 31 ids)
local ref_ids = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426}
local ref = assert(loupe.load_npy(dir .. "/reference_logits_bos_plus_31.npy"))
local logits = m:run(ref_ids)
check(T.maxdiff(logits[1], ref) <= 1e-4 * ref:abs():max(), "logits match the float64 reference")
check(T.maxdiff(m:run("Once upon a time"), m:run(ids)) == 0, "text input uses the same BOS rule")
local v, i = logits[{1, -1}]:topk(3)
check(v:get(1) >= v:get(2) and m:to_str_tokens({i:get(1) - 1})[1] ~= nil, "topk indices are 1-based (id = index - 1)")

-- greedy generation from BOS equals the author's continuation
local fh = assert(io.open(dir .. "/expected_greedy_256.txt"))
local want = fh:read("a"):gsub("\n+$", ""); fh:close()
local text, out = m:generate({1}, {n = 256})
check(#out == 256 and text == want, "greedy continuation equals expected_greedy_256.txt")
local t2 = m:generate("Once upon a time", {n = 8})
check(type(t2) == "string" and #t2 > 0, "generate from text")
-- a steering hook changes the continuation
local t3 = m:generate("Once upon a time", {n = 8, hooks = {["blocks.2.hook_resid_post"] = function(t)
  return t + 5 * loupe.randn({m.cfg.d_model}, 1)
end}})
check(t3 ~= t2, "a steering hook changes generation")
T.done()
