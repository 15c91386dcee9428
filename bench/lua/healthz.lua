package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "report"
wrk.method = "GET"
wrk.path = "/healthz"
done = wrk_report
