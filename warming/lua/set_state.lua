-- KEYS[1] batch hash; ARGV: the new state, then the final states. A finished (or
-- unknown) batch is never moved.
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return 0 end
for i = 2, #ARGV do if cur == ARGV[i] then return 0 end end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
