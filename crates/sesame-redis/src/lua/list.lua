-- List a principal's live sessions, oldest first, pruning index members whose session is gone.
-- KEYS[1] the principal's index
-- ARGV[1] now ms, ARGV[2] session key prefix of this tag.
-- Returns a flat array: id, record, remaining ttl ms, id, record, ttl, ...
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[2] .. id
  local raw = redis.call('GET', key)
  if raw then
    out[#out + 1] = id
    out[#out + 1] = raw
    out[#out + 1] = redis.call('PTTL', key)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
