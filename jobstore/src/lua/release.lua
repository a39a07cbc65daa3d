-- KEYS: job, leases, queue. ARGV: id, attempt, message.
-- Hands a running attempt back to the queue (its node is stopping, or has no room), without
-- counting it against the job's attempts. 0 when the attempt is fenced out.
if not owns(KEYS[1], ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 1, 'worker', '', 'message', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'released', 1)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
return 1
