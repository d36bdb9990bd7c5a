-- wrk: GET /v1.1/customer/get by the mobile of an existing customer (from BENCH_MOBILES, one a line).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
require "common"

local mobiles = {}

function init(args)
  for line in io.lines(os.getenv("BENCH_MOBILES")) do
    mobiles[#mobiles + 1] = line
  end
  math.randomseed(os.time() + (thread_index or 0))
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end

function request()
  return wrk.format("GET", "/v1.1/customer/get?mobile=" .. mobiles[math.random(#mobiles)])
end

function response(status, headers, body)
  count_unexpected(status, body, '"code":"1000"')
end
