-- publish.lua: store every event of one ingest request on its shard streams, or none of them.
-- KEYS: the n shard streams of the destination, then one dedupe key per event.
-- ARGV: n, max queued events, dedupe window (s, 0 = off), route (the `src` field), then per
--       event: its shard (1-based index into KEYS), its JSON.
-- Returns: {written, duplicates}, or {-1, backlog} when the backlog is over the limit.
-- Every read that can fail (XLEN on a key of the wrong type) happens before the first write:
-- a Lua error does not roll back earlier writes, so nothing may fail after writing starts.
local n = tonumber(ARGV[1])
local max_queued = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local src = ARGV[4]
local backlog = 0
for i = 1, n do
  backlog = backlog + redis.call('XLEN', KEYS[i])
end
local count = (#ARGV - 4) / 2
local fresh = {}
local seen_here = {}
local new_count = 0
for j = 1, count do
  local seen_key = KEYS[n + j]
  local is_new = not seen_here[seen_key]
  seen_here[seen_key] = true
  if is_new and window > 0 and redis.call('EXISTS', seen_key) == 1 then
    is_new = false
  end
  fresh[j] = is_new
  if is_new then new_count = new_count + 1 end
end
if new_count > 0 and backlog + new_count > max_queued then
  return {-1, backlog}
end
for j = 1, count do
  if fresh[j] then
    if window > 0 then
      redis.call('SET', KEYS[n + j], '1', 'NX', 'EX', window)
    end
    local shard = tonumber(ARGV[3 + 2 * j])
    redis.call('XADD', KEYS[shard], '*', 'e', ARGV[4 + 2 * j], 'src', src)
  end
end
return {new_count, count - new_count}
