-- wrk script: every request puts the key "tansiv" (base64 dGFuc2l2) through etcd's JSON
-- gateway; report.lua prints what wrk measured.
dofile("/usr/local/share/tansiv/report.lua")
wrk.method = "POST"
wrk.body = '{"key": "dGFuc2l2", "value": "dmFsdWU="}'
wrk.headers["Content-Type"] = "application/json"
