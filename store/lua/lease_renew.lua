-- lease_renew.lua: extend a shard's lease, only while the caller still holds it.
-- KEYS[1]: the lease key. ARGV[1]: the holder's token; ARGV[2]: the new time to live (ms).
-- Returns: 1 when extended, 0 when the lease expired or another holder has it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
