-- Create a session if its key is free; for a logged-in session, add it to its principal's
-- index (pruning dead members), apply the per-user cap, and extend the index's TTL to at least
-- the session's. The index's TTL is only ever extended, here and wherever a member's idle
-- deadline is pushed (load, save.lua, finish.lua), and recomputed when members leave (take,
-- revoke): it follows the latest idle deadline of its members. All keys share one hash tag.
-- KEYS[1] session key; for a logged-in session KEYS[2] the principal's index and
-- KEYS[2 + i] the session key of member i
-- ARGV[1] record, ARGV[2] ttl ms, ARGV[3] now ms, ARGV[4] absolute deadline ms,
-- ARGV[5] session id, ARGV[6] max sessions per user (0: none), ARGV[7] '1' to refuse at the
-- cap instead of evicting the oldest, ARGV[7 + i] the id of member i.
-- Returns 1 created, 0 key taken, -1 refused by the cap, -2 the index changed since the
-- client read it (nothing written in those three cases).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[2] then
  if not same_members(KEYS[2], 8) then return -2 end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
  local live = {}
  for i = 8, #ARGV do
    if redis.call('EXISTS', KEYS[i - 5]) == 1 then
      live[#live + 1] = i
    else
      redis.call('ZREM', KEYS[2], ARGV[i])
    end
  end
  local max = tonumber(ARGV[6])
  if max > 0 and #live >= max then
    if ARGV[7] == '1' then return -1 end
    for j = 1, #live - max + 1 do
      redis.call('DEL', KEYS[live[j] - 5])
      redis.call('ZREM', KEYS[2], ARGV[live[j]])
    end
  end
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
  -- A fresh index has no TTL (PTTL -1): it gets the session's.
  local ttl = tonumber(ARGV[2])
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
