-- rate_limit_acquire.lua: spend tokens of the shared rate limit for one request.
-- Two token buckets (requests/s and events/s) and an adaptive factor live in one hash.
-- KEYS[1]: the bucket hash.
-- ARGV: requests per second, events per second, events in this request, recovery of the factor
--       per second (share of the configured rate).
-- Time is Redis' own (TIME), so workers whose clocks disagree still share one limit.
-- Returns: 0 when the request may go now, else the milliseconds to wait before asking again.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local req_rate = tonumber(ARGV[1])
local ev_rate = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local recovery = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'req', 'ev', 'ts', 'factor')
local factor = tonumber(state[4]) or 1.0
local ts = tonumber(state[3]) or now
local elapsed = math.max(0, now - ts) / 1000.0
factor = math.min(1.0, factor + elapsed * recovery)
local req_cap = math.max(1, req_rate)
local ev_cap = math.max(n, ev_rate)
local req = math.min(req_cap, (tonumber(state[1]) or req_cap) + elapsed * req_rate * factor)
local ev = math.min(ev_cap, (tonumber(state[2]) or ev_cap) + elapsed * ev_rate * factor)
local wait = 0
if req_rate > 0 and req < 1 then
  wait = math.max(wait, (1 - req) / (req_rate * factor) * 1000)
end
if ev_rate > 0 and ev < n then
  wait = math.max(wait, (n - ev) / (ev_rate * factor) * 1000)
end
if wait == 0 then
  if req_rate > 0 then req = req - 1 end
  if ev_rate > 0 then ev = ev - n end
end
redis.call('HSET', KEYS[1], 'req', tostring(req), 'ev', tostring(ev), 'ts', now,
           'factor', tostring(factor))
redis.call('PEXPIRE', KEYS[1], 3600000)
return math.ceil(wait)
