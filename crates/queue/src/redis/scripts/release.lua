-- Removes a task from its model's queue and gives back its usage, exactly
-- once however often it is called (model slot).
-- KEYS: tasks stream, usage hash, dead-letter stream
-- ARGV: entry id, deliveries ('' unless dead-lettered), dead-letter cap,
--       the task's priority (kept with a dead letter)
-- Returns 1 when the task was still queued, else 0.
local tasks, usage, dead = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
-- NOGROUP (the stream was removed by hand) leaves nothing to acknowledge.
pcall(redis.call, 'XACK', tasks, 'workers', id)
local entry = redis.call('XRANGE', tasks, id, id)
if #entry == 0 then
  return 0
end
redis.call('XDEL', tasks, id)
local f, kv = {}, entry[1][2]
for i = 1, #kv, 2 do
  f[kv[i]] = kv[i + 1]
end
redis.call('HINCRBY', usage, 'items', -tonumber(f.n or 0))
redis.call('HINCRBY', usage, 'bytes', -tonumber(f.b or 0))
if ARGV[2] ~= '' then
  redis.call('XADD', dead, 'MAXLEN', '~', ARGV[3], '*', 'entry', id, 'job', f.job or '',
    'first', f.first or '0', 'n', f.n or '0', 'deliveries', ARGV[2], 'payload', f.p or '',
    'priority', ARGV[4])
end
return 1
