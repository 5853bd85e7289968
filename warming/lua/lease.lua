-- KEYS: sorted set of lease tokens scored by expiry (ms). ARGV: limit, TTL ms, token.
if not tonumber(ARGV[1]) or not tonumber(ARGV[2]) then
  return redis.error_reply('ERR warming lease: bad limit or TTL')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
-- The key lives as long as its longest lease, so a crashed cluster leaves nothing.
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
