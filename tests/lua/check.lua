-- Shared helpers for the Lua tests: ok/FAIL lines and a summary, exit status 0 / 1
-- (77 = skipped, as meson understands it). Loaded with dofile(dir .. "check.lua").
local C = {ok = 0, fail = 0}

function C.check(cond, what)
  io.write(cond and "ok   " or "FAIL ", what, "\n")
  if cond then C.ok = C.ok + 1 else C.fail = C.fail + 1 end
  return cond
end

-- f must raise an error whose message contains `pattern` (plain text).
function C.raises(f, pattern, what)
  local ok, err = pcall(f)
  local good = not ok and tostring(err):find(pattern, 1, true) ~= nil
  if not good then
    io.write("     got: ", ok and "no error" or tostring(err), "\n")
  end
  return C.check(good, what .. " (error mentions '" .. pattern .. "')")
end

function C.near(a, b, tol) return math.abs(a - b) <= (tol or 1e-5) * (1 + math.abs(b)) end

-- max |a - b| over two tensors of the same shape
function C.maxdiff(a, b) return (a - b):abs():max() end

function C.same_shape(t, shape)
  local s = t.shape
  if #s ~= #shape then return false end
  for i = 1, #s do if s[i] ~= shape[i] then return false end end
  return true
end

function C.skip(why)
  print("SKIP " .. why)
  os.exit(77)
end

function C.done()
  print(string.format("%d passed, %d failed", C.ok, C.fail))
  os.exit(C.fail == 0 and 0 or 1, true)
end

C.dir = arg[0]:match("(.*/)") or "./"
return C
