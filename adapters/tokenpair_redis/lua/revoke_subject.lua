-- Revoke every live family of a subject and remember the cut-off, in one step:
-- create.lua enters families in the index in the same hash slot, so no family
-- can be created half before and half after this script.
--
-- KEYS[1]  the subject index (sorted set of family keys)
-- KEYS[2]  the subject's cut-off hash
-- ARGV[1]  now              ARGV[2]  remember_until
-- ARGV[3]  cut-off lifetime in ms, or '' when remember_until is not after now
-- ARGV[4]  call nonce: a resent copy of this very call gets the first count
local index, cutoff = KEYS[1], KEYS[2]

local earlier = redis.call('HMGET', cutoff, 'n', 'k')
if earlier[1] == ARGV[4] then
    return tonumber(earlier[2])
end

local now = tonumber(ARGV[1])
local revoked = 0
for _, family in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local f = redis.call('HMGET', family, 'r', 'e')
    if f[2] and not f[1] and now < tonumber(f[2]) then
        redis.call('HSET', family, 'r', ARGV[1])
        revoked = revoked + 1
    end
end
-- Every member is now revoked, expired or gone: nothing left to index.
redis.call('DEL', index, cutoff)
if ARGV[3] ~= '' then
    redis.call('HSET', cutoff, 'at', ARGV[1], 'until', ARGV[2],
        'n', ARGV[4], 'k', revoked)
    redis.call('PEXPIRE', cutoff, ARGV[3])
end
return revoked
