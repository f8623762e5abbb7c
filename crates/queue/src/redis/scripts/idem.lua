-- An idempotency key (its own slot: it is looked up by name).
-- KEYS: idempotency key
-- ARGV: mode, job id, then per mode:
--   'claim', id, stale id ('' if none): take the key unless another live
--     job holds it; returns the id that holds it afterwards
--   'expire', id, ms: expire with the job, if it still names it
--   'release', id: delete, if it still names it
local key, id = KEYS[1], ARGV[2]
local current = redis.call('GET', key)
if ARGV[1] == 'claim' then
  if not current or current == id or current == ARGV[3] then
    redis.call('SET', key, id)
    return id
  end
  return current
end
if current ~= id then
  return 0
end
if ARGV[1] == 'expire' then
  redis.call('PEXPIRE', key, ARGV[3])
else
  redis.call('DEL', key)
end
return 1
