-- ARGV: leader, candidate trailing id, ttl ms, prefix, ms until due, queue, flush message,
-- urls... -> {trailing id, created (1/0)}, or {false, 0} when that trailing batch already
-- flushed. A trailing batch is created together with its flush message, so none is ever
-- created that nothing will publish; the task waits out the `due:` key, then publishes.
if not tonumber(ARGV[3]) or not tonumber(ARGV[5]) then
  return redis.error_reply('ERR warming trail: bad TTL or due time')
end
local p = ARGV[4]
local tk = p .. 'trail:' .. ARGV[1]
local t = redis.call('GET', tk)
local created = 0
if not t then
  t = ARGV[2]
  redis.call('SET', tk, t, 'PX', ARGV[3])
  local due = tonumber(ARGV[5])
  -- One webhook whose URLs follow several leaders opens one trailing batch for all.
  if redis.call('SET', p .. 'leader:' .. t, ARGV[1], 'NX', 'PX', ARGV[3]) then
    if due > 0 then redis.call('SET', p .. 'due:' .. t, '1', 'PX', due) end
    redis.call('LPUSH', ARGV[6], ARGV[7])
    created = 1
  elseif due > redis.call('PTTL', p .. 'due:' .. t) then
    redis.call('SET', p .. 'due:' .. t, '1', 'PX', due)
  end
end
if redis.call('EXISTS', p .. 'flushed:' .. t) == 1 then return {false, 0} end
local uk = p .. 'urls:' .. t
for i = 8, #ARGV do redis.call('SADD', uk, ARGV[i]) end
redis.call('PEXPIRE', uk, ARGV[3])
return {t, created}
