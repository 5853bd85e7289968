-- Reserve one slot for each of a block of requests under the cluster's limit and each
-- request's PoP limit at once, so that no request takes a slot of one limit that the other
-- cannot match (two separate blocks could be misaligned: half the slots unused, then two
-- requests per slot).
-- KEYS: cluster state, cluster factor, then for each PoP limit: state, factor.
-- ARGV: cluster interval µs at factor 1, max wait µs, factor idle TTL ms, n PoP limits,
--   their intervals µs at factor 1 (n), then the block: for each request, its PoP limit's
--   number (1..n) or 0 for none.
-- Returns {ok, wait µs of the last slot, Redis's now µs, then each request's wait µs}.
-- Burst 1: a state is the time of the next free slot (the TAT of ../reserve.lua).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function factor(key)
  local f = tonumber(redis.call('GET', key))
  if not f or f <= 0 or f > 1 then return 1, f ~= nil end
  return f, true
end
local function tat(key)
  local v = tonumber(redis.call('GET', key)) or now
  if v < now then v = now end
  return v
end
local n = tonumber(ARGV[4])
local fc, has_fc = factor(KEYS[2])
local ic = tonumber(ARGV[1]) / fc
local tc = tat(KEYS[1])
local ip, tp, has_fp = {}, {}, {}
for j = 1, n do
  local f, has = factor(KEYS[2 + 2 * j])
  ip[j] = tonumber(ARGV[4 + j]) / f
  tp[j] = tat(KEYS[1 + 2 * j])
  has_fp[j] = has
end
local waits = {}
local last = 0
for r = 5 + n, #ARGV do
  local j = tonumber(ARGV[r])
  local s = tc
  if j > 0 and tp[j] > s then s = tp[j] end
  waits[#waits + 1] = math.ceil(s - now)
  if s - now > last then last = s - now end
  tc = s + ic
  if j > 0 then tp[j] = s + ip[j] end
end
if last > tonumber(ARGV[2]) then
  return {0, math.ceil(last), now}
end
-- Once now passes a state it equals "no state", so the keys can go.
redis.call('SET', KEYS[1], string.format('%.17g', tc), 'PX', math.ceil((tc - now) / 1000) + 1)
if has_fc then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
for j = 1, n do
  redis.call('SET', KEYS[1 + 2 * j], string.format('%.17g', tp[j]),
             'PX', math.ceil((tp[j] - now) / 1000) + 1)
  if has_fp[j] then redis.call('PEXPIRE', KEYS[2 + 2 * j], ARGV[3]) end
end
local out = {1, math.ceil(last), now}
for i = 1, #waits do out[#out + 1] = waits[i] end
return out
