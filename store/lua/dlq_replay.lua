-- dlq_replay.lua: move one dead letter back for delivery, at most once.
-- KEYS (all one shard's): the dead-letter stream, the retry data hash, the retry schedule, the
--       holds hash, the event stream.
-- ARGV: the dead letter's entry id; "request" or "event"; the new retry id; the payload (a retry
--       record, or the event's JSON); now (ms); the record's holds entry.
-- Returns: 1 when moved, 0 when it was already replayed or purged.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'request' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[6])
else
  redis.call('XADD', KEYS[5], '*', 'e', ARGV[4], 'src', 'replay')
end
return 1
