-- End a batch of a principal's sessions (revoke all): delete each key and leave the index.
-- KEYS[1] index, KEYS[1 + i] the session key of member i.
-- ARGV[i] member i.
-- Returns how many of the keys held a live session's record.
local n = 0
for i = 1, #ARGV do
  if is_record(redis.call('GET', KEYS[i + 1])) then n = n + 1 end
  redis.call('DEL', KEYS[i + 1])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
fit_index(KEYS[1])
return n
