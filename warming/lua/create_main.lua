local ok, why = create_args(ARGV, 1)
if not ok then return redis.error_reply('ERR warming create: ' .. why) end
create(ARGV, 1)
