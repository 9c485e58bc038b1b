-- publish.lua: store every event of one ingest request on its shard streams, or none of them,
-- dropping repeats of a (sender, messageId) fingerprint seen within the dedupe window.
-- KEYS: the n shard streams of the destination, then the n shards' `seen-sizes` hashes.
-- ARGV: n, max queued events, dedupe window (s, 0 = off), generation length (s), route (the
--       `src` field), then the n shards' seen-key prefixes, then per event: its shard (1-based),
--       its fingerprint (a signed 64-bit integer), its bucket hash, its JSON.
-- Returns: {written, duplicates}, or {-1, backlog} when the backlog is over the limit.
-- Every read that can fail (XLEN on a key of the wrong type) happens before the first write:
-- a Lua error does not roll back earlier writes, so nothing may fail after writing starts.
-- Fingerprints of one generation (by Redis' clock) are spread over B buckets, sized from the
-- previous generation so that a bucket holds about TARGET members; when a generation outgrows
-- its buckets, a level with four times as many starts (lookups check every level).
local TARGET, MIN_B, MAX_B, LOOKBACK = 256, 1024, 4194304, 4
local n = tonumber(ARGV[1])
local max_queued = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local gen_s = tonumber(ARGV[4])
local src = ARGV[5]
local first = 6 + n
local g = math.floor(tonumber(redis.call('TIME')[1]) / gen_s)

local function levels(shard, gen)
  local text = redis.call('HGET', KEYS[n + shard], 'b:' .. gen)
  local found = {}
  if text then
    for b in string.gmatch(text, '%d+') do found[#found + 1] = tonumber(b) end
  end
  return found
end

local function bucket_key(shard, gen, b, h)
  return ARGV[5 + shard] .. gen .. ':' .. b .. ':' .. (h % b)
end

local backlog = 0
for i = 1, n do
  backlog = backlog + redis.call('XLEN', KEYS[i])
end

local count = (#ARGV - first + 1) / 4
local fresh, seen_here, cache, new_count = {}, {}, {}, 0
for j = 1, count do
  local at = first + (j - 1) * 4
  local shard, fp, h = tonumber(ARGV[at]), ARGV[at + 1], tonumber(ARGV[at + 2])
  local is_new = not seen_here[shard .. ':' .. fp]  -- a repeat inside one request collapses
  seen_here[shard .. ':' .. fp] = true
  if is_new and window > 0 then
    for gen = g - LOOKBACK, g do
      local key = shard .. ':' .. gen
      if cache[key] == nil then cache[key] = levels(shard, gen) end
      for _, b in ipairs(cache[key]) do
        if redis.call('SISMEMBER', bucket_key(shard, gen, b, h), fp) == 1 then
          is_new = false
          break
        end
      end
      if not is_new then break end
    end
  end
  fresh[j] = is_new
  if is_new then new_count = new_count + 1 end
end
if new_count > 0 and backlog + new_count > max_queued then
  return {-1, backlog}
end

local added, expiry = {}, (g + LOOKBACK + 1) * gen_s
for j = 1, count do
  if fresh[j] then
    local at = first + (j - 1) * 4
    local shard = tonumber(ARGV[at])
    redis.call('XADD', KEYS[shard], '*', 'e', ARGV[at + 3], 'src', src)
    if window > 0 then
      local current = cache[shard .. ':' .. g]
      if #current == 0 then
        local previous = tonumber(redis.call('HGET', KEYS[n + shard], 'n:' .. (g - 1))) or 0
        local b = MIN_B
        while b < MAX_B and b * TARGET < previous do b = b * 2 end
        current[1] = b
        redis.call('HSET', KEYS[n + shard], 'b:' .. g, tostring(b))
        redis.call('HDEL', KEYS[n + shard], 'b:' .. (g - LOOKBACK - 2), 'n:' .. (g - LOOKBACK - 2))
      end
      local key = bucket_key(shard, g, current[#current], tonumber(ARGV[at + 2]))
      redis.call('SADD', key, ARGV[at + 1])
      if not added[key] then
        added[key] = true
        redis.call('EXPIREAT', key, expiry)
      end
      added[shard] = (added[shard] or 0) + 1
    end
  end
end
for shard = 1, n do
  if added[shard] then
    local total = redis.call('HINCRBY', KEYS[n + shard], 'n:' .. g, added[shard])
    -- The sizes of an idle shard go with its last buckets.
    redis.call('EXPIREAT', KEYS[n + shard], expiry + gen_s)
    local current = cache[shard .. ':' .. g]
    local top = current[#current]
    if total > top * TARGET and top < MAX_B then
      current[#current + 1] = top * 4
      redis.call('HSET', KEYS[n + shard], 'b:' .. g, table.concat(current, ','))
    end
  end
end
return {new_count, count - new_count}
