-- create(a, i): record a batch and push its messages. From a[i]: batch id, batch key,
-- keep seconds, active key, deadline ('' for a batch recorded finished), recent key,
-- created at, recent keep, n, n hash field/value strings, m, then m (list, payload)
-- pairs. Returns the index after its arguments.
local function create(a, i)
  local bid, key = a[i], a[i + 1]
  local nf = tonumber(a[i + 8])
  local f = i + 9
  redis.call('HSET', key, unpack(a, f, f + nf - 1))
  redis.call('EXPIRE', key, a[i + 2])
  if a[i + 4] ~= '' then redis.call('ZADD', a[i + 3], a[i + 4], bid) end
  redis.call('ZADD', a[i + 5], a[i + 6], bid)
  -- Bounded: keep only the newest `recent keep` ids.
  redis.call('ZREMRANGEBYRANK', a[i + 5], 0, -1 - tonumber(a[i + 7]))
  local m = tonumber(a[f + nf])
  local p = f + nf + 1
  for j = 0, m - 1 do redis.call('LPUSH', a[p + 2 * j], a[p + 2 * j + 1]) end
  return p + 2 * m
end
