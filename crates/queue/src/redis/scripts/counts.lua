-- Prepended to every script that creates, changes or deletes a job hash:
-- they keep the queue-wide counters in the same atomic step, so a crash
-- can never leave a job counted twice or not at all.
--
-- The counter keys are the last five of KEYS (Keys::counters):
--   states     hash: job state -> job hashes in that state
--   queued     hash: tenant -> items of its jobs not yet given a result
--   uploads    sorted set: uploading job ids by last activity (updated_ms)
--   completed, cancelled
--              sorted sets: finished job ids of that state by the end of
--              their retention
-- A finished job's hash expires by TTL, which runs no script: it leaves
-- `states` when `settle_retained` takes it off its retained set, at the
-- same deadline (within clock skew between coordinators and Redis).
-- Jobs are counted from their creation (create.lua marks the hash
-- `counted`); a job created before the counters existed is left out of
-- them, rather than taking from counts it never added to.
local function counter_keys()
  local n = #KEYS
  return {
    states = KEYS[n - 4],
    queued = KEYS[n - 3],
    uploads = KEYS[n - 2],
    retained = {completed = KEYS[n - 1], cancelled = KEYS[n]},
  }
end

-- Adds n to a counter; one that reaches zero (or below, which only a store
-- edited by hand can do) is deleted, so dead tenants do not pile up.
local function bump(hash, field, n)
  if n ~= 0 and redis.call('HINCRBY', hash, field, n) <= 0 then
    redis.call('HDEL', hash, field)
  end
end

-- What of a job the counters depend on; nil when there is no such job.
local function snapshot(job)
  local h = redis.call('HMGET', job, 'state', 'tenant', 'total', 'completed', 'failed',
    'finished_ms', 'updated_ms', 'created_ms', 'counted')
  if not h[1] then
    return nil
  end
  local left = (tonumber(h[3]) or 0) - (tonumber(h[4]) or 0) - (tonumber(h[5]) or 0)
  return {
    state = h[1],
    tenant = h[2] or '',
    queued = math.max(left, 0),
    finished = h[6] ~= false,
    activity = h[7] or h[8] or '0',
    counted = h[9] ~= false,
  }
end

-- Moves the counters from what `before` counted to what `after` counts
-- (snapshots of job `id` around a change; nil for no job).
local function account(id, before, after)
  if (before and not before.counted) or (after and not after.counted) then
    return
  end
  local c = counter_keys()
  if before and after then
    if before.state ~= after.state then
      bump(c.states, before.state, -1)
      bump(c.states, after.state, 1)
    end
  elseif after then
    bump(c.states, after.state, 1)
  elseif before then
    -- A finished job is counted while it is on its retained set.
    local retained = before.finished and c.retained[before.state]
    if not retained or redis.call('ZREM', retained, id) == 1 then
      bump(c.states, before.state, -1)
    end
  end
  local tenant = (after or before or {}).tenant
  if tenant then
    bump(c.queued, tenant, (after and after.queued or 0) - (before and before.queued or 0))
  end
  if after and after.state == 'uploading' then
    redis.call('ZADD', c.uploads, after.activity, id)
  elseif before and before.state == 'uploading' then
    redis.call('ZREM', c.uploads, id)
  end
end

-- Takes the finished jobs whose retention ended by now_ms out of `states`.
local function settle_retained(now_ms)
  local c = counter_keys()
  for state, retained in pairs(c.retained) do
    bump(c.states, state, -redis.call('ZREMRANGEBYSCORE', retained, '-inf', now_ms))
  end
end
