-- KEYS: leases, queue, expiry. ARGV: job key prefix, max_attempts, group, idle_ms, ttl_ms.
-- Jobs whose lease ran out are queued again while attempts are left, else failed saying why.
-- Queue entries a node read but never claimed (it died in between) are put back.
-- Returns {id, node, attempt, requeued (1/0)} for each reaped job.
local out = {}
local max = tonumber(ARGV[2])
local ttl = tonumber(ARGV[5])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[1], id)
  local job = ARGV[1] .. id
  local f = redis.call('HMGET', job, 'state', 'attempt', 'node', 'released', 'sync')
  if f[1] == '2' then
    local attempt = tonumber(f[2])
    local node = f[3] or ''
    if f[5] == '1' then
      -- A synchronous job: its caller is gone with the node, nothing can run it again.
      redis.call('HSET', job, 'state', 4, 'finished', now, 'expires', now + ttl, 'message',
        'node ' .. node .. ' stopped renewing its lease (node lost or stalled); a synchronous job is not run again')
      keep(job, KEYS[3], id, ttl)
      table.insert(out, {id, node, attempt, 0})
    -- Attempts handed back by their node (release) do not count.
    elseif attempt - (tonumber(f[4]) or 0) < max then
      redis.call('HSET', job, 'state', 1, 'worker', '', 'message',
        'queued again: node ' .. node .. ' stopped renewing its lease on attempt ' .. attempt)
      redis.call('XADD', KEYS[2], '*', 'id', id)
      table.insert(out, {id, node, attempt, 1})
    else
      redis.call('HSET', job, 'state', 4, 'finished', now, 'expires', now + ttl, 'message',
        'node ' .. node .. ' stopped renewing its lease on attempt ' .. attempt .. ' of ' .. max ..
        ' (node lost or stalled); no attempts left')
      keep(job, KEYS[3], id, ttl)
      table.insert(out, {id, node, attempt, 0})
    end
  end
end
local claimed = redis.pcall('XAUTOCLAIM', KEYS[2], ARGV[3], 'reaper', ARGV[4], '0-0', 'COUNT', 100)
if type(claimed) == 'table' and claimed.err == nil then
  for _, entry in ipairs(claimed[2]) do
    redis.call('XACK', KEYS[2], ARGV[3], entry[1])
    redis.call('XDEL', KEYS[2], entry[1])
    local fields = entry[2]
    if type(fields) == 'table' and fields[2] and
        redis.call('HGET', ARGV[1] .. fields[2], 'state') == '1' then
      redis.call('XADD', KEYS[2], '*', 'id', fields[2])
    end
  end
end
return out
