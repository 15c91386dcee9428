-- Customer turns round-robin over pre-created conversations PREFIX0..PREFIX(N-1), each with a
-- unique client_turn_id. ESCALATE_PCT percent of them (default 0) are `request_human` turns.
-- Env: CONV_PREFIX (default "c"), CONVS (default 1000), ESCALATE_PCT, RUN_TAG.
-- Each visit to a conversation gets the next text of the list: a customer who repeats the same
-- line is escalated by design, and that would not be a routine turn.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "report"

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  thread:set("nthreads", 0) -- filled in init
  table.insert(threads, thread)
end

local texts = {
  "hi, where is my parcel?",
  "what are your opening hours",
  "can I change my delivery address",
  "do you ship to canada",
  "do you have this in a larger size",
  "thanks, and what about the colour options",
  "is the blue one in stock",
  "ok, and how long does shipping take",
}

function init(args)
  prefix = os.getenv("CONV_PREFIX") or "c"
  nconv = tonumber(os.getenv("CONVS") or "1000")
  esc = tonumber(os.getenv("ESCALATE_PCT") or "0")
  tag = os.getenv("RUN_TAG") or "r"
  n = 0
  math.randomseed(os.time() + tid * 7919)
  wrk.headers["Content-Type"] = "application/json"
  -- Threads start at different offsets so they do not hit one conversation together.
  offset = tid * 997
end

function request()
  n = n + 1
  local conv = prefix .. ((offset + n) % nconv)
  local ctid = tag .. "-" .. tid .. "-" .. n
  local body
  if esc > 0 and math.random(100) <= esc then
    body = '{"role":"customer","text":"","action":"request_human","client_turn_id":"' .. ctid .. '"}'
  else
    body = '{"role":"customer","text":"' .. texts[(math.floor((offset + n) / nconv) + tid) % #texts + 1] .. '","client_turn_id":"' .. ctid .. '"}'
  end
  return wrk.format("POST", "/v1/conversations/" .. conv .. "/turns", nil, body)
end

done = wrk_report
