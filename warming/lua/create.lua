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
-- create_args(a, i): the index after create()'s arguments (they end ARGV), or nil and
-- why. Checked before any write: Redis keeps what a script wrote before it failed.
local function create_args(a, i)
  local nf = tonumber(a[i + 8])
  if not nf or nf < 2 or nf % 2 ~= 0 then return nil, 'create: bad field count' end
  local m = tonumber(a[i + 9 + nf])
  if not m or m < 0 or m % 1 ~= 0 then return nil, 'create: bad message count' end
  local last = i + 9 + nf + 2 * m
  if #a ~= last then return nil, 'create: ' .. #a .. ' arguments, not ' .. last end
  local keep = tonumber(a[i + 2])
  if not keep or keep <= 0 or keep % 1 ~= 0 then return nil, 'create: bad TTL' end
  if a[i + 4] ~= '' and not tonumber(a[i + 4]) then return nil, 'create: bad deadline' end
  if not tonumber(a[i + 6]) or not tonumber(a[i + 7]) then
    return nil, 'create: bad start time or recent count'
  end
  return last + 1
end
