-- Deletes a job whose upload failed (job slot).
-- KEYS: job, results, done, events
-- ARGV: how long the events stream outlives the job (ms)
--
-- The events stream is not deleted at once: readers blocked on it must
-- wake (an XADD) and find the job gone, and a deleted stream wakes nobody.
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 16, '*', 'state', 'aborted')
redis.call('PEXPIRE', KEYS[4], ARGV[1])
return 1
