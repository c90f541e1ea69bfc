-- Helpers shared by the scripts, each defined once. A script is sent with the paragraphs
-- below that it names, directly or through another helper (`source` in script.rs): keep one
-- `local` definition per paragraph, paragraphs separated by blank lines, each naming only
-- earlier ones.

-- How long an index outlives its latest member's idle deadline (ms): the deadlines come from
-- the app instances' clocks, Redis expires keys by its own, and an index must never expire
-- before one of its sessions.
local INDEX_MARGIN_MS = 60000

-- The first byte of a pointer left by a rotation (a record never starts with it).
local POINTER_MARK = 80 -- 'P'

-- Makes a principal's index expire with its latest member's idle deadline (its score) plus
-- the margin; deletes an index left empty.
local function fit_index(index)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', index)
  else
    redis.call('PEXPIREAT', index, tonumber(top[2]) + INDEX_MARGIN_MS)
  end
end

-- Whether a session key's value is a live session's record (not a pointer).
local function is_record(value)
  return value and string.byte(value, 1) ~= POINTER_MARK
end

-- Whether the principal's revocation epoch (key `epoch`) is still `expected` ('' = not checked).
local function epoch_is(epoch, expected)
  return expected == '' or (redis.call('GET', epoch) or '0') == expected
end
