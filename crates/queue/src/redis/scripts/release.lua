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
-- What an entry gives back is what it declares, but no more than is
-- counted: an entry XADDed by someone else, with any counts or none,
-- must neither fail this script (the task would then never be released)
-- nor drive the usage negative.
local function held(field, declared)
  local n = tonumber(declared)
  local counted = tonumber(redis.call('HGET', usage, field)) or 0
  if not n or n <= 0 or n > 2^53 or n ~= math.floor(n) or counted <= 0 then
    return 0
  end
  return math.min(math.floor(n), counted)
end
-- Only a count above zero is given back: Lua's -0 reaches Redis as "-0",
-- which HINCRBY refuses.
for field, declared in pairs({items = f.n, bytes = f.b}) do
  local give = held(field, declared)
  if give > 0 then
    redis.call('HINCRBY', usage, field, -give)
  end
end
if ARGV[2] ~= '' then
  redis.call('XADD', dead, 'MAXLEN', '~', ARGV[3], '*', 'entry', id, 'job', f.job or '',
    'first', f.first or '0', 'n', f.n or '0', 'deliveries', ARGV[2], 'payload', f.p or '',
    'priority', ARGV[4])
end
return 1
