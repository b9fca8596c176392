"""The Lua scripts of the Redis broker: each one runs atomically on the server.

Keys, under the prefix ``P`` = ``taskq:<Q_CLUSTER name>:`` (``ARGV[1]`` of every script):

- ``P..'seq'``: counter; task ids (the ack ids) are ``INCR`` of it.
- ``P..'t:'..id``: hash of one task: ``payload``, ``queue``, ``rank``, ``attempt``, and while
  it is claimed ``owner``, ``token``, ``claimed``; ``task_id``, ``name``, ``func``, ``at``
  (enqueue time) for people reading the server.
- ``P..'q:'..queue..':ready'``: sorted set of due task ids, scored by ``rank`` =
  ``(100 - priority) * 2^44 + id``: higher priority first, then enqueue order.
- ``P..'q:'..queue..':delayed'``: sorted set of not-yet-due ids, scored by run-after time.
- ``P..'q:'..queue..':claimed'``: set of this queue's claimed ids.
- ``P..'q:'..queue..':wake'``: list pushed on enqueue; idle clusters block on it (BLPOP).
- ``P..'held:'..owner``: set of the ids a cluster holds; ``P..'owners'``: set of the
  owners that hold any.
- ``P..'clusters'``: sorted set of cluster ids scored by their last heartbeat;
  ``P..'cluster:'..id``: its status (JSON), which expires.

Times are the server's clock (``TIME``), never a host's.
"""

from __future__ import annotations

WAKE_KEEP = 64  # wake-up tokens kept while no cluster listens
PROMOTE = 1000  # most delayed tasks made due by one claim

PRELUDE = """
local P = ARGV[1]
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function qkey(queue, part) return P .. 'q:' .. queue .. ':' .. part end
local function tkey(id) return P .. 't:' .. id end
local function wake(queue)
  redis.call('RPUSH', qkey(queue, 'wake'), '1')
  redis.call('LTRIM', qkey(queue, 'wake'), -WAKE_KEEP, -1)
end
local function unhold(id, owner)
  if owner then
    local held = P .. 'held:' .. owner
    redis.call('SREM', held, id)
    if redis.call('EXISTS', held) == 0 then redis.call('SREM', P .. 'owners', owner) end
  end
end
local function unclaim(id, key, queue, owner)
  redis.call('HDEL', key, 'owner', 'token', 'claimed')
  redis.call('SREM', qkey(queue, 'claimed'), id)
  unhold(id, owner)
end
""".replace("WAKE_KEEP", str(WAKE_KEEP))

# ARGV: P, queue, priority, run_after (epoch seconds or ""), payload, task_id, name, func
ENQUEUE = """
local queue = ARGV[2]
local id = redis.call('INCR', P .. 'seq')
local rank = (100 - tonumber(ARGV[3])) * 17592186044416 + id
local key = tkey(id)
local t = now()
redis.call('HSET', key, 'payload', ARGV[5], 'queue', queue, 'rank', rank, 'attempt', 0, 'at', t)
if ARGV[6] ~= '' then redis.call('HSET', key, 'task_id', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', key, 'name', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', key, 'func', ARGV[8]) end
local after = tonumber(ARGV[4])
if after and after > t then
  redis.call('ZADD', qkey(queue, 'delayed'), after, id)
else
  redis.call('ZADD', qkey(queue, 'ready'), rank, id)
  wake(queue)
end
return id
"""

# ARGV: P, queue, count, owner, token -> {id, attempt, payload, ...}
CLAIM = """
local queue, count, owner, token = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local t = now()
local ready, delayed = qkey(queue, 'ready'), qkey(queue, 'delayed')
for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', t, 'LIMIT', 0, PROMOTE)) do
  redis.call('ZREM', delayed, id)
  local rank = redis.call('HGET', tkey(id), 'rank')
  if rank then redis.call('ZADD', ready, rank, id) end
end
local out = {}
local popped = redis.call('ZPOPMIN', ready, count)
for i = 1, #popped, 2 do
  local id = popped[i]
  local key = tkey(id)
  local payload = redis.call('HGET', key, 'payload')
  if payload then
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'owner', owner, 'token', token, 'claimed', t)
    redis.call('SADD', qkey(queue, 'claimed'), id)
    redis.call('SADD', P .. 'held:' .. owner, id)
    out[#out + 1] = id
    out[#out + 1] = attempt
    out[#out + 1] = payload
  end
end
if #out > 0 then redis.call('SADD', P .. 'owners', owner) end
if #popped < 2 * count then redis.call('DEL', qkey(queue, 'wake')) end
return out
""".replace("PROMOTE", str(PROMOTE))

# ARGV: P, id1, token1, id2, token2, ... -> {id, token, ...} whose claim token still matches
HELD = """
local out = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', tkey(ARGV[i]), 'token') == ARGV[i + 1] then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = ARGV[i + 1]
  end
end
return out
"""

# ARGV: P, id1, token1, ... -> {id, token, ...} removed (their claim token still matched)
ACK = """
local out = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local key = tkey(id)
  local f = redis.call('HMGET', key, 'token', 'queue', 'owner')
  if f[1] == ARGV[i + 1] then
    unclaim(id, key, f[2], f[3])
    redis.call('DEL', key)
    out[#out + 1] = id
    out[#out + 1] = ARGV[i + 1]
  end
end
return out
"""

# ARGV: P, delay seconds, id1, token1, ... -> how many went back to the queue
RELEASE = """
local t = now()
local delay = tonumber(ARGV[2])
local uncount = ARGV[3] == '1'
local n = 0
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local key = tkey(id)
  local f = redis.call('HMGET', key, 'token', 'queue', 'owner', 'rank')
  if f[1] == ARGV[i + 1] then
    unclaim(id, key, f[2], f[3])
    if uncount then
      redis.call('HINCRBY', key, 'attempt', -1)
    end
    if delay > 0 then
      redis.call('ZADD', qkey(f[2], 'delayed'), t + delay, id)
    else
      redis.call('ZADD', qkey(f[2], 'ready'), f[4], id)
      wake(f[2])
    end
    n = n + 1
  end
end
return n
"""

# ARGV: P, retry seconds, owner to leave out -> {id, token, attempt, payload, ...}
ORPHANS = """
local cutoff = now() - tonumber(ARGV[2])
local out = {}
for _, owner in ipairs(redis.call('SMEMBERS', P .. 'owners')) do
  local held = P .. 'held:' .. owner
  local ids = redis.call('SMEMBERS', held)
  if #ids == 0 then
    redis.call('SREM', P .. 'owners', owner)
  elseif owner ~= ARGV[3] then
    local beat = redis.call('ZSCORE', P .. 'clusters', owner)
    if not beat or tonumber(beat) < cutoff then
      for _, id in ipairs(ids) do
        local f = redis.call('HMGET', tkey(id), 'token', 'attempt', 'payload', 'owner')
        if f[1] and f[4] == owner then
          out[#out + 1] = id
          out[#out + 1] = f[1]
          out[#out + 1] = f[2]
          out[#out + 1] = f[3]
        else
          unhold(id, owner)
        end
      end
    end
  end
end
return out
"""

# ARGV: P, cluster id, status JSON, seconds the status is kept
HEARTBEAT = """
redis.call('ZADD', P .. 'clusters', now(), ARGV[2])
redis.call('SET', P .. 'cluster:' .. ARGV[2], ARGV[3], 'EX', tonumber(ARGV[4]))
return 1
"""

# ARGV: P -> {server seconds, microseconds, id, heartbeat, status or false, ...}
CLUSTERS = """
local t = redis.call('TIME')
local out = {t[1], t[2]}
local beats = redis.call('ZRANGE', P .. 'clusters', 0, -1, 'WITHSCORES')
for i = 1, #beats, 2 do
  out[#out + 1] = beats[i]
  out[#out + 1] = beats[i + 1]
  out[#out + 1] = redis.call('GET', P .. 'cluster:' .. beats[i])
end
return out
"""

# ARGV: P, seconds -> clusters forgotten (silent that long, holding no task)
PRUNE = """
local cutoff = now() - tonumber(ARGV[2])
local n = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'clusters', '-inf', '(' .. cutoff)) do
  if redis.call('EXISTS', P .. 'held:' .. id) == 0 then
    redis.call('ZREM', P .. 'clusters', id)
    redis.call('DEL', P .. 'cluster:' .. id)
    n = n + 1
  end
end
return n
"""

# ARGV: P, owner, token -> how many of that claim's tasks went back, attempt uncounted
ABANDON = """
local owner, token = ARGV[2], ARGV[3]
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', P .. 'held:' .. owner)) do
  local key = tkey(id)
  local f = redis.call('HMGET', key, 'token', 'queue', 'rank')
  if f[1] == token then
    unclaim(id, key, f[2], owner)
    redis.call('HINCRBY', key, 'attempt', -1)
    redis.call('ZADD', qkey(f[2], 'ready'), f[3], id)
    wake(f[2])
    n = n + 1
  end
end
return n
"""

# ARGV: P, queue -> tasks that could be claimed now
READY = """
local queue = ARGV[2]
return redis.call('ZCARD', qkey(queue, 'ready'))
  + redis.call('ZCOUNT', qkey(queue, 'delayed'), '-inf', now())
"""

# ARGV: P, id -> 1 if the task was there
DELETE = """
local id = ARGV[2]
local key = tkey(id)
local f = redis.call('HMGET', key, 'queue', 'owner')
if not f[1] then return 0 end
redis.call('ZREM', qkey(f[1], 'ready'), id)
redis.call('ZREM', qkey(f[1], 'delayed'), id)
unclaim(id, key, f[1], f[2])
redis.call('DEL', key)
return 1
"""

# ARGV: P, queue -> tasks removed, waiting or claimed
PURGE = """
local queue = ARGV[2]
local n = 0
for _, part in ipairs({'ready', 'delayed'}) do
  for _, id in ipairs(redis.call('ZRANGE', qkey(queue, part), 0, -1)) do
    redis.call('DEL', tkey(id))
    n = n + 1
  end
end
for _, id in ipairs(redis.call('SMEMBERS', qkey(queue, 'claimed'))) do
  unhold(id, redis.call('HGET', tkey(id), 'owner'))
  redis.call('DEL', tkey(id))
  n = n + 1
end
redis.call('DEL', qkey(queue, 'ready'), qkey(queue, 'delayed'), qkey(queue, 'claimed'),
  qkey(queue, 'wake'))
return n
"""

SCRIPTS = {
    "enqueue": ENQUEUE,
    "claim": CLAIM,
    "held": HELD,
    "ack": ACK,
    "release": RELEASE,
    "abandon": ABANDON,
    "orphans": ORPHANS,
    "heartbeat": HEARTBEAT,
    "clusters": CLUSTERS,
    "prune": PRUNE,
    "ready": READY,
    "delete": DELETE,
    "purge": PURGE,
}
