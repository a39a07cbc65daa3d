-- KEYS: job, leases, index. ARGV: id, process, node, lease_ms, ttl_ms, index cap.
-- Records a job that runs on `node` from its start (a synchronous Execute): running, attempt
-- 1, under a lease, never queued and, having no stored request, never run again.
local ttl = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'process', ARGV[2], 'state', 2, 'percent', 0, 'message', 'running',
  'created', now, 'started', now, 'expires', now + ttl, 'attempt', 1, 'node', ARGV[3],
  'worker', '', 'sync', 1)
redis.call('PEXPIREAT', KEYS[1], now + ttl + 3600000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
index(KEYS[3], ARGV[1], ARGV[6])
return now
