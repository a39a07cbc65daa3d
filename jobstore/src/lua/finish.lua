-- KEYS: job, leases, expiry. ARGV: id, attempt, state, message, outcome, ttl_ms, worker.
-- Records the attempt's end; 0 when the attempt is fenced out (nothing written).
if not owns(KEYS[1], ARGV[2]) then
  return 0
end
local ttl = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'message', ARGV[4], 'finished', now,
  'expires', now + ttl, 'outcome', ARGV[5])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'worker', ARGV[7])
end
if ARGV[3] == '3' then
  redis.call('HSET', KEYS[1], 'percent', 100)
end
redis.call('ZREM', KEYS[2], ARGV[1])
keep(KEYS[1], KEYS[3], ARGV[1], ttl)
return 1
