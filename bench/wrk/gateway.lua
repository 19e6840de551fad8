-- wrk script for bench/gateway.ts: POSTs to etcd's JSON gateway (grpc-gateway) and, when done, prints one JSON line
-- with wrk's counts, latency percentiles and its own CPU time (from /proc/self/stat), so the caller can tell whether
-- wrk itself was the bottleneck.
--
--   WRK_OP=put   POST /v3/kv/put, sequential 8-character keys (thread id, then a counter, in hex) and 256-byte values
--   WRK_OP=range POST /v3/kv/range of WRK_RANGE_KEY (linearizable)
local op = os.getenv("WRK_OP") or "put"

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

if op == "put" then
  wrk.path = "/v3/kv/put"
  local value = b64(string.rep("v", 256))
  local counter = 0
  local prefix
  function init(args)
    prefix = string.format("%x", id)
  end
  function request()
    counter = counter + 1
    local key = prefix .. string.format("%07x", counter)
    return wrk.format(nil, nil, nil, '{"key":"' .. b64(key) .. '","value":"' .. value .. '"}')
  end
else
  wrk.path = "/v3/kv/range"
  wrk.body = '{"key":"' .. b64(os.getenv("WRK_RANGE_KEY") or "bench-range-key") .. '"}'
end

local function cpu_ticks()
  local f = io.open("/proc/self/stat", "r")
  if not f then return -1 end
  local stat = f:read("*a")
  f:close()
  local rest = stat:match("%) (.*)$")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  -- after "pid (comm) ": state is field 1, utime 12, stime 13
  return tonumber(fields[12]) + tonumber(fields[13])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"cpu_ticks":%d,"threads":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout, cpu_ticks(), #threads))
end
