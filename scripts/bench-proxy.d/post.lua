-- wrk script for scripts/bench-proxy: POSTs 1 KiB binary-mode CloudEvents, each with its own
-- ce-id (<run tag>-<thread>-<counter>), and prints one machine-readable summary line.
--
--   wrk -s post.lua URL -- <run tag>

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local prefix, counter = "", 0

function init(args)
  prefix = (args[1] or "run") .. "-" .. tostring(tid) .. "-"
  wrk.method = "POST"
  wrk.body = string.rep("x", 1024)
  wrk.headers["ce-specversion"] = "1.0"
  wrk.headers["ce-type"] = "dev.ferry.bench"
  wrk.headers["ce-source"] = "/bench-proxy"
  wrk.headers["content-type"] = "application/octet-stream"
end

function request()
  counter = counter + 1
  wrk.headers["ce-id"] = prefix .. counter
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
