-- Create a session if its key is free. For a logged-in session: check the login's epoch,
-- prune the index by score, apply the cap, join the index.
-- KEYS[1] the new session key; logged in: KEYS[2] index, KEYS[3] epoch, KEYS[4] (optional)
-- the session key of the member to evict.
-- ARGV[1] record, ARGV[2] ttl ms, ARGV[3] now ms, ARGV[4] index member, ARGV[5] its score (the
-- idle deadline), ARGV[6] cap, ARGV[7] '1' to refuse at the cap, ARGV[8] the login's epoch
-- ('' none), ARGV[9] the member to evict ('' none), ARGV[10] a deadline (ms since the epoch,
-- by Redis's clock) after which the create is refused ('' none: used by a login into another
-- slot, whose claim on the old session lapses then).
-- Returns {1} created, {0} key taken, {-1} refused at the cap, {-2, member} the cap needs that
-- member evicted (the client sends it again declaring its key), {-3} the epoch moved, {-4} the
-- deadline passed.
local cur = redis.call('GET', KEYS[1])
if cur then
  -- The same write sent again after a broken connection: the key is fresh and random.
  if cur == ARGV[1] then return { 1 } end
  return { 0 }
end
if ARGV[10] ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[10]) then
    return { -4 }
  end
end
if KEYS[2] then
  if not epoch_is(KEYS[3], ARGV[8]) then return { -3 } end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then
    if ARGV[7] == '1' then return { -1 } end
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if oldest ~= ARGV[9] or not KEYS[4] then return { -2, oldest } end
    redis.call('DEL', KEYS[4])
    redis.call('ZREM', KEYS[2], oldest)
  end
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
  fit_index(KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return { 1 }
