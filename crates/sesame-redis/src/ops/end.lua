-- End one session: delete its record and leave its principal's index, only if the key still
-- holds the record the caller read (else the caller reads again and follows the lineage).
-- KEYS[1] session key; logged in: KEYS[2] index.
-- ARGV[1] the record as read, ARGV[2] its index member.
-- Returns {1} ended, {0} already gone, {2, current} changed since read.
local cur = redis.call('GET', KEYS[1])
if not cur then return { 0 } end
if cur ~= ARGV[1] then return { 2, cur } end
redis.call('DEL', KEYS[1])
if KEYS[2] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  fit_index(KEYS[2])
end
return { 1 }
