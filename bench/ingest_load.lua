-- wrk script for the ingest benchmark: one signed body, a unique X-Shopify-Event-Id per request.
-- Arguments (after `--`): <event id prefix> <body file> <headers file: one "Name: value" a line>

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] .. "-t" .. tid .. "-"
  counter = 0
  non200 = 0
  local f = assert(io.open(args[2], "rb"))
  body = f:read("*a")
  f:close()
  headers = {}
  for line in io.lines(args[3]) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
end

function request()
  counter = counter + 1
  headers["X-Shopify-Event-Id"] = prefix .. counter
  headers["X-Shopify-Webhook-Id"] = "wh-" .. prefix .. counter
  return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, resp_body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non200") end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "non200": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.2f, "p99_ms": %.2f}\n',
    summary.requests, summary.duration, bad, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
