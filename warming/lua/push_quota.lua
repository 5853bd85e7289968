-- Take up to ARGV[2] URLs from a daily quota of ARGV[1] (push mode); answers how many were
-- taken (0 when it is used up). KEYS[1]: the account's key without its day, which this
-- script appends from Redis's own clock (UTC days), so no worker's clock matters.
-- ARGV[3] = 1 gives back ARGV[2] URLs instead (a call the vendor refused); answers 0.
local quota, want, give = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not quota or not want or want < 0 or not give then
  return redis.error_reply('ERR warming push_quota: bad quota or count')
end
local day = math.floor(tonumber(redis.call('TIME')[1]) / 86400)
local key = KEYS[1] .. ':' .. day
if give == 1 then
  local left = tonumber(redis.call('GET', key) or '0') - want
  if left > 0 then redis.call('SET', key, left, 'KEEPTTL') else redis.call('DEL', key) end
  return 0
end
local used = tonumber(redis.call('GET', key) or '0')
local take = math.min(want, quota - used)
if take <= 0 then return 0 end
redis.call('INCRBY', key, take)
redis.call('EXPIRE', key, 2 * 86400)
return take
