-- KEYS: job, leases, expiry. ARGV: id, ttl_ms, channel.
-- Marks the job dismissed and announces it when it was waiting or running. Returns the record's
-- fields as they were (their outcome names the outputs to delete), or nil for an unknown job.
local before = redis.call('HGETALL', KEYS[1])
if #before == 0 then
  return false
end
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'state', 5, 'message', 'dismissed')
if state == '1' or state == '2' then
  redis.call('HSET', KEYS[1], 'finished', now)
end
redis.call('HDEL', KEYS[1], 'outcome')
redis.call('ZREM', KEYS[2], ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'expires', now + ttl)
keep(KEYS[1], KEYS[3], ARGV[1], ttl)
if state == '1' or state == '2' then
  redis.call('PUBLISH', ARGV[3], ARGV[1])
end
return before
