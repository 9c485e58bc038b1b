-- rate_limit_slow_down.lua: Pushwoosh answered 429: halve the shared rate, not below a floor.
-- KEYS[1]: the bucket hash. ARGV[1]: the lowest factor allowed (e.g. 0.1).
-- Returns: the new factor, as a string.
local factor = tonumber(redis.call('HGET', KEYS[1], 'factor')) or 1.0
factor = math.max(tonumber(ARGV[1]), factor * 0.5)
redis.call('HSET', KEYS[1], 'factor', tostring(factor))
return tostring(factor)
