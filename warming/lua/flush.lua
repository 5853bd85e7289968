-- ARGV: trailing id, ttl ms, prefix -> its urls (and marks the batch flushed)
if not tonumber(ARGV[2]) then return redis.error_reply('ERR warming flush: bad TTL') end
redis.call('SET', ARGV[3] .. 'flushed:' .. ARGV[1], '1', 'PX', ARGV[2])
local uk = ARGV[3] .. 'urls:' .. ARGV[1]
local urls = redis.call('SMEMBERS', uk)
redis.call('DEL', uk)
return urls
