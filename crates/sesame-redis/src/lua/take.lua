-- Remove a session and its index entry; return its record (for rotation) or false.
-- KEYS[1] session key
-- ARGV[1] index key prefix of this tag (the principal is appended), ARGV[2] session id,
-- ARGV[3] now ms.
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
redis.call('DEL', KEYS[1])
local ok, r = pcall(cmsgpack.unpack, raw)
if ok and type(r) == 'table' and type(r[4]) == 'string' then
  local index = ARGV[1] .. r[4]
  redis.call('ZREM', index, ARGV[2])
  if redis.call('ZCARD', index) == 0 then redis.call('DEL', index) end
end
if ok and type(r) == 'table' and type(r[3]) == 'number' and r[3] <= tonumber(ARGV[3]) then
  return false
end
return raw
