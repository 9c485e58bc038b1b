-- lease_release.lua: give a shard's lease back, only if the caller still holds it.
-- KEYS[1]: the lease key. ARGV[1]: the holder's token.
-- Returns: 1 when released, 0 when it was no longer the caller's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
