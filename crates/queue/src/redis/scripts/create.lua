-- Creates a job, uploading (job slot, the job index, the callbacks set and
-- the counters).
-- KEYS: job, job index, callbacks set, then the counter keys (counts.lua)
-- ARGV: job id, created ms, '1' when the job has a callback, then field,
--       value pairs of the job hash
-- Returns 1, or 0 when the job exists already (this call, retried after
-- its reply was lost).
local job, id = KEYS[1], ARGV[1]
if redis.call('EXISTS', job) == 1 then
  return 0
end
redis.call('HSET', job, 'counted', 1, unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], id)
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[2], id)
end
account(id, nil, snapshot(job))
return 1
