-- Adds an enqueue call's items to the job's total, or takes them back when
-- the model's queue refused them (job slot).
-- KEYS: job, token (one per enqueue call)
-- ARGV: items, 'add' | 'undo', token lifetime ms, now ms (the upload's
--       last activity)
-- Returns {'ok'} | {'missing'} | {'state', state}
--
-- The token makes both directions safe to retry after a lost reply.
local job, token = KEYS[1], KEYS[2]
if ARGV[2] == 'undo' then
  if redis.call('DEL', token) == 1 and redis.call('EXISTS', job) == 1 then
    redis.call('HINCRBY', job, 'total', -tonumber(ARGV[1]))
  end
  return {'ok'}
end
local state = redis.call('HGET', job, 'state')
if not state then
  return {'missing'}
end
if redis.call('EXISTS', token) == 1 then
  return {'ok'}
end
if state ~= 'uploading' then
  return {'state', state}
end
redis.call('HINCRBY', job, 'total', ARGV[1])
redis.call('HSET', job, 'updated_ms', ARGV[4])
redis.call('SET', token, '1', 'PX', ARGV[3])
return {'ok'}
