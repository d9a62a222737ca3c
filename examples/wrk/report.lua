-- wrk script part: at the end, one JSON line of what wrk measured (latencies in microseconds),
-- on standard error (wrk's own report goes to standard output). Labelled by WRK_LABEL.
function done(summary, latency, requests)
  io.stderr:write(string.format(
    '{"event": "wrk", "label": "%s", "requests": %d, "errors": %d, "bytes": %d, ' ..
    '"duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"max_us": %d}\n',
    os.getenv("WRK_LABEL") or "", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.status + summary.errors.timeout,
    summary.bytes, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
