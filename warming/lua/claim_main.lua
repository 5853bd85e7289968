local ok, why = claim_args(ARGV, 1)
if not ok then return redis.error_reply('ERR warming claim: ' .. why) end
local lead, follow = claim(ARGV, 1)
return {lead, follow}
