-- KEYS: queue, leases, job. ARGV: entry id, group, job id, node, lease_ms.
-- Takes the queue entry out for good and, if the job still waits, starts a new attempt on
-- `node` with a lease. Returns the record's fields, or nil when the job is no longer waiting.
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[3], 'state') ~= '1' then
  return false
end
redis.call('HINCRBY', KEYS[3], 'attempt', 1)
redis.call('HSET', KEYS[3], 'state', 2, 'node', ARGV[4], 'worker', '', 'percent', 0,
  'message', 'running', 'started', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[3])
return redis.call('HGETALL', KEYS[3])
