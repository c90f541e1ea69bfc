-- Compare-and-swap of one key: replace its value only if it is still the expected one. Used
-- by the three steps of a login into another slot (claim, then settle or restore) and by a
-- logout that cancels such a claim or closes the key it was to create.
-- KEYS[1] the key.
-- ARGV[1] the expected value ('' : absent), ARGV[2] the replacement ('' : delete),
-- ARGV[3] its ttl ms.
-- Returns {1} replaced (or already the replacement), {0, current} otherwise.
local cur = redis.call('GET', KEYS[1])
if cur and cur == ARGV[2] then return { 1 } end
if (cur or '') ~= ARGV[1] then return { 0, cur } end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return { 1 }
