-- claim(a, i): from a[i]: batch id, window ms, coalesce prefix, batch key prefix, n, then n
-- URLs. A URL nobody leads is led by this batch for a window; for the others it returns
-- (url, leader, the leader's state or '', ms left in its window). Also run inside the
-- shim's accept script, so that one round trip claims, records and queues a webhook.
local function claim(a, i)
  local bid, window, prefix, bprefix = a[i], a[i + 1], a[i + 2], a[i + 3]
  local n = tonumber(a[i + 4])
  local lead, follow = {}, {}
  for j = i + 5, i + 4 + n do
    local k = prefix .. 'url:' .. a[j]
    local cur = redis.call('GET', k)
    if not cur then
      redis.call('SET', k, bid, 'PX', window)
      lead[#lead + 1] = a[j]
    else
      follow[#follow + 1] = a[j]
      follow[#follow + 1] = cur
      follow[#follow + 1] = redis.call('HGET', bprefix .. cur, 'state') or ''
      follow[#follow + 1] = redis.call('PTTL', k)
    end
  end
  return lead, follow, i + 5 + n
end
-- claim_args(a, i): the index after claim()'s arguments, or nil and why. Checked before
-- any write: Redis keeps what a script wrote before it failed.
local function claim_args(a, i)
  local n = tonumber(a[i + 4])
  if not n or n < 0 or n % 1 ~= 0 or not tonumber(a[i + 1]) then
    return nil, 'claim: the URL count or the window is not a number'
  end
  if #a < i + 4 + n then return nil, 'claim: fewer URLs than announced' end
  return i + 5 + n
end
