-- Seals or cancels a job (job slot).
-- KEYS: job, results, done, events
-- ARGV: 'seal' | 'cancel', retention ms, now ms
-- Returns {'missing'} | {'state', state} | {'ok', finished now (0/1), HGETALL}
local job, events = KEYS[1], KEYS[4]
local state = redis.call('HGET', job, 'state')
if not state then
  return {'missing'}
end
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
local record = redis.call('HGETALL', job)
if finished == 1 then
  expire_job(KEYS, ARGV[2])
end
return {'ok', finished, record}
