-- trace_append.lua: append event history records to one hour's hash, within its caps.
-- KEYS[1]: the hour's hash (messageId -> NDJSON records).
-- ARGV: cap on distinct messages, time to live (s), max bytes per message, then pairs of
--       messageId and records (JSON lines).
-- Returns: how many appends were not kept (the hour's cap on messages reached, or the
-- message's history full).
local cap = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[3])
local dropped = 0
for i = 4, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current then
    if #current + #ARGV[i + 1] <= max_bytes then
      redis.call('HSET', KEYS[1], ARGV[i], current .. ARGV[i + 1])
    else
      dropped = dropped + 1
    end
  elseif redis.call('HLEN', KEYS[1]) < cap then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  else
    dropped = dropped + 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return dropped
