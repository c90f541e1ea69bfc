-- Load a session stored as a hash and, when enough of the idle window has passed, push its
-- idle deadline (never past the absolute deadline in field `_a`).
-- KEYS[1] session key
-- ARGV[1] idle timeout ms, ARGV[2] touch-after ms, ARGV[3] now ms
-- Returns false when absent, else { { field, value, ... }, remaining ttl ms }.
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
local pttl = redis.call('PTTL', KEYS[1])
local idle = tonumber(ARGV[1])
if pttl < 0 or idle - pttl >= tonumber(ARGV[2]) then
  local absolute
  for i = 1, #fields, 2 do
    if fields[i] == '_a' then
      absolute = tonumber(fields[i + 1])
      break
    end
  end
  if absolute then
    local ttl = math.min(idle, absolute - tonumber(ARGV[3]))
    if ttl <= 0 then
      redis.call('DEL', KEYS[1])
      return false
    end
    redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
    pttl = ttl
  end
end
return { fields, pttl }
