-- retry_claim.lua: take the retries that are due, pushing their due time to a claim deadline
-- so that no other drain task takes them while this one sends them.
-- KEYS[1]: the retry schedule (ZSET: retry id -> due time in ms).
-- ARGV[1]: now (ms); ARGV[2]: the claim deadline (ms); ARGV[3]: at most this many.
-- Returns: the claimed retry ids, earliest due first.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return due
