-- wrk script: PUT of fresh v2 keys, /v2/keys/bench/<run>/<thread>/<n>, form body value=<value-size bytes>.
-- Arguments after `--`: value size (default 64), a run id (keys of different runs never collide), and a count of
-- answers per wrk thread after which the run ends (default 0: wrk's -d alone ends it). At the count the script
-- sends wrk SIGINT, which wrk takes as the end of its run: it stops its threads at their next 0.1 s check and
-- reports as usual, over the time it actually ran. So two servers can be given the same work, as etcd's own
-- benchmark does with --total.
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
  local limit = tonumber(args[3] or "0")
  if limit > 0 then
    -- Defined only with a count: wrk parses answers for a script only when it has a response function.
    local ffi = require("ffi")
    ffi.cdef [[ int kill(int pid, int sig); int getpid(void); ]]
    local answers = 0
    response = function()
      answers = answers + 1
      if answers == limit then ffi.C.kill(ffi.C.getpid(), 2) end
    end
  end
end
function request()
  n = n + 1
  return wrk.format("PUT", prefix .. n, headers, body)
end
