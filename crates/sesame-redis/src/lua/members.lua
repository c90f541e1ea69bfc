-- Shared by the scripts that reach a principal's sessions (prepended to each of them).
--
-- The client reads the index (ZRANGE) first and declares every member's session key in KEYS,
-- so that Redis checks them all before running the script: while a Cluster slot is being
-- migrated, a script whose keys are split between two nodes is refused (TRYAGAIN / ASK)
-- instead of mistaking a session that already moved for a missing one. `same_members` checks
-- that the index still holds exactly the members the client read, in the same order, starting
-- at ARGV[first]; when it does not, the script writes nothing and the client reads again.
local function same_members(index, first)
  local now = redis.call('ZRANGE', index, 0, -1)
  if #now ~= #ARGV - first + 1 then return false end
  for i, id in ipairs(now) do
    if id ~= ARGV[first + i - 1] then return false end
  end
  return true
end
