-- Compare-and-set of a session record: write the new record only if the stored one is still
-- byte for byte the one the caller merged its changes into. The write resets the session's
-- TTL, so the principal's index (when given) gets its TTL extended to at least as much (never
-- shortened), as create.lua does.
-- KEYS[1] session key, KEYS[2] (optional) the principal's index (same hash tag)
-- ARGV[1] the record the caller expects, ARGV[2] the new record, ARGV[3] ttl ms.
-- Returns {0} missing, {1} saved, {2, current record} when another save came first (the
-- caller merges again into the current record and retries).
local raw = redis.call('GET', KEYS[1])
if not raw then return { 0 } end
if raw ~= ARGV[1] then return { 2, raw } end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if KEYS[2] then
  -- A missing index (PTTL -2) stays missing: PEXPIRE of a missing key does nothing.
  local ttl = tonumber(ARGV[3])
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return { 1 }
