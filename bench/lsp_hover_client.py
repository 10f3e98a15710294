#!/usr/bin/env python3
"""Minimal LSP client for bench/lsp_latency.sh: runs one language server
command, opens a Python file and times N sequential hover requests.
Prints one JSON line: {"n":…, "p50_ms":…, "p90_ms":…, "min_ms":…}.

usage: lsp_hover_client.py URI_PREFIX PROJECT_DIR N -- CMD [ARGS...]
URI_PREFIX is what stands before the absolute path in a URI: "file://"
for the language server on direct stdio, "distant://" through the proxy.
"""
import json, os, statistics, subprocess, sys, time

prefix, project, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmd = sys.argv[sys.argv.index("--") + 1:]
proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
inp, out = proc.stdin, proc.stdout
next_id = 0


def send(obj):
    body = json.dumps(obj).encode()
    inp.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    inp.flush()


def read():
    length = None
    while True:
        line = out.readline()
        if not line:
            raise SystemExit("the language server closed its stdout")
        line = line.strip()
        if not line:
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    return json.loads(out.read(length))


def request(method, params):
    global next_id
    next_id += 1
    send({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params})
    while True:
        m = read()
        if "method" in m and "id" in m:  # a request from the server
            send({"jsonrpc": "2.0", "id": m["id"], "result": None})
        elif m.get("id") == next_id and "method" not in m:
            return m


root = prefix + project
src = open(os.path.join(project, "m.py")).read()
request("initialize", {"processId": os.getpid(), "rootUri": root, "capabilities": {}})
send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
# pylsp formats hover signatures with black in a subprocess when black is
# installed (hundreds of ms of noise per hover): measure the transport.
send({"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration",
      "params": {"settings": {"pylsp": {"signature": {"formatter": ""}}}}})
uri = root + "/m.py"
send({"jsonrpc": "2.0", "method": "textDocument/didOpen",
      "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": src}}})
pos = {"textDocument": {"uri": uri}, "position": {"line": 5, "character": 5}}
for _ in range(20):  # warm up jedi's caches
    request("textDocument/hover", pos)
times = []
for _ in range(n):
    t = time.perf_counter()
    r = request("textDocument/hover", pos)
    times.append((time.perf_counter() - t) * 1000)
    assert "Double it" in json.dumps(r), r
request("shutdown", None)
send({"jsonrpc": "2.0", "method": "exit"})
inp.close()
proc.wait(timeout=10)
times.sort()
print(json.dumps({"n": n, "p50_ms": statistics.median(times),
                  "p90_ms": times[int(n * 0.9) - 1], "min_ms": times[0]}))
