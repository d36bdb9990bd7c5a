-- Shared by the wrk scripts (bench/lua and stress/lua): per-thread fresh mobiles, the Basic-auth
-- header, the count of unexpected answers and the one result line bench/run.py and stress read.
local counter = 0
local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function fresh_mobile()
  -- Each run owns the numbers 919R........ and each thread a block of ten million of them, so
  -- no two requests share a mobile (and every one is a real Indian mobile: 9 starts them all).
  counter = counter + 1
  return string.format("919%d%08d", (run_offset or 0) % 10, thread_index * 10000000 + counter)
end

function count_unexpected(status, body, expected_code)
  if status ~= 200 or not body:find(expected_code, 1, true) then
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
    "WRK requests=%d seconds=%.3f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f unexpected=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, unexpected, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

function init_writer(env_prefix)
  -- A script that registers: POST with JSON, the run's own block of mobiles (BENCH_RUN, or
  -- STRESS_RUN with env_prefix "STRESS") and its header (BENCH_AUTH, STRESS_AUTH).
  local prefix = env_prefix or "BENCH"
  run_offset = tonumber(os.getenv(prefix .. "_RUN") or "0")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv(prefix .. "_AUTH")
end
