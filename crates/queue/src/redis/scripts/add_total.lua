-- Adds an enqueue call's items to the job's total, or takes them back when
-- the model's queue refused them (job slot, and the counters).
-- KEYS: job, token (one per enqueue call), then the counter keys
--       (counts.lua)
-- ARGV: items, 'add' | 'undo', token lifetime ms, now ms (the upload's
--       last activity), job id
-- Returns {'ok'} | {'missing'} | {'state', state}
--
-- The token makes both directions safe to retry after a lost reply.
local job, token = KEYS[1], KEYS[2]
local before = snapshot(job)
if ARGV[2] == 'undo' then
  if redis.call('DEL', token) == 1 and before then
    redis.call('HINCRBY', job, 'total', -tonumber(ARGV[1]))
    account(ARGV[5], before, snapshot(job))
  end
  return {'ok'}
end
if not before then
  return {'missing'}
end
local state = before.state
if redis.call('EXISTS', token) == 1 then
  return {'ok'}
end
if state ~= 'uploading' then
  return {'state', state}
end
redis.call('HINCRBY', job, 'total', ARGV[1])
redis.call('HSET', job, 'updated_ms', ARGV[4])
account(ARGV[5], before, snapshot(job))
redis.call('SET', token, '1', 'PX', ARGV[3])
return {'ok'}
