-- wrk: 100 new customers per POST /v1.1/customer/add.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
require "common"

local batch_size = tonumber(os.getenv("BENCH_BATCH") or "100")

function init(args)
  init_writer()
end

function request()
  local items = {}
  for i = 1, batch_size do
    local mobile = fresh_mobile()
    items[i] = string.format(
      '{"mobile":"%s","email":"c%s@bench.example","firstname":"Bench","lastname":"Customer",' ..
      '"custom_fields":{"field":[{"name":"city","value":"Bangalore"},{"name":"visits","value":"3"}]}}',
      mobile, mobile)
  end
  local body = '{"root":{"customer":[' .. table.concat(items, ",") .. ']}}'
  return wrk.format(nil, os.getenv("BENCH_PATH") or "/v1.1/customer/add", nil, body)
end

function response(status, headers, body)
  count_unexpected(status, body, '"success_count":"' .. batch_size .. '"')
end
