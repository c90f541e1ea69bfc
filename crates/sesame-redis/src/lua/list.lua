-- List a principal's live sessions, oldest first, pruning index members whose session is gone.
-- KEYS[1] the principal's index, KEYS[1 + i] the session key of member i
-- ARGV[1] now ms, ARGV[1 + i] the id of member i (as the client read the index)
-- Returns -2 when the index changed since the client read it, else a flat array:
-- id, record, remaining ttl ms, id, record, ttl, ...
if not same_members(KEYS[1], 2) then return -2 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for i = 2, #ARGV do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = raw
    out[#out + 1] = redis.call('PTTL', KEYS[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return out
