-- trace_append.lua: append event history records to one hour's hash, within its byte budget.
-- KEYS[1]: the hour's hash (messageId -> NDJSON records); KEYS[2]: what it holds, in bytes.
-- ARGV: the hour's byte budget, time to live (s), max bytes per message, then pairs of
--       messageId and records (JSON lines).
-- Returns: how many appends were not kept (the hour's budget spent, or the message's history
-- full). Every write is held to both limits, a message's first one included, so the hash never
-- grows past its budget whatever arrives (a field costs its text plus about 64 bytes).
local budget = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[3])
local FIELD_COST = 64
local used = tonumber(redis.call('GET', KEYS[2])) or 0
local dropped, added = 0, 0
for i = 4, #ARGV, 2 do
  local id, records = ARGV[i], ARGV[i + 1]
  local current = redis.call('HGET', KEYS[1], id)
  local cost = #records
  if not current then cost = cost + #id + FIELD_COST end
  local size = #records + (current and #current or 0)
  if size > max_bytes or used + added + cost > budget then
    dropped = dropped + 1
  else
    redis.call('HSET', KEYS[1], id, (current or '') .. records)
    added = added + cost
  end
end
if added > 0 then
  redis.call('INCRBY', KEYS[2], added)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return dropped
