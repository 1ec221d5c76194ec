//! The Lua scripts run inside Redis, each atomic there: the shared token bucket, and the lock's release and extension.

use std::sync::OnceLock;

use redis::Script;

/// A token bucket of `ARGV[1]` tokens a minute at `KEYS[1]`: takes one token and returns 0, or
/// takes none and returns the milliseconds until one is there. The clock is Redis's own, so
/// processes on machines with different clocks share one bucket correctly.
const BUCKET: &str = r"
local cap = tonumber(ARGV[1])
local per_ms = cap / 60000.0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or cap
local at = tonumber(v[2]) or now
if now > at then tokens = math.min(cap, tokens + (now - at) * per_ms) end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(math.max(now, at)))
redis.call('PEXPIRE', KEYS[1], 120000)
return wait
";

/// Deletes `KEYS[1]` only while it still holds `ARGV[1]`: a lock that expired and was taken by
/// another process is not released by its first holder.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Extends `KEYS[1]` to `ARGV[2]` milliseconds only while it still holds `ARGV[1]`.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

pub(super) fn extend() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(EXTEND))
}

pub(super) fn bucket() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(BUCKET))
}

pub(super) fn release() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(RELEASE))
}
