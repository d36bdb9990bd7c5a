-- wrk (scenario 4): one new customer per POST /v1.1/customer/add. With STRESS_DELAY_MS set, each
-- connection waits that long between an answer and its next request, to pace the load.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "../../bench/lua/?.lua"
require "common"

local counter = 0

function init(args)
  init_writer("STRESS")
end

local delay_ms = tonumber(os.getenv("STRESS_DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end

local function soak_mobile()
  -- 91 9 <run and thread, 2 digits> <counter, 7 digits>: no two requests of the soak share one
  -- (a soak makes more runs than bench's ten blocks of 919R, so its own numbering).
  counter = counter + 1
  return string.format("919%02d%07d", (run_offset * 2 + thread_index) % 100, counter)
end

function request()
  local mobile = soak_mobile()
  local body = string.format(
    '{"root":{"customer":[{"mobile":"%s","email":"c%s@soak.example","firstname":"Soak","lastname":"Customer",' ..
    '"custom_fields":{"field":[{"name":"city","value":"Pune"}]}}]}}', mobile, mobile)
  return wrk.format(nil, "/v1.1/customer/add", nil, body)
end

function response(status, headers, body)
  count_unexpected(status, body, '"code":"1000"')
end
