-- Revoke sessions of a principal.
-- KEYS[1] the principal's index, KEYS[1 + i] the session key of member i
-- ARGV[1] mode: 'one' or 'all'; ARGV[2] the id to revoke (mode 'one') or to keep (mode 'all',
-- '' for none); ARGV[2 + i] the id of member i (as the client read the index).
-- Returns -2 when the index changed since the client read it, else how many live sessions
-- were deleted.
if not same_members(KEYS[1], 3) then return -2 end
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if (ARGV[1] == 'one' and id == ARGV[2]) or (ARGV[1] == 'all' and id ~= ARGV[2]) then
    n = n + redis.call('DEL', KEYS[i - 1])
    redis.call('ZREM', KEYS[1], id)
  end
end
-- The index lives exactly as long as its longest-lived remaining session.
local longest = 0
for i = 3, #ARGV do
  local t = redis.call('PTTL', KEYS[i - 1])
  if t > longest then longest = t end
end
if longest > 0 then redis.call('PEXPIRE', KEYS[1], longest) else redis.call('DEL', KEYS[1]) end
return n
