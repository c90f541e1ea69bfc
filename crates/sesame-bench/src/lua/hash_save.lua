-- Apply a delta to a session stored as a hash: write the changed fields, delete the removed
-- ones, bump the version and push the idle deadline (never past the absolute one, `_a`).
-- KEYS[1] session key
-- ARGV[1] now ms, ARGV[2] idle timeout ms, ARGV[3] number of set pairs n,
-- ARGV[4 .. 3+2n] name, value pairs to set, then names to remove.
-- Returns the new version, or 0 when the session is missing (nothing written).
local absolute = redis.call('HGET', KEYS[1], '_a')
if not absolute then return 0 end
absolute = tonumber(absolute)
local now = tonumber(ARGV[1])
if absolute <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
local last = 3 + 2 * tonumber(ARGV[3])
if last > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, last)) end
if #ARGV > last then redis.call('HDEL', KEYS[1], unpack(ARGV, last + 1, #ARGV)) end
local version = redis.call('HINCRBY', KEYS[1], '_v', 1)
local ttl = math.min(tonumber(ARGV[2]), absolute - now)
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
return version
