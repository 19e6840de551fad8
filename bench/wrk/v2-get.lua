-- wrk script: GET of one v2 key, /v2/keys/<key> (argument after `--`, default bench-get), written before the run.
function init(args)
  req = wrk.format("GET", "/v2/keys/" .. (args[1] or "bench-get"))
end
function request()
  return req
end
