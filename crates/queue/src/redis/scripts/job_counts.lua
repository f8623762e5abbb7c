-- Jobs per state, once finished jobs whose retention has ended are taken
-- out (the counters).
-- KEYS: the counter keys (counts.lua)
-- ARGV: now ms
-- Returns HGETALL of the states hash.
settle_retained(ARGV[1])
return redis.call('HGETALL', counter_keys().states)
