-- End a rotation begun by take.lua: drop the sealed record, or put it back under its session
-- key (TTL unchanged) and into its principal's index, whose TTL is extended to at least the
-- session's remaining TTL (never shortened, as in create.lua).
-- KEYS[1] sealed key, KEYS[2] session key (same hash tag)
-- ARGV[1] '1' to restore, '0' to drop; ARGV[2] index key prefix of this tag; ARGV[3] session id.
-- Returns 1 when a sealed record was found, 0 otherwise.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '1' or redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('RENAME', KEYS[1], KEYS[2])
local ok, r = pcall(cmsgpack.unpack, redis.call('GET', KEYS[2]))
if ok and type(r) == 'table' and type(r[4]) == 'string' and type(r[3]) == 'number' then
  local index = ARGV[2] .. r[4]
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl < 0 then
    -- No TTL: not a key sesame wrote (every session key gets one). The session is dead at
    -- its absolute deadline anyway, so that bounds the index instead.
    local t = redis.call('TIME')
    ttl = math.floor(r[3] - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
  end
  if ttl > 0 then
    redis.call('ZADD', index, r[3], ARGV[3])
    if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
  end
end
return 1
