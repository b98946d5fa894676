-- bench/invoke's request for wrk: POST a small body to a function's invoke URL over
-- keep-alive connections, with the key from BENCH_KEY. At the end, one line:
-- requests seconds p50_ms p99_ms mean_ms non_2xx socket_errors
wrk.method = "POST"
wrk.body = "hello world\n"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "text/plain"

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("%d %.3f %.3f %.3f %.3f %d %d\n",
        summary.requests, summary.duration / 1e6,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000,
        e.status, e.connect + e.read + e.write + e.timeout))
end
