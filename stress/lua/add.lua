-- wrk (scenario 4): one new customer per POST /v1.1/customer/add. With STRESS_DELAY_MS set, each
-- connection waits that long between an answer and its next request, to pace the load.
local threads = {}
local next_thread = 0
local counter = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  run_offset = tonumber(os.getenv("STRESS_RUN") or "0")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv("STRESS_AUTH")
end

local delay_ms = tonumber(os.getenv("STRESS_DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end

local function fresh_mobile()
  -- 91 9 <run and thread, 2 digits> <counter, 7 digits>: no two requests of the soak share one.
  counter = counter + 1
  return string.format("919%02d%07d", (run_offset * 2 + thread_index) % 100, counter)
end

function request()
  local mobile = fresh_mobile()
  local body = string.format(
    '{"root":{"customer":[{"mobile":"%s","email":"c%s@soak.example","firstname":"Soak","lastname":"Customer",' ..
    '"custom_fields":{"field":[{"name":"city","value":"Pune"}]}}]}}', mobile, mobile)
  return wrk.format(nil, "/v1.1/customer/add", nil, body)
end

function response(status, headers, body)
  if status ~= 200 or not body:find('"code":"1000"', 1, true) then
    errors_seen = (errors_seen or 0) + 1
    if errors_seen <= 3 then io.stderr:write("unexpected answer ", status, ": ", body:sub(1, 300), "\n") end
  end
end

function done(summary, latency, requests)
  local unexpected = 0
  for _, thread in ipairs(threads) do
    unexpected = unexpected + (thread:get("errors_seen") or 0)
  end
  io.write(string.format(
    "STRESS requests=%d seconds=%.3f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f unexpected=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, unexpected, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
