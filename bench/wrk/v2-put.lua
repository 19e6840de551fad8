-- wrk script: PUT of fresh v2 keys, /v2/keys/bench/<run>/<thread>/<n>, form body value=<value-size bytes>.
-- Arguments after `--`: value size (default 64) and a run id (keys of different runs never collide).
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
function init(args)
  body = "value=" .. string.rep("v", tonumber(args[1] or "64"))
  prefix = "/v2/keys/bench/" .. (args[2] or "run") .. "/" .. tostring(tid) .. "/"
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end
function request()
  n = n + 1
  return wrk.format("PUT", prefix .. n, headers, body)
end
