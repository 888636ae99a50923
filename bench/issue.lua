-- wrk script: POST the JSON body in $BODY to the issuance API with the admin
-- token in $TOKEN; a response counts as OK only if it is 201 Created and
-- carries a certificate. Prints lua_ok / lua_bad at the end (as the peer
-- scripts' post.lua does).
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status == 201 and body and string.find(body, "BEGIN CERTIFICATE", 1, true) then
    ok = ok + 1
  else
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("lua_ok %d\nlua_bad %d\n", o, b))
end
