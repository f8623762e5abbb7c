-- Prepended to the job scripts that can finish a job (complete, seal,
-- cancel): one definition of "finished" for all of them.

-- Marks the job finished once the upload is over and every item has its
-- result. Returns 1 when it did just now (the caller then reads what it
-- needs and calls expire_job).
local function finish_if_done(job, now_ms)
  local h = redis.call('HMGET', job, 'state', 'total', 'completed', 'failed', 'finished_ms')
  if h[1] == 'uploading' or h[5] then
    return 0
  end
  if tonumber(h[3] or 0) + tonumber(h[4] or 0) < tonumber(h[2] or 0) then
    return 0
  end
  if h[1] == 'running' then
    redis.call('HSET', job, 'state', 'completed')
  end
  redis.call('HSET', job, 'finished_ms', now_ms)
  return 1
end

-- A finished job's keys all go `retention_ms` later (at once for 0), or
-- after the job's own `retention_ms` (online jobs). keys[1] is the job.
local function expire_job(keys, retention_ms)
  retention_ms = redis.call('HGET', keys[1], 'retention_ms') or retention_ms
  for _, key in ipairs(keys) do
    redis.call('PEXPIRE', key, retention_ms)
  end
end
