-- ARGV: trailing id, ttl ms, prefix -> its urls (and marks the batch flushed)
redis.call('SET', ARGV[3] .. 'flushed:' .. ARGV[1], '1', 'PX', ARGV[2])
local uk = ARGV[3] .. 'urls:' .. ARGV[1]
local urls = redis.call('SMEMBERS', uk)
redis.call('DEL', uk)
return urls
