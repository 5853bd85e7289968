-- accept(ARGV): a[1], a[2] as in record.lua, then claim()'s arguments (a[3] is the batch
-- id), then create()'s. {0, first batch id} for a redelivery; {2, lead, follow} when
-- another batch leads some URL: the caller settles those and records the batch with
-- record.lua (URLs claimed, nothing recorded yet); {1} when the batch is recorded and its
-- purge queued. All or nothing: every argument is checked before the first write (Redis
-- runs a script atomically, but keeps what it wrote before an error).
local ci, why = claim_args(ARGV, 3)
if ci then ci, why = create_args(ARGV, ci) end
if not ci or (ARGV[1] ~= '' and not tonumber(ARGV[2])) then
  return redis.error_reply('ERR warming accept: ' .. (why or 'bad webhook-id TTL'))
end
if ARGV[1] ~= '' then
  local first = redis.call('GET', ARGV[1])
  if first then return {0, first} end
end
local lead, follow, i = claim(ARGV, 3)
if #follow > 0 then return {2, lead, follow} end
if ARGV[1] ~= '' then redis.call('SET', ARGV[1], ARGV[3], 'EX', ARGV[2]) end
create(ARGV, i)
return {1}
