-- KEYS: job, queue, index. ARGV: id, process, request, ttl_ms, max_queued, trace (the
-- submitter's W3C trace context, empty when untraced), index cap.
-- Returns {1, now} when queued, {0, waiting} when the queue is full.
local waiting = redis.call('XLEN', KEYS[2])
if waiting >= tonumber(ARGV[5]) then
  return {0, waiting}
end
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'process', ARGV[2], 'state', 1, 'percent', 0, 'message', 'accepted',
  'created', now, 'expires', now + ttl, 'attempt', 0, 'request', ARGV[3], 'trace', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], now + ttl + 3600000)
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
index(KEYS[3], ARGV[1], ARGV[7])
return {1, now}
