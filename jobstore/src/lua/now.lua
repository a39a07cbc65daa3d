-- Shared prelude: the Redis server's clock in milliseconds, so every node agrees on time.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A job's record is only written by the attempt holding it: running, same attempt number.
local function owns(job, attempt)
  local f = redis.call('HMGET', job, 'state', 'attempt')
  return f[1] == '2' and f[2] == attempt
end
-- Keeps a finished job for ttl_ms more (the key itself one hour longer, as a safety net).
local function keep(job, expiry, id, ttl_ms)
  redis.call('ZADD', expiry, now + ttl_ms, id)
  redis.call('PEXPIREAT', job, now + ttl_ms + 3600000)
end
-- Lists a new job in the job index (score: creation time), dropping the oldest entries past
-- `cap` (a safety net for records that vanish without being forgotten).
local function index(key, id, cap)
  redis.call('ZADD', key, now, id)
  local over = redis.call('ZCARD', key) - tonumber(cap)
  if over > 0 then
    redis.call('ZREMRANGEBYRANK', key, 0, over - 1)
  end
end
