-- KEYS: index. ARGV: job key prefix, created_ms and id of the position to start after (both
-- '' for the newest), count, then the record fields to read.
-- The next `count` index entries strictly after the position, newest first (creation time,
-- then id, descending), each as {id, created_ms, field values...}. An entry whose record is
-- gone is dropped from the index and answered as {id, created_ms}.
local count = tonumber(ARGV[4])
local entries
if ARGV[2] == '' then
  entries = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, count)
else
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[3])
  local score = rank and redis.call('ZSCORE', KEYS[1], ARGV[3])
  if rank and tonumber(score) == tonumber(ARGV[2]) then
    entries = redis.call('ZREVRANGE', KEYS[1], rank + 1, rank + count, 'WITHSCORES')
  else
    -- The position's own entry is gone: the rest of its millisecond, then older entries.
    entries = {}
    local same = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2], 'WITHSCORES')
    for i = 1, #same, 2 do
      if same[i] < ARGV[3] and #entries < 2 * count then
        table.insert(entries, same[i])
        table.insert(entries, same[i + 1])
      end
    end
    local left = count - #entries / 2
    if left > 0 then
      local older = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '-inf', 'WITHSCORES',
        'LIMIT', 0, left)
      for _, v in ipairs(older) do
        table.insert(entries, v)
      end
    end
  end
end
local out = {}
for i = 1, #entries, 2 do
  local id = entries[i]
  local fields = redis.call('HMGET', ARGV[1] .. id, unpack(ARGV, 5))
  if fields[1] then
    table.insert(out, {id, entries[i + 1], unpack(fields)})
  else
    redis.call('ZREM', KEYS[1], id)
    table.insert(out, {id, entries[i + 1]})
  end
end
return out
