-- record(ARGV): a[1] the webhook-id key or '', a[2] its TTL (s), then create()'s arguments.
-- -> {0, first batch id} for a redelivery (nothing done), or {1}: recorded and queued.
-- GET then SET, not SET NX GET: that form needs Redis 7, and a script is atomic anyway.
local ok, why = create_args(ARGV, 3)
if not ok or (ARGV[1] ~= '' and not tonumber(ARGV[2])) then
  return redis.error_reply('ERR warming record: ' .. (why or 'bad webhook-id TTL'))
end
if ARGV[1] ~= '' then
  local first = redis.call('GET', ARGV[1])
  if first then return {0, first} end
  redis.call('SET', ARGV[1], ARGV[3], 'EX', ARGV[2])
end
create(ARGV, 3)
return {1}
