"""The Lua scripts of the shared state: every write to a namespace is one of
these, so totals and the per-worker ledgers always change together.

A worker's *ledger* (``orchestrator:{ns}:ledger:<worker>``) holds the sum of
that worker's batches that Redis holds, next to the ``seq`` of the last one and
the ``epoch`` it was written in. Because a script changes the totals and the
ledger atomically, any consistent copy of the namespace (an older RDB snapshot,
a lagging replica) still has ``ledger == this worker's share of the totals``;
a worker that remembers more than its ledger shows knows exactly what was lost
and restores the difference (``RESTORE``), which is idempotent: the values sent
are absolute, not deltas.

Redis may also lose a ledger alone: ``maxmemory-policy allkeys-lru`` (a Redis
shared with a cache) evicts keys one at a time. So the totals hash itself
holds, per worker, the seq of its last batch they hold (the field
``seq/<ledger key with ':' as '/'>``, which no fleet row reads, since it has
no ':'). A missing ledger whose marker is still in the totals means the
totals kept that worker's share: RESTORE rebuilds the ledger without moving
the totals (``rebuilt``), or, when the marker names another seq than the
worker's, says the share is ``unknown`` instead of counting it as zero.

The discounted sums (``orchestrator:{ns}:discounted``) are a key of their own,
so Redis may lose or roll back that hash alone too. It therefore describes
itself the same way: next to each sum it holds, per worker, that worker's
share (``w/<ledger>/<field>``) and the seq of its last batch it holds
(``seq/<ledger>``). A worker whose marker there is not its ledger's seq knows
the hash lost some of its batches, and RESTORE moves each sum by (the worker's
share - the share the hash holds): exact for a hash that is gone or older,
and idempotent.
"""

from __future__ import annotations

# Creates the namespace's meta hash when it is missing (a fresh Redis, or one
# restarted empty): stale statistics and ledgers are dropped with it, since the
# workers restore everything they delivered under the new epoch.
# KEYS: meta, totals, discounted, workers set. ARGV: version, epoch, discount,
# bucket seconds. Returns the stored meta.
INIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  for _, ledger in ipairs(redis.call('SMEMBERS', KEYS[4])) do redis.call('DEL', ledger) end
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  local t = redis.call('TIME')
  local b = math.floor(tonumber(t[1]) / tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'epoch', ARGV[2], 'discount', ARGV[3],
             'bucket_seconds', ARGV[4], 'ref_bucket', string.format('%d', b))
end
return redis.call('HMGET', KEYS[1], 'version', 'epoch', 'discount', 'bucket_seconds',
                  'ref_bucket')
"""

# The field of the totals (and of the discounted sums) that holds the seq of
# the last batch of the ledger KEYS[LEDGER] they hold, and the prefix of that
# worker's share of each discounted sum. Shared by APPLY, RESTORE and FORGET.
_MARKER = """
local worker_tag = (string.gsub(KEYS[LEDGER], ':', '/'))
local marker = 'seq/' .. worker_tag
local share_of = 'w/' .. worker_tag .. '/'
"""

# Shared by APPLY and RESTORE: read the meta, rebase the discounted sums when
# their scale passes the limit, and bring the ledger to this epoch and to the
# current ref bucket (its discounted fields, prefixed 'd:', are rescaled
# lazily). KEYS: meta, totals, discounted, ledger, workers. ARGV[1]: epoch,
# ARGV[3]: rescale limit. ``held_seq``: the seq of this worker's last batch
# the totals hold (0: none).
_PRELUDE = (
    _MARKER.replace("LEDGER", "4")
    + """
local held_seq = tonumber(redis.call('HGET', KEYS[2], marker) or '0')
local disc_seq = tonumber(redis.call('HGET', KEYS[3], marker) or '0')
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'discount', 'bucket_seconds', 'ref_bucket')
if meta[1] ~= ARGV[1] then return {'reset'} end
local lambda = tonumber(meta[2])
local ref = tonumber(meta[4])
local t = redis.call('TIME')
local now_b = math.floor(tonumber(t[1]) / tonumber(meta[3]))
local led = redis.call('HMGET', KEYS[4], 'epoch', 'seq', 'ref', 'last')
local same = led[1] == ARGV[1]
local stored_seq = 0
if same then stored_seq = tonumber(led[2]) end
local function rebase(key, prefix, f)
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local counted = string.sub(all[i], 1, 4) ~= 'seq/'
    if counted and (prefix == '' or string.sub(all[i], 1, #prefix) == prefix) then
      redis.call('HSET', key, all[i], string.format('%.17g', tonumber(all[i + 1]) * f))
    end
  end
end
local function prepare()
  if lambda < 1 and now_b > ref and math.pow(lambda, ref - now_b) > tonumber(ARGV[3]) then
    rebase(KEYS[3], '', math.pow(lambda, now_b - ref))
    ref = now_b
    redis.call('HSET', KEYS[1], 'ref_bucket', string.format('%d', ref))
  end
  if not same then
    redis.call('DEL', KEYS[4])
    redis.call('HSET', KEYS[4], 'epoch', ARGV[1], 'seq', '0', 'ref', string.format('%d', ref))
    redis.call('SADD', KEYS[5], KEYS[4])
    same = true
  elseif lambda < 1 and tonumber(led[3]) ~= ref then
    rebase(KEYS[4], 'd:', math.pow(lambda, ref - tonumber(led[3])))
    redis.call('HSET', KEYS[4], 'ref', string.format('%d', ref))
  end
end
"""
)

# Adds one batch of a worker exactly once. ARGV: epoch, the batch's seq (the
# worker's last applied seq + 1), rescale limit, then three counted lists of
# field/value pairs: integer totals, float totals, discounted sums. Returns
# 'reset' when the epoch is gone; 'dup' (with the applied record) when the
# ledger already holds this seq (a retry after a lost reply); 'behind' (with
# the ledger's seq) when Redis holds fewer of this worker's batches than it
# applied, or lost its ledger but not the totals, so it must restore first;
# else 'ok' and the record: the ref bucket and the factor the discounted values
# were scaled by.
APPLY = (
    _PRELUDE
    + """
local seq = tonumber(ARGV[2])
if stored_seq >= seq then return {'dup', led[4]} end
local disc_behind = same and lambda < 1 and disc_seq ~= stored_seq
if stored_seq < seq - 1 or (not same and held_seq > 0) or disc_behind then
  return {'behind', string.format('%d', stored_seq)}
end
prepare()
local factor = 1
if lambda < 1 then factor = math.pow(lambda, ref - now_b) end
local record = string.format('%d %.17g', ref, factor)
redis.call('HSET', KEYS[4], 'seq', ARGV[2], 'last', record)
redis.call('HSET', KEYS[2], marker, ARGV[2])
if lambda < 1 then redis.call('HSET', KEYS[3], marker, ARGV[2]) end
local i = 4
local function add_to_totals_and_ledger(command)
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    redis.call(command, KEYS[2], ARGV[i], ARGV[i + 1])
    redis.call(command, KEYS[4], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
end
add_to_totals_and_ledger('HINCRBY')
add_to_totals_and_ledger('HINCRBYFLOAT')
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local v = string.format('%.17g', tonumber(ARGV[i + 1]) * factor)
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], v)
  redis.call('HINCRBYFLOAT', KEYS[3], share_of .. ARGV[i], v)
  redis.call('HINCRBYFLOAT', KEYS[4], 'd:' .. ARGV[i], v)
  i = i + 2
end
return {'ok', record}
"""
)

# Makes a worker's share of the totals equal to what it knows it delivered.
# ARGV: epoch, the worker's last applied seq, rescale limit, the ref bucket its
# discounted values are scaled to, then three counted lists of field/absolute
# value pairs (integer totals, float totals, discounted sums); a field of the
# ledger that is not sent counts as zero. Each field of the totals moves by
# (sent - ledger) and the ledger becomes the sent values. A missing ledger
# counts as zero only when the totals hold none of this worker's batches (no
# marker); with a marker the totals kept its share, so only the ledger is
# rebuilt. A discounted sum moves by (sent - the worker's share the discounted
# hash holds), so a discounted hash lost or rolled back alone is repaired too.
# Returns 'reset' when the epoch is gone, else the status ('restored';
# 'rebuilt': the ledger alone was lost; 'unknown': it was lost and the totals
# hold batches up to another seq than the worker's, so its share is not
# known), the number of requests put back, the ref bucket, and '1' when the
# discounted hash had lost some of this worker's share ('0' otherwise).
RESTORE = (
    _PRELUDE
    + """
local had = same
local kept = not had and held_seq > 0
local status = 'restored'
if kept and held_seq == tonumber(ARGV[2]) then status = 'rebuilt'
elseif kept then status = 'unknown' end
prepare()
local stored = {}
if had then
  local all = redis.call('HGETALL', KEYS[4])
  for i = 1, #all, 2 do stored[all[i]] = tonumber(all[i + 1]) end
end
local disc_lost = 0
local function move_discounted(field, wanted)
  local name = string.sub(field, 3)
  local held = tonumber(redis.call('HGET', KEYS[3], share_of .. name) or '0')
  local diff = wanted - held
  if diff == 0 then return end
  if math.abs(diff) > 1e-9 * math.max(math.abs(wanted), 1) then disc_lost = 1 end
  redis.call('HINCRBYFLOAT', KEYS[3], name, string.format('%.17g', diff))
  if wanted == 0 then
    redis.call('HDEL', KEYS[3], share_of .. name)
  else
    redis.call('HSET', KEYS[3], share_of .. name, string.format('%.17g', wanted))
  end
end
local bookkeeping = {epoch = true, seq = true, ref = true, last = true}
local sent = {}
local lost = 0
local function move(field, wanted, integer)
  sent[field] = true
  if string.sub(field, 1, 2) == 'd:' then move_discounted(field, wanted) end
  local diff = wanted - (stored[field] or 0)
  if diff == 0 then return end
  local function move_totals()
    if kept or string.sub(field, 1, 2) == 'd:' then return end  -- kept, or moved above
    if integer then
      redis.call('HINCRBY', KEYS[2], field, string.format('%d', diff))
      if string.sub(field, -9) == ':requests' then lost = lost + diff end
    else
      redis.call('HINCRBYFLOAT', KEYS[2], field, string.format('%.17g', diff))
    end
  end
  move_totals()
  if wanted == 0 then
    redis.call('HDEL', KEYS[4], field)
  elseif integer then
    redis.call('HSET', KEYS[4], field, string.format('%d', wanted))
  else
    redis.call('HSET', KEYS[4], field, string.format('%.17g', wanted))
  end
end
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do move(ARGV[i], tonumber(ARGV[i + 1]), true); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do move(ARGV[i], tonumber(ARGV[i + 1]), false); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
local scale = 1
if lambda < 1 then scale = math.pow(lambda, ref - tonumber(ARGV[4])) end
for _ = 1, n do move('d:' .. ARGV[i], tonumber(ARGV[i + 1]) * scale, false); i = i + 2 end
for f, _ in pairs(stored) do
  if not sent[f] and not bookkeeping[f] then
    local float = string.sub(f, 1, 2) == 'd:' or string.find(f, ':reward_sum$')
      or string.find(f, ':reward_sq_sum$') or string.find(f, ':cost$')
    move(f, 0, not float)
  end
end
redis.call('HSET', KEYS[4], 'seq', ARGV[2])
redis.call('HSET', KEYS[2], marker, ARGV[2])
if lambda < 1 then redis.call('HSET', KEYS[3], marker, ARGV[2]) end
return {status, string.format('%d', lost), string.format('%d', ref), string.format('%d', disc_lost)}
"""
)

# Deletes a removed model's fields from the totals, the discounted sums and
# every ledger, so a model registered again under that name starts from zero
# everywhere. KEYS: totals, discounted, workers set. ARGV: the model's name,
# then the field suffixes of the totals, then '--', then the discounted ones.
REMOVE = """
local totals, disc = {}, {}
local into = totals
for i = 2, #ARGV do
  if ARGV[i] == '--' then into = disc else into[#into + 1] = ARGV[1] .. ':' .. ARGV[i] end
end
local dled = {}
for _, f in ipairs(disc) do dled[#dled + 1] = 'd:' .. f end
redis.call('HDEL', KEYS[1], unpack(totals))
redis.call('HDEL', KEYS[2], unpack(disc))
for _, ledger in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('HDEL', ledger, unpack(totals))
  redis.call('HDEL', ledger, unpack(dled))
  local shares = {}
  local tag = (string.gsub(ledger, ':', '/'))
  for _, f in ipairs(disc) do shares[#shares + 1] = 'w/' .. tag .. '/' .. f end
  redis.call('HDEL', KEYS[2], unpack(shares))
end
return 1
"""

# Forgets a ledger that no worker will restore any more (its worker closed, or
# its spool was delivered), its marker in the totals, and its marker and shares
# in the discounted sums (its outcomes stay in both). KEYS: ledger, workers
# set, totals, discounted sums.
FORGET = (
    _MARKER.replace("LEDGER", "1")
    + """
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'd:' then
    redis.call('HDEL', KEYS[4], share_of .. string.sub(all[i], 3))
  end
end
redis.call('HDEL', KEYS[4], marker)
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
redis.call('HDEL', KEYS[3], marker)
return 1
"""
)
