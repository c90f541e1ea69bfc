-- Compare-and-set of a session record: write the new record only if the stored value is
-- still, byte for byte, the one the caller merged its changes into.
-- KEYS[1] session key; logged in: KEYS[2] index.
-- ARGV[1] the value the caller expects, ARGV[2] the new record, ARGV[3] ttl ms, ARGV[4] index
-- member, ARGV[5] its new score (the idle deadline), ARGV[6] the idle timeout ms, ARGV[7]
-- touch_after ms.
-- Like a read, a save pushes the idle deadline (and the index with it) only once touch_after
-- of the idle window has passed since the last push; otherwise the record keeps its TTL.
-- Returns {1, ttl} saved (the key's time to live now, ms), {0} missing, {2, current} when the
-- value changed (another save, a rotation: the caller decides from `current`).
local raw = redis.call('GET', KEYS[1])
if not raw then return { 0 } end
if raw ~= ARGV[1] then return { 2, raw } end
local left = redis.call('PTTL', KEYS[1])
local ttl = tonumber(ARGV[3])
if left >= 0 and tonumber(ARGV[6]) - left < tonumber(ARGV[7]) and left <= ttl then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return { 1, left }
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
if KEYS[2] then
  redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[5], ARGV[4])
  redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[5]) + INDEX_MARGIN_MS, 'GT')
end
return { 1, ttl }
