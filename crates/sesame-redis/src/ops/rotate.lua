-- Rotate a token inside one slot: the successor is written and the old key becomes a pointer
-- to it, in one step, only if the old key still holds the record the caller read. So two
-- concurrent rotations of one token make one successor: the second finds the pointer.
-- KEYS[1] old key, KEYS[2] new key; logged in: KEYS[3] index, KEYS[4] epoch.
-- ARGV[1] the old record as read, ARGV[2] the successor record, ARGV[3] its ttl ms,
-- ARGV[4] the pointer, ARGV[5] its ttl ms, ARGV[6] old index member, ARGV[7] new member,
-- ARGV[8] new score, ARGV[9] the login's epoch ('' none).
-- Returns {1} rotated, {2, current} the old key changed since read, {0} the new key is taken,
-- {-3} the epoch moved.
local cur = redis.call('GET', KEYS[1])
-- This very rotation sent again after a broken connection: the pointer names a fresh key.
if cur == ARGV[4] then return { 1 } end
if cur ~= ARGV[1] then return { 2, cur } end
if KEYS[4] and not epoch_is(KEYS[4], ARGV[9]) then return { -3 } end
if redis.call('EXISTS', KEYS[2]) == 1 then return { 0 } end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
if KEYS[3] then
  redis.call('ZREM', KEYS[3], ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[7])
  fit_index(KEYS[3])
end
return { 1 }
