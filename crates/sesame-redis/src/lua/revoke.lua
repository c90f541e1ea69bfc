-- Revoke sessions of a principal.
-- KEYS[1] the principal's index
-- ARGV[1] session key prefix of this tag, ARGV[2] mode: 'one' or 'all',
-- ARGV[3] the id to revoke (mode 'one') or to keep (mode 'all', '' for none).
-- Returns how many live sessions were deleted.
local base, n = ARGV[1], 0
if ARGV[2] == 'one' then
  if redis.call('ZREM', KEYS[1], ARGV[3]) == 1 then
    n = redis.call('DEL', base .. ARGV[3])
  end
else
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if id ~= ARGV[3] then
      n = n + redis.call('DEL', base .. id)
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
-- The index lives exactly as long as its longest-lived remaining session.
local longest = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local t = redis.call('PTTL', base .. id)
  if t > longest then longest = t end
end
if longest > 0 then redis.call('PEXPIRE', KEYS[1], longest) else redis.call('DEL', KEYS[1]) end
return n
