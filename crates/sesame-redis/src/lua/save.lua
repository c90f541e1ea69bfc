-- Merge a delta into a session record, server side, so concurrent saves of different
-- attributes all persist.
-- KEYS[1] session key
-- ARGV[1] now ms, ARGV[2] idle timeout ms, ARGV[3] max counted bytes, ARGV[4] max attributes,
-- ARGV[5] expected version (-1: any), ARGV[6] number of set pairs n,
-- ARGV[7 .. 6+2n] name, value pairs to set, then names to remove.
-- Returns {0} missing, {1, version} saved, {2, version} version conflict,
-- {3, message} refused by a limit (nothing written).
local raw = redis.call('GET', KEYS[1])
if not raw then return { 0 } end
local ok, r = pcall(cmsgpack.unpack, raw)
if not ok or type(r) ~= 'table' or type(r[1]) ~= 'number' or type(r[3]) ~= 'number'
    or type(r[6]) ~= 'table' or type(r[2]) ~= 'number' or r[3] < r[2]
    or r[3] - r[2] > 31622400000 then
  return redis.error_reply('SESAME_CORRUPT session record cannot be decoded')
end
local now = tonumber(ARGV[1])
if r[3] <= now then
  redis.call('DEL', KEYS[1])
  return { 0 }
end
local expected = tonumber(ARGV[5])
if expected >= 0 and r[1] ~= expected then return { 2, r[1] } end
local attrs = r[6]
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  attrs[ARGV[i]] = ARGV[i + 1]
  i = i + 2
end
while i <= #ARGV do
  attrs[ARGV[i]] = nil
  i = i + 1
end
local count, bytes = 0, 0
if type(r[4]) == 'string' then bytes = #r[4] end
for k, v in pairs(attrs) do
  count = count + 1
  bytes = bytes + #k + #v
end
if count > tonumber(ARGV[4]) then
  return { 3, count .. ' attributes, at most ' .. ARGV[4] .. ' allowed' }
end
if bytes > tonumber(ARGV[3]) then
  return { 3, 'session would hold ' .. bytes .. ' bytes, at most ' .. ARGV[3] .. ' allowed' }
end
r[1] = r[1] + 1
local ttl = math.min(tonumber(ARGV[2]), r[3] - now)
redis.call('SET', KEYS[1], cmsgpack.pack(r), 'PX', string.format('%d', ttl))
return { 1, r[1] }
