-- Tensor operations against known answers: creation, indexing (1-based, inclusive,
-- negative from the end), views, broadcasting, reductions, matmul, softmax, topk, files.
local T = dofile((arg[0]:match("(.*/)") or "./") .. "check.lua")
local check, raises, near = T.check, T.raises, T.near
local tmp = os.getenv("TMPDIR") or "/tmp"

-- creation
local z = loupe.zeros{2, 3}
check(T.same_shape(z, {2, 3}) and z:sum() == 0, "zeros{2,3}")
check(loupe.zeros(2, 3):numel() == 6, "zeros(2, 3) with integer arguments")
check(loupe.ones{4}:sum() == 4, "ones")
check(loupe.full({2, 2}, 7):mean() == 7, "full")
local a = loupe.arange(6)
check(a:get(1) == 0 and a:get(6) == 5 and #a == 6, "arange(6) is 0..5")
check(#loupe.arange(2, 10, 3) == 3 and loupe.arange(2, 10, 3):get(3) == 8, "arange(2, 10, 3)")
local r1, r2 = loupe.randn({1000}, 42), loupe.randn({1000}, 42)
check(T.maxdiff(r1, r2) == 0, "randn is deterministic for a seed")
check(math.abs(r1:mean()) < 0.15 and math.abs(r1:norm() / math.sqrt(1000) - 1) < 0.1, "randn ~ N(0, 1)")
local t = loupe.tensor{{1, 2, 3}, {4, 5, 6}}
check(T.same_shape(t, {2, 3}) and t.ndim == 2 and t.dtype == "f32", "tensor{{...}} shape")
check(t:size(1) == 2 and t:size(-1) == 3 and #t == 2, "size / #")

-- indexing: 1-based, inclusive ranges, negatives from the end
check(t:get(1, 1) == 1 and t:get(2, 3) == 6 and t:get(-1, -1) == 6, "get")
check(t[{2, 3}] == 6 and t[{-1, 1}] == 4, "t[{i, j}] is a number")
local row = t[2]
check(T.same_shape(row, {3}) and row[1] == 4 and row[-1] == 6, "t[i] selects a row")
local col = t[{":", 2}]
check(T.same_shape(col, {2}) and col[1] == 2 and col[2] == 5, "t[{':', j}] selects a column")
local blk = t[{{1, 2}, {2, 3}}]
check(T.same_shape(blk, {2, 2}) and blk:get(2, 2) == 6, "inclusive ranges {a, b}")
check(T.same_shape(t[{{-1}, {2}}], {1, 2}), "{a} ranges run to the end")
check(T.same_shape(t[{{}, {-2, -1}}], {2, 2}) and t[{{}, {-2, -1}}]:get(1, 1) == 2, "negative ranges")
-- views share memory
local v = t[{1, {2, 3}}]
v:set(1, 20)
check(t:get(1, 2) == 20, "slices are views: writes show in the parent")
t[{2, ":"}] = 0
check(t[2]:sum() == 0, "assigning a number to a slice")
t[{2, ":"}] = loupe.tensor{7, 8, 9}
check(t:get(2, 3) == 9, "assigning a tensor to a slice")
t[1] = loupe.tensor{1}
check(t[1]:sum() == 3, "assignment broadcasts")
t:set(1, 1, 1); t:set(1, 2, 2); t:set(1, 3, 3)
local tt = t:transpose()
check(T.same_shape(tt, {3, 2}) and tt:get(3, 1) == 3 and tt:get(1, 2) == 7, "transpose is a view")
check(not tt:is_contiguous() and tt:contiguous():is_contiguous(), "contiguous")
check(T.same_shape(t.T, {3, 2}) and t.T:get(2, 2) == 8, "t.T")
local m = loupe.arange(24):view(2, 3, 4)
check(m:get(2, 3, 4) == 23 and m:get(1, 2, 1) == 4, "view(2, 3, 4) is row-major")
check(T.same_shape(m:view(-1, 4), {6, 4}), "view with -1")
check(T.same_shape(m:permute(3, 1, 2), {4, 2, 3}) and m:permute(3, 1, 2):get(4, 2, 3) == 23, "permute")
check(m:select(2, 3):get(1, 1) == 8, "select(dim, i)")
check(T.same_shape(m:narrow(3, 2, 2), {2, 3, 2}) and m:narrow(3, 2, 2):get(1, 1, 1) == 1, "narrow(dim, start, len)")
check(T.same_shape(m:unsqueeze(1), {1, 2, 3, 4}) and T.same_shape(m:unsqueeze(1):squeeze(), {2, 3, 4}), "unsqueeze / squeeze")
check(T.same_shape(tt:reshape(6), {6}) and tt:reshape(6):get(2) == 7, "reshape copies a non-contiguous tensor")
local c = m:clone(); c:fill(1)
check(m:sum() == 276 and c:sum() == 24, "clone copies")

-- broadcasting arithmetic
local x = loupe.tensor{{1, 2, 3}, {4, 5, 6}}
local b = loupe.tensor{10, 20, 30}
local s = x + b
check(T.same_shape(s, {2, 3}) and s:get(2, 3) == 36, "[2,3] + [3]")
check(T.same_shape(x + loupe.tensor{{1}, {2}}, {2, 3}) and (x + loupe.tensor{{1}, {2}}):get(2, 1) == 6, "[2,3] + [2,1]")
check(T.same_shape(loupe.ones{3, 1} * loupe.ones{1, 4}, {3, 4}), "[3,1] * [1,4] → [3,4]")
check((x * 2):sum() == 42 and (2 * x):sum() == 42 and (x - 1):sum() == 15 and (1 - x):sum() == -15, "numbers on either side")
check((x / 2):get(2, 2) == 2.5 and (-x):get(1, 1) == -1 and (x ^ 2):get(2, 3) == 36, "/ unary - ^")
check(near(x:exp():log():get(2, 2), 5), "exp/log")
check((x - 3):relu():sum() == 6 and (x - 3):abs():sum() == 9, "relu / abs")
raises(function() return x + loupe.ones{4} end, "cannot be broadcast", "mismatched shapes")
raises(function() return x + "a" end, "needs a Tensor or a number", "adding a string")

-- reductions
check(x:sum() == 21 and x:mean() == 3.5, "sum / mean of everything")
local s1 = x:sum(1)
check(T.same_shape(s1, {3}) and s1:get(1) == 5 and s1:get(3) == 9, "sum(1)")
check(T.same_shape(x:sum(2, true), {2, 1}) and x:sum(2, true):get(2, 1) == 15, "sum(2, keepdim)")
local mx, imx = x:max(2)
check(mx:get(1) == 3 and imx:get(1) == 3 and imx:get(2) == 3, "max(dim) → values, 1-based indices")
local v0, i0 = x:max()
check(v0 == 6 and i0 == 6, "max() → value, flat 1-based index")
check(x:argmax() == 6 and x:argmin() == 1 and x:min() == 1, "argmax / argmin / min")
check(x:argmax(1):get(2) == 2, "argmax(dim)")
check(near(loupe.tensor{3, 4}:norm(), 5), "norm")
check(near(x:norm(2):get(1), math.sqrt(14)), "norm(dim)")
check(loupe.tensor{1, 2, 3}:dot(loupe.tensor{4, 5, 6}) == 32, "dot")
check(near(loupe.cosine(loupe.tensor{1, 0}, loupe.tensor{1, 1}), 1 / math.sqrt(2)), "cosine")
check(near(loupe.cosine(x, x, 2):get(2), 1), "cosine along a dim")

-- softmax
local sm = loupe.randn({3, 50}, 7):softmax()
local sums = sm:sum(2)
check(near(sums:get(1), 1) and near(sums:get(3), 1), "softmax rows sum to 1")
local ls = loupe.randn({3, 50}, 7):log_softmax()
check(T.maxdiff(ls:exp(), sm) < 1e-6, "log_softmax = log(softmax)")
check(near(loupe.tensor{1000, 1000}:softmax():get(1), 0.5), "softmax is stable for large inputs")
check(near(loupe.tensor{{1, 2}, {3, 4}}:softmax(1):get(2, 1), 1 / (1 + math.exp(-2))), "softmax(1) along columns")

-- topk
local vals, idx = loupe.tensor{5, 1, 9, 3, 7}:topk(3)
check(vals:get(1) == 9 and vals:get(2) == 7 and vals:get(3) == 5, "topk values, descending")
check(idx:get(1) == 3 and idx:get(2) == 5 and idx:get(3) == 1, "topk 1-based indices")
local bv, bi = loupe.randn({4, 200}, 3):topk(40)
check(T.same_shape(bv, {4, 40}) and bv:get(2, 1) >= bv:get(2, 2) and bv:get(4, 39) >= bv:get(4, 40), "topk per row (k > 32 path)")
check(bi:get(1, 1) == loupe.randn({4, 200}, 3)[1]:argmax(), "topk index agrees with argmax")
raises(function() loupe.tensor{1, 2}:topk(3) end, "k must be in 1..2", "topk k too large")

-- matmul (BLAS)
local A = loupe.tensor{{1, 2}, {3, 4}, {5, 6}}
local B = loupe.tensor{{1, 0, 2}, {0, 1, 3}}
local AB = A:matmul(B)
check(T.same_shape(AB, {3, 3}) and AB:get(1, 3) == 8 and AB:get(3, 3) == 28 and AB:get(2, 2) == 4, "matmul [3,2]@[2,3]")
check(T.same_shape(loupe.tensor{1, 1}:matmul(B), {3}) and loupe.tensor{1, 1}:matmul(B):get(3) == 5, "vector @ matrix")
check(T.same_shape(A:matmul(loupe.tensor{1, 1}), {3}) and A:matmul(loupe.tensor{1, 1}):get(2) == 7, "matrix @ vector")
check(A:transpose():matmul(A):get(1, 1) == 35, "matmul of a transposed view")
local batched = loupe.ones{2, 3, 4}:matmul(loupe.ones{2, 4, 5})
check(T.same_shape(batched, {2, 3, 5}) and batched:get(2, 3, 5) == 4, "batched matmul")
check(T.same_shape(loupe.ones{2, 3, 4}:matmul(loupe.ones{4, 5}), {2, 3, 5}), "[2,3,4] @ [4,5]")
raises(function() A:matmul(A) end, "do not match", "matmul shape mismatch")

-- conversion
local tab = A:totable()
check(#tab == 3 and tab[3][2] == 6, "totable")
check(loupe.tensor{{42}}:item() == 42, "item")
raises(function() A:item() end, "one element", "item of a big tensor")
check(tostring(A):find("tensor%(%[%[") and tostring(A):find("shape=%[3, 2%]"), "tostring")
check(#tostring(loupe.zeros{100, 100}) < 2000, "tostring truncates big tensors")

-- files
local p = tmp .. "/loupe_lua_test.npy"
check(A:save_npy(p) == true, "save_npy")
local back = loupe.load_npy(p)
check(T.same_shape(back, {3, 2}) and T.maxdiff(back, A) == 0, "npy round trip")
check(A:transpose():save_npy(p) and T.maxdiff(loupe.load_npy(p), A:transpose()) == 0, "npy of a strided view")
os.remove(p)
local nilv, msg = loupe.load_npy(tmp .. "/does/not/exist.npy")
check(nilv == nil and type(msg) == "string" and msg:find("exist"), "load_npy of a missing file → nil, msg")
local st = tmp .. "/loupe_lua_test.safetensors"
check(loupe.save_safetensors(st, {a = A, b = loupe.arange(5), c = A[{":", 2}]}, {note = "hi"}) == true, "save_safetensors")
local d = loupe.load_safetensors(st)
check(T.maxdiff(d.a, A) == 0 and T.maxdiff(d.b, loupe.arange(5)) == 0 and T.maxdiff(d.c, A[{":", 2}]) == 0, "safetensors round trip")
os.remove(st)
check(select(2, loupe.save_safetensors(tmp .. "/no/such/dir/x.safetensors", {a = A})) ~= nil, "save to a bad path → nil, msg")

-- misuse
raises(function() return A[4] end, "index 4 out of range for dimension 1 of size 3", "row out of range")
raises(function() return A[0] end, "out of range", "index 0")
raises(function() return A[{1, 2, 3}] end, "too many indices", "too many indices")
raises(function() return A[{{2, 9}}] end, "out of bounds", "range out of bounds")
raises(function() return A:get(1) end, "expected 2 indices", "get with too few indices")
raises(function() return A:sum(3) end, "dimension 3 out of range", "bad dim")
raises(function() return A:view(4) end, "cannot view", "view with the wrong count")
raises(function() return A:transpose():view(6) end, "contiguous", "view of a non-contiguous tensor")
raises(function() return loupe.tensor{{1, 2}, {3}} end, "ragged", "ragged nesting")
raises(function() return loupe.tensor{"a"} end, "expected numbers", "strings in tensor()")
raises(function() return A.nosuch end, "no field or method 'nosuch'", "unknown method")
raises(function() return loupe.zeros{-1} end, "non-negative", "negative size")
T.done()
