-- Seals or cancels a job (job slot, and the counters).
-- KEYS: job, results, done, events, then the counter keys (counts.lua)
-- ARGV: 'seal' | 'cancel', retention ms, now ms, job id
-- Returns {'missing'} | {'state', state} | {'ok', finished now (0/1), HGETALL}
local job, events, id = KEYS[1], KEYS[4], ARGV[4]
local before = snapshot(job)
if not before then
  return {'missing'}
end
local state = before.state
if ARGV[1] == 'seal' then
  if state ~= 'uploading' then
    return {'state', state}
  end
  redis.call('HSET', job, 'state', 'running')
else
  if state == 'completed' or state == 'cancelled' then
    return {'state', state}
  end
  redis.call('HSET', job, 'state', 'cancelled')
end
-- Wakes readers waiting for results: the job may now be finished without
-- a new result. Before expire_job, so the stream expires with the job.
redis.call('XADD', events, 'MAXLEN', '~', 16, '*', 'state', ARGV[1])
local finished = finish_if_done(job, ARGV[3])
account(id, before, snapshot(job))
local record = redis.call('HGETALL', job)
if finished == 1 then
  expire_job(id, ARGV[2], ARGV[3])
end
return {'ok', finished, record}
