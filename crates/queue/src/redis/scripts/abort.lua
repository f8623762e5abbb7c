-- Deletes a job whose upload failed (job slot, and the counters).
-- KEYS: job, results, done, events, then the counter keys (counts.lua)
-- ARGV: how long the events stream outlives the job (ms), job id
--
-- The events stream is not deleted at once: readers blocked on it must
-- wake (an XADD) and find the job gone, and a deleted stream wakes nobody.
account(ARGV[2], snapshot(KEYS[1]), nil)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 16, '*', 'state', 'aborted')
redis.call('PEXPIRE', KEYS[4], ARGV[1])
return 1
