-- End a rotation begun by take.lua: drop the sealed record, or put it back under its session
-- key (TTL unchanged) and into its principal's index.
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
  redis.call('ZADD', index, r[3], ARGV[3])
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', index, last[2])
end
return 1
