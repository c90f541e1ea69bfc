-- Move a principal's revocation epoch, so that no login or rotation that read the old one can
-- complete.
-- KEYS[1] epoch. ARGV[1] how long the epoch is kept (ms): longer than any login takes.
-- Returns the new epoch.
local e = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return e
