-- Records one task's results, once (job slot, and the counters).
-- KEYS: job, results, done, events, then the counter keys (counts.lua)
-- ARGV: task entry id, result count, failed count, chunk (ResultChunk with
--       cursors 0), retention ms, now ms, completion token (one per call),
--       job id, then pairs of verdict, scored items with that verdict
-- Returns {'gone'} | {'dup'} | {'rec', finished now (0/1), idempotency key}
--
-- The chunk's entry id is `0-<cursor of its last result>`: readers derive
-- each result's cursor from it, so the cursors are assigned here, under
-- the same atomicity as the done guard, and never rewritten.
local job, results, done, id = KEYS[1], KEYS[2], KEYS[3], ARGV[8]
local before = snapshot(job)
if not before then
  return {'gone'}
end
local prior = redis.call('HGET', done, ARGV[1])
if prior == ARGV[7] then
  -- This very call, retried after its reply was lost: answer it again.
  local finished = redis.call('HEXISTS', job, 'finished_ms')
  return {'rec', finished, redis.call('HGET', job, 'idem') or ''}
end
if prior then
  return {'dup'}
end
local n, failed = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', done, ARGV[1], ARGV[7])
if n > 0 then
  local last = redis.call('HINCRBY', job, 'cursor', n)
  redis.call('XADD', results, '0-' .. last, 'p', ARGV[4])
end
redis.call('HINCRBY', job, 'completed', n - failed)
redis.call('HINCRBY', job, 'failed', failed)
for i = 9, #ARGV, 2 do
  redis.call('HINCRBY', job, 'verdict:' .. ARGV[i], ARGV[i + 1])
end
if before.finished then
  -- Results beyond the total of a finished job (a worker sent more than
  -- one per item): keep them, but let them expire with the job.
  local ttl = redis.call('PTTL', job)
  if ttl > 0 then
    for i = 2, 4 do
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  end
  return {'rec', 0, ''}
end
local finished = finish_if_done(job, ARGV[6])
account(id, before, snapshot(job))
local idem = redis.call('HGET', job, 'idem') or ''
if finished == 1 then
  expire_job(id, ARGV[5], ARGV[6])
end
return {'rec', finished, idem}
