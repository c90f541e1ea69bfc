-- Load a session and, when enough of the idle window has passed, push its idle deadline.
-- KEYS[1] session key
-- ARGV[1] idle timeout ms, ARGV[2] touch-after ms, ARGV[3] now ms
-- Returns false when absent, else { record, remaining ttl ms }.
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local pttl = redis.call('PTTL', KEYS[1])
local idle = tonumber(ARGV[1])
if pttl < 0 or idle - pttl >= tonumber(ARGV[2]) then
  local ok, r = pcall(cmsgpack.unpack, raw)
  if ok and type(r) == 'table' and type(r[3]) == 'number' then
    local ttl = math.min(idle, r[3] - tonumber(ARGV[3]))
    if ttl <= 0 then
      redis.call('DEL', KEYS[1])
      return false
    end
    redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
    pttl = ttl
  end
end
return { raw, pttl }
