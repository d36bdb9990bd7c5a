-- wrk: one new customer per POST /v1.1/customer/add.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
require "common"

function init(args)
  init_writer()
end

function request()
  local mobile = fresh_mobile()
  local body = string.format(
    '{"root":{"customer":[{"mobile":"%s","email":"c%s@bench.example","firstname":"Bench","lastname":"Customer",' ..
    '"custom_fields":{"field":[{"name":"city","value":"Bangalore"},{"name":"visits","value":"3"}]}}]}}',
    mobile, mobile)
  return wrk.format(nil, os.getenv("BENCH_PATH") or "/v1.1/customer/add", nil, body)
end

function response(status, headers, body)
  count_unexpected(status, body, '"code":"1000"')
end
