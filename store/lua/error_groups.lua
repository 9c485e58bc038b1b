-- error_groups.lua: count failed calls by kind in one hour's hash, with one sample per kind.
-- KEYS[1]: the hour's hash. Fields per kind: n:<kind> calls, e:<kind> events, t:<kind> last
--          time (ms), s:<kind> the latest sample (JSON, the API key already masked); `kinds`
--          counts the kinds held.
-- ARGV: the most kinds an hour holds, time to live (s), the kind that takes any further kind
--       ("other"), then quintuples: kind, calls, events, time (ms), sample ('' for none).
-- Returns: the kinds the hash holds. At most ARGV[1] kinds plus the overflow kind, so the hash
-- stays bounded whatever fails (samples are cut to a few kilobytes before they get here).
local cap = tonumber(ARGV[1])
local overflow = ARGV[3]
local kinds = tonumber(redis.call('HGET', KEYS[1], 'kinds')) or 0
for i = 4, #ARGV, 5 do
  local kind = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], 'n:' .. kind) == 0 then
    if kinds >= cap and kind ~= overflow then kind = overflow end
    if redis.call('HEXISTS', KEYS[1], 'n:' .. kind) == 0 then
      kinds = kinds + 1
      redis.call('HSET', KEYS[1], 'kinds', kinds)
    end
  end
  redis.call('HINCRBY', KEYS[1], 'n:' .. kind, ARGV[i + 1])
  redis.call('HINCRBY', KEYS[1], 'e:' .. kind, ARGV[i + 2])
  local last = tonumber(redis.call('HGET', KEYS[1], 't:' .. kind)) or 0
  if tonumber(ARGV[i + 3]) > last then
    redis.call('HSET', KEYS[1], 't:' .. kind, ARGV[i + 3])
  end
  if ARGV[i + 4] ~= '' then
    redis.call('HSET', KEYS[1], 's:' .. kind, ARGV[i + 4])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return kinds
