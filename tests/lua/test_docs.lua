-- Every name the binding exports (module functions, each type's methods and metamethods)
-- appears in docs/lua-api.md. args: DOCS_PATH
local T = dofile((arg[0]:match("(.*/)") or "./") .. "check.lua")
local path = assert(arg[1], "DOCS_PATH")
local f = assert(io.open(path))
local doc = f:read("a")
f:close()

local function documented(prefix, name)
  -- `loupe.name`, `t:name`, `m:name`, `cache:name`, `p:name` … or the bare name in a table cell
  return doc:find("%f[%w_]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]") ~= nil
end

local n = 0
local function check_table(prefix, tbl)
  local names = {}
  for k in pairs(tbl) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    n = n + 1
    T.check(documented(prefix, k), prefix .. k .. " is documented")
  end
end

check_table("loupe.", loupe)
local reg = debug.getregistry()
for _, tname in ipairs{"loupe.Tensor", "loupe.Model", "loupe.Cache", "loupe.Progress"} do
  local mt = reg[tname]
  T.check(type(mt) == "table" and type(mt.methods) == "table", tname .. " has a metatable with methods")
  check_table(tname .. ":", mt.methods)
  for _, meta in ipairs{"__close", "__len", "__pairs"} do
    if mt[meta] then
      local what = ({__close = "to%-be%-closed", __len = "#", __pairs = "pairs%("})[meta]
      T.check(doc:find(what) ~= nil, tname .. " " .. meta .. " is documented")
    end
  end
end
for _, field in ipairs{"shape", "ndim", "dtype", "T", "cfg"} do
  T.check(documented("", field), "field " .. field .. " is documented")
end
T.check(n > 60, "enumerated " .. n .. " names")
T.done()
