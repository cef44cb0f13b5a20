-- Prompts for the toy-model UI tests (tests/ui/test_ui_toy.sh), made with the model's own
-- tokenizer: a sequence of R random one-word tokens repeated twice, whose text tokenizes
-- back to exactly those ids (so the induction stripe is at a known offset).
--   loupe run toy_prompts.lua MODEL [R] [SEED]
-- prints: "text<TAB>…", "period R", "bos 0|1", "n N"
local m = assert(loupe.load(arg[1]))
local R = tonumber(arg[2] or 15)
math.randomseed(tonumber(arg[3] or 7))
local V = m.cfg.d_vocab
local ids, seen = {}, {}
for _ = 1, 200000 do
  if #ids == R then break end
  local id = math.random(0, V - 1)
  local ok, s = pcall(function() return m:to_str_tokens({id})[1] end)
  if ok and not seen[id] and s:match("^ %a%a+$") and #s <= 8 then
    local back, back2 = m:tokenize(s, {bos = false}), m:tokenize(s:sub(2), {bos = false})
    if (#back == 1 and back[1] == id) or (#back2 == 1 and back2[1] == id) then -- (a SentencePiece prefix)
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
end
assert(#ids == R, "not enough single-word tokens in the vocabulary")
local twice, parts = {}, {}
for i = 1, R do twice[i] = ids[i]; twice[R + i] = ids[i]; parts[i] = m:to_str_tokens({ids[i]})[1] end
local function same(text)
  local got = m:tokenize(text, {bos = false})
  if #got ~= 2 * R then return nil end
  for i = 1, 2 * R do if got[i] ~= twice[i] then return nil end end
  return got
end
local text = table.concat(parts) .. table.concat(parts)
local got = same(text)
if not got then text = text:sub(2); got = same(text) end -- the tokenizer adds the first space
assert(got, "the repeated text does not tokenize back to the same 2R tokens")
local with = m:tokenize(text)
print("text\t" .. text)
print("period " .. R)
print("bos " .. (#with - #got))
print("n " .. #with)
