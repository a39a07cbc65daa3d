-- KEYS: index. ARGV: job key prefix, age_ms, count.
-- Drops index entries older than age_ms whose record is gone (a record that outlived its key's
-- expiry without being forgotten: a job never finished), reading at most `count` of the oldest.
-- Returns how many were dropped.
local dropped = 0
local before = now - tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. before, 'LIMIT', 0, ARGV[3])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('ZREM', KEYS[1], id)
    dropped = dropped + 1
  end
end
return dropped
