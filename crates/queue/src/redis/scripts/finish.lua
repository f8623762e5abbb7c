-- Prepended (after counts.lua) to the job scripts that can finish a job
-- (complete, seal, cancel): one definition of "finished" for all of them.

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

-- A finished job's keys (the first four of KEYS, the job first) all go
-- `retention_ms` later (at once for 0), or after the job's own
-- `retention_ms` (online jobs); until then it counts in `states`.
local function expire_job(id, retention_ms, now_ms)
  retention_ms = redis.call('HGET', KEYS[1], 'retention_ms') or retention_ms
  local state = redis.call('HGET', KEYS[1], 'state')
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], retention_ms)
  end
  if redis.call('HEXISTS', KEYS[1], 'counted') == 1 then
    local until_ms = tonumber(now_ms) + tonumber(retention_ms)
    redis.call('ZADD', counter_keys().retained[state], until_ms, id)
  end
  settle_retained(now_ms)
end
