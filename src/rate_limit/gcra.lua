-- One GCRA step for one API key, run atomically by Redis (see redis.rs).
--
-- KEYS[1]          the key's theoretical arrival time (TAT), stored as
--                  "seconds:nanoseconds" of Redis server time
-- ARGV[1]          the emission interval, in nanoseconds
-- ARGV[2]          the capacity (interval x burst), in nanoseconds
-- ARGV[3], ARGV[4] optional "now" as seconds and nanoseconds, for tests;
--                  otherwise the server's TIME, so node clocks do not matter
--
-- Returns {allowed (1 or 0), backlog}: how far the TAT ran ahead of now
-- before this request, in nanoseconds (0 for a key at rest). The caller
-- derives the decision's figures from the backlog with the same function
-- as the in-process limiter. Every number here stays below 2^53 (the
-- caller bounds the capacity), so Lua's doubles hold them exactly.

local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local now_s, now_ns
if ARGV[3] then
  now_s, now_ns = tonumber(ARGV[3]), tonumber(ARGV[4])
else
  local time = redis.call('TIME')
  now_s, now_ns = tonumber(time[1]), tonumber(time[2]) * 1000
end

-- Stores now + ahead (nanoseconds) as the TAT, expiring when that moment
-- comes: from then on an absent key and the stored one mean the same.
local function store(ahead)
  local ns = now_ns + ahead
  local s = math.floor(ns / 1e9)
  ns = ns - s * 1e9
  -- The division may round across a second boundary; settle it exactly.
  if ns < 0 then
    s, ns = s - 1, ns + 1e9
  elseif ns >= 1e9 then
    s, ns = s + 1, ns - 1e9
  end
  redis.call('SET', KEYS[1], string.format('%d:%09d', now_s + s, ns),
    'PX', math.max(1, math.ceil(ahead / 1e6)))
end

local backlog = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local s, ns = string.match(stored, '^(%d+):(%d+)$')
  if s then
    backlog = math.max(0, (tonumber(s) - now_s) * 1e9 + (tonumber(ns) - now_ns))
  end
end
if backlog > capacity then
  -- Only when the server's clock went back (a failover to a replica whose
  -- clock is behind, say): drop the excess rather than lock keys out for
  -- as long as the clocks disagree.
  backlog = capacity
  store(backlog)
end
if backlog + interval <= capacity then
  store(backlog + interval)
  return {1, backlog}
end
return {0, backlog}
