-- Seal a session for a rotation (or delete it, for a logout): move its record to the sealed
-- key (its TTL goes with it), remove it from its principal's index, and return it. From here
-- on the session key is gone, so no request can use the old token; the sealed record waits
-- for finish.lua.
-- KEYS[1] session key, KEYS[2] sealed key; for a logged-in session KEYS[3] the principal's
-- index and KEYS[3 + i] the session key of member i (all one hash tag)
-- ARGV[1] session id, ARGV[2] now ms, ARGV[3] '1' to delete instead of sealing,
-- ARGV[4] the record as the client read it ('' for none), ARGV[4 + i] the id of member i.
-- Returns the record; false when there was no live (or sealed) session; -2 when the record or
-- the index changed since the client read them (nothing written).
local raw = redis.call('GET', KEYS[1])
if (raw or '') ~= ARGV[4] then return -2 end
if not raw then
  -- A rotation of this session that failed half-way left it sealed. Only the old token's
  -- holder can ask for this key (a retried login): hand the record over again (or delete it,
  -- for a logout). It stays sealed until finish.lua.
  local sealed = redis.call('GET', KEYS[2])
  if not sealed then return false end
  if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
  local ok, r = pcall(cmsgpack.unpack, sealed)
  if ok and type(r) == 'table' and type(r[3]) == 'number' and r[3] <= tonumber(ARGV[2]) then
    return false
  end
  return sealed
end
if KEYS[3] and not same_members(KEYS[3], 5) then return -2 end
local ok, r = pcall(cmsgpack.unpack, raw)
local expired = ok and type(r) == 'table' and type(r[3]) == 'number' and r[3] <= tonumber(ARGV[2])
if expired or ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('RENAME', KEYS[1], KEYS[2])
end
if KEYS[3] then
  redis.call('ZREM', KEYS[3], ARGV[1])
  -- The index lives exactly as long as its longest-lived remaining session.
  local longest = 0
  for i = 5, #ARGV do
    local t = redis.call('PTTL', KEYS[i - 1])
    if t > longest then longest = t end
  end
  if longest > 0 then redis.call('PEXPIRE', KEYS[3], longest) else redis.call('DEL', KEYS[3]) end
end
if expired then return false end
return raw
