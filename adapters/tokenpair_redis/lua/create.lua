-- Create a family and enter it in its subject's index, in one step.
--
-- KEYS[1]  the family hash
-- KEYS[2]  the subject index: a sorted set of family keys scored by expiry,
--          in the same hash slot as KEYS[1]
-- KEYS[3]  the subject's cut-off hash, in the same hash slot
-- ARGV[1]  subject          ARGV[2]  user data (JSON text)
-- ARGV[3]  token digest     ARGV[4]  created_at (the manager's now)
-- ARGV[5]  expires_at       ARGV[6]  family_expires_at, or '' for none
-- ARGV[7]  key lifetime in ms, from created_at to expires_at
-- ARGV[8]  call nonce: a resent copy of this very call finds it and succeeds
--
-- Times are kept as the decimal strings the client sent, never re-formatted by
-- Lua (whose tostring keeps only 14 digits).
local family, index, cutoff = KEYS[1], KEYS[2], KEYS[3]

if redis.call('EXISTS', family) == 1 then
    if redis.call('HGET', family, 'n') == ARGV[8] then
        return 'ok'
    end
    return 'exists'
end

redis.call('HSET', family,
    's', ARGV[1], 'u', ARGV[2], 'c', ARGV[3], 'ca', ARGV[4], 'e', ARGV[5],
    'g', '0', 'n', ARGV[8], 'ix', index)
if ARGV[6] ~= '' then
    redis.call('HSET', family, 'fe', ARGV[6])
end
redis.call('PEXPIRE', family, ARGV[7])

-- A login that raced a logout everywhere (stamped at or before the subject's
-- cut-off) arrives revoked at the cut-off, and stays out of the index, which
-- holds live families only.
local cut = redis.call('HMGET', cutoff, 'at', 'until')
if cut[1] and tonumber(ARGV[4]) <= tonumber(cut[1])
        and tonumber(cut[1]) < tonumber(cut[2]) then
    redis.call('HSET', family, 'r', cut[1])
    return 'ok'
end

-- Members whose expiry has passed by the manager's clock go on every touch,
-- so the index never outgrows the subject's live families.
redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[4])
redis.call('ZADD', index, ARGV[5], family)
if redis.call('PTTL', index) < tonumber(ARGV[7]) then
    redis.call('PEXPIRE', index, ARGV[7])
end
return 'ok'
