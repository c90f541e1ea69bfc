-- Seal a session for a rotation: move its record to the sealed key (its TTL goes with it),
-- remove it from its principal's index, and return it. From here on the session key is gone,
-- so no request can use the old token; the sealed record waits for finish.lua.
-- KEYS[1] session key, KEYS[2] sealed key (same hash tag)
-- ARGV[1] index key prefix of this tag (the principal is appended), ARGV[2] session id,
-- ARGV[3] now ms, ARGV[4] '1' to delete the session outright (logout) instead of sealing it.
-- Returns the record, or false when there was no live (or sealed) session.
local raw = redis.call('GET', KEYS[1])
if not raw then
  -- A rotation of this session that failed half-way left it sealed. Only the old token's
  -- holder can ask for this key (a retried login): hand the record over again (or delete it,
  -- for a logout). It stays sealed until finish.lua.
  local sealed = redis.call('GET', KEYS[2])
  if not sealed then return false end
  if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
  local ok, r = pcall(cmsgpack.unpack, sealed)
  if ok and type(r) == 'table' and type(r[3]) == 'number' and r[3] <= tonumber(ARGV[3]) then
    return false
  end
  return sealed
end
local ok, r = pcall(cmsgpack.unpack, raw)
local expired = ok and type(r) == 'table' and type(r[3]) == 'number' and r[3] <= tonumber(ARGV[3])
if expired or ARGV[4] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('RENAME', KEYS[1], KEYS[2])
end
if ok and type(r) == 'table' and type(r[4]) == 'string' then
  local index = ARGV[1] .. r[4]
  redis.call('ZREM', index, ARGV[2])
  -- The index lives exactly as long as its longest-lived remaining session.
  local base, longest = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[2]), 0
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local t = redis.call('PTTL', base .. id)
    if t > longest then longest = t end
  end
  if longest > 0 then redis.call('PEXPIRE', index, longest) else redis.call('DEL', index) end
end
if expired then return false end
return raw
