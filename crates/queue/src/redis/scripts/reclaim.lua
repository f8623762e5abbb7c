-- The non-blocking part of a claim (model slot): tasks idle past the
-- visibility timeout, then new ones.
-- KEYS: tasks stream
-- ARGV: consumer, visibility timeout ms, max tasks, max deliveries
-- Returns {entry id, deliveries, {field, value, ...}} per task, reclaimed
-- first. Tasks over max deliveries are returned too (the caller
-- dead-letters them) but do not count against max tasks.
local tasks, consumer = KEYS[1], ARGV[1]
local max, max_deliveries = tonumber(ARGV[3]), tonumber(ARGV[4])
-- A Redis restarted without persistence has lost the group.
pcall(redis.call, 'XGROUP', 'CREATE', tasks, 'workers', '0', 'MKSTREAM')
local out, live, cursor = {}, 0, '0-0'
-- Bounded: a long run of dead tasks is finished by the next claims.
for _ = 1, 8 do
  if live >= max then
    break
  end
  local r = redis.call('XAUTOCLAIM', tasks, 'workers', consumer, ARGV[2], cursor,
    'COUNT', max - live)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if e and e[1] then
      local p = redis.call('XPENDING', tasks, 'workers', e[1], e[1], 1)
      local deliveries = (p[1] and p[1][4]) or 1
      out[#out + 1] = {e[1], deliveries, e[2]}
      if deliveries <= max_deliveries then
        live = live + 1
      end
    end
  end
  if cursor == '0-0' then
    break
  end
end
if live < max then
  local r = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', max - live,
    'STREAMS', tasks, '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      out[#out + 1] = {e[1], 1, e[2]}
    end
  end
end
return out
