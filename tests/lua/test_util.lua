-- Output helpers: loupe.json, write_json, write_csv, progress; 'arg' handling.
local T = dofile((arg[0]:match("(.*/)") or "./") .. "check.lua")
local check, raises = T.check, T.raises
local tmp = os.getenv("TMPDIR") or "/tmp"

check(loupe.json({b = 1, a = {1, 2, 3}, c = "x\"y", d = true}) == '{"a":[1,2,3],"b":1,"c":"x\\"y","d":true}', "json: sorted keys, arrays, escapes")
check(loupe.json(loupe.tensor{{1, 2}, {3, 4}}) == "[[1,2],[3,4]]", "json of a tensor")
check(loupe.json({}) == "{}" and loupe.json(1.5) == "1.5" and loupe.json({[1] = "a", [3] = "c"}):find('"3":"c"'), "json edge cases")
raises(function() loupe.json({f = print}) end, "cannot encode a function", "json of a function")
local cyc = {}; cyc.self = cyc
raises(function() loupe.json(cyc) end, "deeper than", "json of a cycle")
raises(function() loupe.json(1, {indent = true}) end, "unknown option 'indent'", "json option typo")

local jp = tmp .. "/loupe_lua_test.json"
check(loupe.write_json(jp, {x = {1, 2}}) == true, "write_json")
local f = io.open(jp); local s = f:read("a"); f:close(); os.remove(jp)
check(s:find('"x"') and s:find("1"), "write_json content")
check(select(2, loupe.write_json(tmp .. "/no/such/dir/x.json", 1)):find("No such file"), "write_json failure → nil, msg")

local cp = tmp .. "/loupe_lua_test.csv"
local rows = {{layer = 0, token = " Mary", prob = 0.25}, {layer = 1, token = 'a,"b"', prob = 0.5}}
check(loupe.write_csv(cp, rows, {"layer", "token", "prob"}), "write_csv")
f = io.open(cp); s = f:read("a"); f:close()
check(s == 'layer,token,prob\n0," Mary",0.25\n1,"a,""b""",0.5\n', "csv quoting and column order")
rows.columns = {"prob", "layer"}
loupe.write_csv(cp, rows)
f = io.open(cp); s = f:read("a"); f:close(); os.remove(cp)
check(s == "prob,layer\n0.25,0\n0.5,1\n", "rows.columns gives the default order")
loupe.write_csv(cp, {{b = 1, a = 2}})
f = io.open(cp); s = f:read("a"); f:close(); os.remove(cp)
check(s == "a,b\n2,1\n", "default columns: sorted keys of the first row")
raises(function() loupe.write_csv(cp, {{a = {}}}, {"a"}) end, "cannot write a table in a cell", "csv of a table cell")

local p = loupe.progress(3, "test")
p:tick(); p:tick(2); p:done(); p:done()
check(tostring(p):find("Progress"), "progress ticks and finishes (twice is fine)")
do local q <close> = loupe.progress(2) q:tick() end
check(true, "progress as a <close> variable")
check(type(loupe.version()) == "string" and arg[0]:find("test_util.lua"), "version, arg[0]")
check(select("#", ...) == #arg and arg[1] == ..., "script arguments in arg and ...")
T.done()
