-- End a rotation begun by take.lua: drop the sealed record, or put it back under its session
-- key (TTL unchanged) and into its principal's index, whose TTL is extended to at least the
-- session's remaining TTL (never shortened, as in create.lua).
-- KEYS[1] sealed key, KEYS[2] session key; for a logged-in session KEYS[3] the principal's
-- index (all one hash tag)
-- ARGV[1] '1' to restore, '0' to drop; ARGV[2] session id; ARGV[3] the sealed record as the
-- client read it; ARGV[4] its absolute deadline (ms).
-- Returns 1 when a sealed record was found, 0 otherwise, -2 when it changed since the client
-- read it (nothing written).
local sealed = redis.call('GET', KEYS[1])
if not sealed then return 0 end
if ARGV[1] ~= '1' or redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
if sealed ~= ARGV[3] then return -2 end
redis.call('RENAME', KEYS[1], KEYS[2])
if KEYS[3] then
  local absolute = tonumber(ARGV[4])
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl < 0 then
    -- No TTL: not a key sesame wrote (every session key gets one). The session is dead at
    -- its absolute deadline anyway, so that bounds the index instead.
    local t = redis.call('TIME')
    ttl = math.floor(absolute - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
  end
  if ttl > 0 then
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
    if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
  end
end
return 1
