-- Compare-and-set of a session record: write the new record only if the stored value is
-- still, byte for byte, the one the caller merged its changes into.
-- KEYS[1] session key; when a touch is due and the session is logged in: KEYS[2] index.
-- ARGV[1] the value the caller expects, ARGV[2] the new record; only when a touch is due:
-- ARGV[3] ttl ms, ARGV[4] index member, ARGV[5] its new score (the idle deadline).
-- Whether a touch is due is the caller's decision, from the idle deadline it loaded: without
-- ARGV[3] the record keeps its TTL (no PTTL here; this script runs on every save).
-- Returns {1} saved with the TTL kept, {1, ttl} saved with a new TTL, {0} missing,
-- {2, current, pttl} when the value changed (another save, a rotation: the caller decides
-- from `current`, and from `pttl` whether its next attempt is due a touch).
local raw = redis.call('GET', KEYS[1])
if not raw then return { 0 } end
if raw ~= ARGV[1] then return { 2, raw, redis.call('PTTL', KEYS[1]) } end
if not ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return { 1 }
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
if KEYS[2] then
  redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[5], ARGV[4])
  redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[5]) + INDEX_MARGIN_MS, 'GT')
end
return { 1, ttl }
