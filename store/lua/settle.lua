-- settle.lua: write what one drain step settled, with the XACK/XDEL of the stream entries it
-- settles, in one call, and only while the caller still holds the shard's lease.
-- KEYS[1]: the shard's lease; KEYS[2]: its stream; KEYS[3]: its retry ZSET; KEYS[4]: the retry
--   records (HASH); KEYS[5]: the holds (HASH); KEYS[6]: the dead-letter stream; KEYS[7]: the
--   stats HASH; KEYS[8..]: the per-minute HASHes this step counts in (every key one shard's).
-- ARGV[1]: the caller's lease token; ARGV[2]: the consumer group; ARGV[3]: the per-minute
--   hashes' time to live (s); ARGV[4]: the dead-letter stream's bound (entries); ARGV[5]: the
--   oldest dead-letter id kept (ms). Then sections, each a count n and its n items:
--   retry ids to unschedule; (id, record JSON, holds, due ms) to schedule; (id, due ms) to
--   move (only if still scheduled); dead letters (JSON); for KEYS[7] and then each per-minute
--   hash, (field, amount) to add; last, the stream entries to acknowledge and delete.
-- Returns: 1 when written; 0, having written nothing, when the lease is no longer the caller's.
-- The lease is the only read, before any write. A Lua error does not undo earlier writes, so the
-- entries are acknowledged last: whatever fails, no entry is gone without its outcome written
-- (it stays pending and is read again).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
-- unpack() is bounded by Lua's C stack (about 8,000 values): acknowledge in chunks.
local CHUNK = 1000
local at = 6

local function count()
  local n = tonumber(ARGV[at])
  at = at + 1
  return n
end

local n = count()
for i = at, at + n - 1 do
  redis.call('ZREM', KEYS[3], ARGV[i])
  redis.call('HDEL', KEYS[4], ARGV[i])
  redis.call('HDEL', KEYS[5], ARGV[i])
end
at = at + n

n = count()
for i = at, at + 4 * (n - 1), 4 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 2])
  redis.call('ZADD', KEYS[3], ARGV[i + 3], ARGV[i])
end
at = at + 4 * n

n = count()
for i = at, at + 2 * (n - 1), 2 do
  redis.call('ZADD', KEYS[3], 'XX', ARGV[i + 1], ARGV[i])
end
at = at + 2 * n

n = count()
if n > 0 then
  -- Trimmed exactly: dead letters are few, and the bound is a promise (README).
  for i = at, at + n - 1 do
    redis.call('XADD', KEYS[6], 'MAXLEN', ARGV[4], '*', 'd', ARGV[i])
  end
  redis.call('XTRIM', KEYS[6], 'MINID', ARGV[5])
end
at = at + n

for k = 7, #KEYS do
  n = count()
  for i = at, at + 2 * (n - 1), 2 do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
  end
  at = at + 2 * n
  if k > 7 then
    redis.call('EXPIRE', KEYS[k], ARGV[3])
  end
end

n = count()
for i = at, at + n - 1, CHUNK do
  local last = math.min(i + CHUNK - 1, at + n - 1)
  redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, i, last))
  redis.call('XDEL', KEYS[2], unpack(ARGV, i, last))
end
return 1
