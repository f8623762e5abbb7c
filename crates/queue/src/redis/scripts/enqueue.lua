-- Appends tasks to a model's queue if they fit under its limits, all or
-- nothing (model slot).
-- KEYS: tasks stream, usage hash, token (one per enqueue call), the model's
--       task stream of the other priority
-- ARGV: max items, max bytes, token lifetime ms, then five per task:
--       job id, first index, item count, bytes, payload (TaskPayload)
-- Returns {'ok', entry ids joined by spaces} |
--         {'full', 'items' | 'bytes', queued, new, limit}
local tasks, usage, token = KEYS[1], KEYS[2], KEYS[3]
local applied = redis.call('GET', token)
if applied then
  return {'ok', applied}
end
local items, bytes = 0, 0
for i = 4, #ARGV, 5 do
  items = items + tonumber(ARGV[i + 2])
  bytes = bytes + tonumber(ARGV[i + 3])
end
local queued = redis.call('HMGET', usage, 'items', 'bytes')
local queued_items, queued_bytes = tonumber(queued[1] or 0), tonumber(queued[2] or 0)
if queued_items + items > tonumber(ARGV[1]) then
  return {'full', 'items', queued_items, items, ARGV[1]}
end
if queued_bytes + bytes > tonumber(ARGV[2]) then
  return {'full', 'bytes', queued_bytes, bytes, ARGV[2]}
end
-- BUSYGROUP (the usual case) is the only error this can raise. Both of the
-- model's streams get their group, so that autoscalers watching either
-- find it from the model's first job on.
pcall(redis.call, 'XGROUP', 'CREATE', tasks, 'workers', '0', 'MKSTREAM')
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[4], 'workers', '0', 'MKSTREAM')
local ids = {}
for i = 4, #ARGV, 5 do
  ids[#ids + 1] = redis.call('XADD', tasks, '*', 'job', ARGV[i], 'first', ARGV[i + 1],
    'n', ARGV[i + 2], 'b', ARGV[i + 3], 'p', ARGV[i + 4])
end
redis.call('HINCRBY', usage, 'items', items)
redis.call('HINCRBY', usage, 'bytes', bytes)
local joined = table.concat(ids, ' ')
redis.call('SET', token, joined, 'PX', ARGV[3])
return {'ok', joined}
