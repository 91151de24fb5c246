-- Compare and rotate, as Store.rotate states the rule (cases 1 to 6).
--
-- KEYS[1]  the family hash
-- ARGV[1]  digest of the presented token
-- ARGV[2]  digest of the successor (ignored unless ARGV[3] is '1')
-- ARGV[3]  '1' with a successor, '0' to retire the family
-- ARGV[4]  now (the manager's clock)
-- ARGV[5]  now + refresh_ttl, as computed by the client
-- ARGV[6]  reuse_grace in seconds
-- ARGV[7]  call nonce: a resent copy of this very call gets the first answer
-- ARGV[8]  new user data; present only to replace it
--
-- Returns one string: the status, then, when the family exists, the idle
-- expiry and the subject's length in bytes, each ended by a newline,
-- followed by the subject and the user data. One string rather than an
-- array, because redis-py parses an array reply element by element, which
-- costs the client more than the rest of the reply's handling.
-- The subject's index and cut-off are found through the family's 'ix'
-- field; they lie in the family's hash slot by construction.
local function reply(status, subject, data, expires_at)
    return status .. '\n' .. expires_at .. '\n' .. #subject .. '\n'
        .. subject .. data
end

local family = KEYS[1]
local f = redis.call('HMGET', family,
    's', 'u', 'c', 'p', 'ra', 'e', 'fe', 'r', 'g', 'n', 'ls', 'ix', 'ca')
local subject, data, current, previous, rotated_at = f[1], f[2], f[3], f[4], f[5]
local expires_at, cap, revoked_at, generation = f[6], f[7], f[8], f[9]
local last_nonce, last_status, index, created_at = f[10], f[11], f[12], f[13]

-- 1. no family
if not subject then
    return 'unknown\n'
end
-- The reply to an earlier copy of this call was lost and the client sent it
-- again: answer as the first time instead of judging it as a second use.
if last_nonce == ARGV[7] then
    return reply(last_status, subject, data, expires_at)
end
-- 2. revoked
if revoked_at then
    return reply('revoked', subject, data, expires_at)
end
-- 3. expired by the manager's clock, never by Redis's
local now = tonumber(ARGV[4])
if now >= tonumber(expires_at) then
    return reply('expired', subject, data, expires_at)
end
-- 2, belatedly: revoke_subject marks every family it finds in the index, and
-- this catches one it could not find there (an index evicted under memory
-- pressure, or a key caught mid-migration while its slot was resharded).
-- The cut-off key is the index key with ':s:' turned into ':c:' before the
-- 64-digit subject digest.
if index then
    local cutoff = string.sub(index, 1, -68) .. ':c:' .. string.sub(index, -64)
    local cut = redis.call('HMGET', cutoff, 'at', 'until')
    if cut[1] and now < tonumber(cut[2])
            and tonumber(created_at) <= tonumber(cut[1]) then
        redis.call('HSET', family, 'r', cut[1])
        return reply('revoked', subject, data, expires_at)
    end
end

local presented = ARGV[1]
local has_successor = ARGV[3] == '1'
local next_generation = string.format('%.0f', tonumber(generation) + 1)
local new_data = data
if #ARGV >= 8 then
    new_data = ARGV[8]
end

local status
if presented == current then
    -- 4. the current token
    status = 'rotated'
    if not has_successor then
        redis.call('HSET', family, 'r', ARGV[4], 'g', next_generation,
            'u', new_data, 'n', ARGV[7], 'ls', status)
        return reply(status, subject, new_data, expires_at)
    end
elseif has_successor and tonumber(ARGV[6]) > 0 and previous
        and presented == previous
        and now < tonumber(rotated_at) + tonumber(ARGV[6]) then
    -- 5. the token rotated last, within the grace window. Without a grace
    -- window there is no retry, even for a clock that reads before the
    -- rotation.
    status = 'retried'
else
    -- 6. reuse
    redis.call('HSET', family, 'r', ARGV[4], 'n', ARGV[7], 'ls', 'reused')
    return reply('reused', subject, data, expires_at)
end

local renewed = ARGV[5]
if cap and tonumber(cap) < tonumber(renewed) then
    renewed = cap
end
if status == 'rotated' then
    redis.call('HSET', family, 'p', current, 'ra', ARGV[4], 'c', ARGV[2],
        'e', renewed, 'g', next_generation, 'u', new_data, 'n', ARGV[7],
        'ls', status)
else
    redis.call('HSET', family, 'c', ARGV[2], 'e', renewed,
        'g', next_generation, 'u', new_data, 'n', ARGV[7], 'ls', status)
end
-- Relative to now, so that the key outlives the family by the manager's
-- clock whatever Redis's own clock says.
local ms = math.max(1, math.ceil((tonumber(renewed) - now) * 1000))
ms = string.format('%.0f', ms)
redis.call('PEXPIRE', family, ms)
if index then
    -- No trimming on every refresh: create.lua drops expired members before
    -- it adds one, and this only moves the family's own member (or puts it
    -- back in an index that was lost), so the index holds at most the
    -- families live at the subject's last login.
    redis.call('ZADD', index, renewed, family)
    if redis.call('PTTL', index) < tonumber(ms) then
        redis.call('PEXPIRE', index, ms)
    end
end
return reply(status, subject, new_data, renewed)
