-- Revoke one family, keeping its record (and its expiry) as a tombstone.
--
-- KEYS[1]  the family hash
-- ARGV[1]  now
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], 'r') == 0 then
    redis.call('HSET', KEYS[1], 'r', ARGV[1])
    return 1
end
return 0
