"""The Lua scripts of rtbcore.distributed. Each touches the keys of one hash tag only, so it
runs unchanged on Redis Cluster. Money is integer micro-units; Lua numbers are doubles, exact
for integers up to 2**53 micro-units (9e9 currency units), the largest budget accepted.

Budget keys of campaign ID (``P`` = the prefix, ``cmp`` by default):

- ``{P:ID}``: hash ``budget``, ``spent`` (drawn by some node: spent or in a node's hand),
  ``held`` (sum of the live leases), ``used`` (spend the nodes have reported);
- ``{P:ID}:leases``: hash node -> the micro-units that node's lease reserves;
- ``{P:ID}:expiry``: sorted set node -> the lease's expiry (server time, ms).

Invariant kept by every script: ``spent + held <= budget``.
"""

from __future__ import annotations

# KEYS: the campaign hash. ARGV: budget. Creates the campaign if it is new; returns its budget.
INIT = """
redis.call('HSETNX', KEYS[1], 'budget', ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'budget'))
"""

# KEYS: campaign hash, leases, expiry. ARGV: budget. Refuses a budget below spent + held.
SET_BUDGET = """
local b = redis.call('HMGET', KEYS[1], 'spent', 'held')
local floor = tonumber(b[1] or '0') + tonumber(b[2] or '0')
local new = tonumber(ARGV[1])
if new < floor then
  return redis.error_reply('RTBCORE_BUDGET_BELOW_SPEND ' .. string.format('%d', floor))
end
redis.call('HSET', KEYS[1], 'budget', string.format('%d', new))
return new
"""

# The one call a node makes per campaign: reap expired leases, take back a refund, add reported
# spend, draw money (from the node's own lease first, then from the free budget), and set the
# node's lease to its target (top up from the free budget, or release), renewing its expiry.
# KEYS: campaign hash, leases, expiry.
# ARGV: node, draw, lease target, refund, used delta, ttl ms.
# Returns {drawn, lease, budget, spent, held, used, reaped, now_ms}.
SYNC = """
local b = redis.call('HMGET', KEYS[1], 'budget', 'spent', 'held', 'used')
if not b[1] then
  return redis.error_reply('RTBCORE_NO_CAMPAIGN ' .. KEYS[1])
end
local budget = tonumber(b[1])
local spent = tonumber(b[2] or '0')
local held = tonumber(b[3] or '0')
local used = tonumber(b[4] or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node = ARGV[1]

local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 256)
for _, n in ipairs(dead) do
  if n ~= node then
    held = held - tonumber(redis.call('HGET', KEYS[2], n) or '0')
    redis.call('HDEL', KEYS[2], n)
    redis.call('ZREM', KEYS[3], n)
  end
end
local mine = tonumber(redis.call('HGET', KEYS[2], node) or '0')
local exp = tonumber(redis.call('ZSCORE', KEYS[3], node) or '0')
if mine > 0 and exp <= now then
  held = held - mine
  mine = 0
end

local refund = math.min(tonumber(ARGV[4]), spent)
spent = spent - refund
used = used + tonumber(ARGV[5])

local want = tonumber(ARGV[2])
local own = math.min(want, mine)
mine = mine - own
held = held - own
spent = spent + own
local more = math.max(0, math.min(want - own, budget - spent - held))
spent = spent + more
local drawn = own + more

local target = tonumber(ARGV[3])
local free = budget - spent - held
if target > mine then
  local add = math.max(0, math.min(target - mine, free))
  mine = mine + add
  held = held + add
elseif target < mine then
  held = held - (mine - target)
  mine = target
end
if mine > 0 then
  redis.call('HSET', KEYS[2], node, string.format('%d', mine))
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), node)
else
  redis.call('HDEL', KEYS[2], node)
  redis.call('ZREM', KEYS[3], node)
end
redis.call('HSET', KEYS[1], 'spent', string.format('%d', spent), 'held', string.format('%d', held),
           'used', string.format('%d', used))
return {drawn, mine, budget, spent, held, used, #dead, now}
"""

# Frequency cap of one user. KEYS: the user's counter (a hash: window index, count).
# ARGV: occurrences, window ms. Counts the occurrences in the current window of server time
# (windows are aligned to the Unix epoch) and returns {count after, ms left in the window}.
FREQUENCY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[2])
local idx = math.floor(now / w)
local cur = redis.call('HMGET', KEYS[1], 'w', 'c')
local c = 0
if cur[1] and tonumber(cur[1]) == idx then
  c = tonumber(cur[2])
end
c = c + tonumber(ARGV[1])
local stop = (idx + 1) * w
redis.call('HSET', KEYS[1], 'w', string.format('%d', idx), 'c', string.format('%d', c))
redis.call('PEXPIREAT', KEYS[1], stop + 1000)
return {c, stop - now}
"""

# The same for many users in one call (one server: any keys; a cluster needs one slot per
# call, so there the single-user script is pipelined instead). KEYS: the users' counters.
# ARGV: window ms, then the occurrences of each user. Returns {count after each..., ms left}.
FREQUENCY_MANY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local idx = math.floor(now / w)
local sidx = string.format('%d', idx)
local stop = (idx + 1) * w
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('HMGET', key, 'w', 'c')
  local c = 0
  if cur[1] and tonumber(cur[1]) == idx then
    c = tonumber(cur[2])
  end
  c = c + tonumber(ARGV[i + 1])
  redis.call('HSET', key, 'w', sidx, 'c', string.format('%d', c))
  redis.call('PEXPIREAT', key, stop + 1000)
  out[i] = c
end
out[#KEYS + 1] = stop - now
return out
"""

# The same for int user ids on one server, packed in one argument ("id:n,id:n,..."): the
# per-argument cost of the client dominates a block otherwise. It names keys it was not given
# in KEYS, which only a single server allows (a cluster must see a script's keys).
# ARGV: window ms, key prefix, packed users. Returns {count after each..., ms left}.
FREQUENCY_PACKED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local idx = math.floor(now / w)
local sidx = string.format('%d', idx)
local stop = (idx + 1) * w
local out = {}
for u, n in string.gmatch(ARGV[3], '(-?%d+):(%d+)') do
  local key = ARGV[2] .. ':{' .. u .. '}'
  local cur = redis.call('HMGET', key, 'w', 'c')
  local c = 0
  if cur[1] and tonumber(cur[1]) == idx then
    c = tonumber(cur[2])
  end
  c = c + tonumber(n)
  redis.call('HSET', key, 'w', sidx, 'c', string.format('%d', c))
  redis.call('PEXPIREAT', key, stop + 1000)
  out[#out + 1] = c
end
out[#out + 1] = stop - now
return out
"""
