-- KEYS: state (TAT in µs, a float as a string), factor.
-- ARGV: interval µs at factor 1, burst, max wait µs, cost, factor idle TTL ms.
-- Returns {ok, wait µs until the last of the `cost` slots, interval µs, Redis's now µs}:
-- integers, since Redis truncates Lua numbers. Slot j of a block starts (cost - 1 - j)
-- intervals earlier; the caller places the slots on its own clock with `now`.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local factor = tonumber(redis.call('GET', KEYS[2]))
local has_factor = factor ~= nil
if not factor or factor <= 0 or factor > 1 then factor = 1 end
local interval = tonumber(ARGV[1]) / factor
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[4]) * interval
local wait = new_tat - burst * interval - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then
  return {0, math.ceil(wait), math.ceil(interval), now}
end
-- Once now passes the TAT the state equals "no state", so the key can go.
redis.call('SET', KEYS[1], string.format('%.17g', new_tat),
           'PX', math.ceil((new_tat - now) / 1000) + 1)
if has_factor then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
return {1, math.ceil(wait), math.ceil(interval), now}
