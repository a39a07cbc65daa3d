-- KEYS: job, leases. ARGV: id, attempt, lease_ms, percent, message, worker.
-- Renews the lease and records progress; 0 when the attempt is fenced out.
if not owns(KEYS[1], ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[1], 'percent', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'message', ARGV[5])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'worker', ARGV[6])
end
return 1
