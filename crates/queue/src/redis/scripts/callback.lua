-- A job's callback bookkeeping (job slot).
-- KEYS: job, lease
-- ARGV: 'lease', holder, ttl ms  -> 1 when the holder has the lease, else 0
--       'progress', cursor, done (0/1) -> 1, or 0 when the job is gone
local job, lease = KEYS[1], KEYS[2]
if ARGV[1] == 'lease' then
  local holder = redis.call('GET', lease)
  if holder and holder ~= ARGV[2] then
    return 0
  end
  redis.call('SET', lease, ARGV[2], 'PX', ARGV[3])
  return 1
end
if redis.call('EXISTS', job) == 0 then
  return 0
end
redis.call('HSET', job, 'callback_cursor', ARGV[2])
if ARGV[3] == '1' then
  redis.call('HSET', job, 'callback_done', 1)
  redis.call('DEL', lease)
end
return 1
