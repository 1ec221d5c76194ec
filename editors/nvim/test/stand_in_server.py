#!/usr/bin/env python3
"""Stand-in for the codetier server, speaking only the LSP contract the plugin relies on (DESIGN.md,
"LSP behaviour"), with canned answers. unit.sh drives the plugin against it so the plugin is checked even
where the Rust server is not built; run.sh is the real end-to-end test."""
import json, sys

inp, out = sys.stdin.buffer, sys.stdout.buffer
docs = {}
def read():
    headers = {}
    while True:
        line = inp.readline()
        if not line: sys.exit(0)
        line = line.decode().strip()
        if not line: break
        k, v = line.split(":", 1); headers[k.lower()] = v.strip()
    return json.loads(inp.read(int(headers["content-length"])))
def send(msg):
    body = json.dumps(msg).encode()
    out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body); out.flush()
def offset(text, pos):
    lines = text.split("\n"); o = sum(len(l) + 1 for l in lines[:pos["line"]])
    return min(o + pos["character"], len(text))
pending = []
def request_client(method, params, rid):
    send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    while True:
        m = read()
        if m.get("id") == rid and "method" not in m: return m
        pending.append(m)
def answer(action, args, **extra):
    r = {"action": action, "tier": args.get("tier", "flash"), "tier_label": "Flash", "model": "m", "cached": False,
         "latency_ms": 7, "usage": {"input_tokens": 10, "output_tokens": 5}, "cost_usd": 0.00001, "text": "**Off by one** here", "findings": []}
    r.update(extra); return r
while True:
    msg = pending.pop(0) if pending else read()
    m, mid, p = msg.get("method"), msg.get("id"), msg.get("params") or {}
    if m == "initialize":
        caps = {"textDocumentSync": 2, "hoverProvider": True,
            "executeCommandProvider": {"commands": ["codetier.explain", "codetier.generate", "codetier.review", "codetier.usage"]}}
        # As the design says: inline completions only for a client that declares them (Neovim 0.12).
        if "inlineCompletion" in (p.get("capabilities") or {}).get("textDocument", {}):
            caps["inlineCompletionProvider"] = True
        send({"jsonrpc": "2.0", "id": mid, "result": {"capabilities": caps}})
    elif m == "textDocument/didOpen":
        d = p["textDocument"]; docs[d["uri"]] = [d["version"], d["text"]]
    elif m == "textDocument/didChange":
        d = docs[p["textDocument"]["uri"]]; d[0] = p["textDocument"]["version"]
        for c in p["contentChanges"]:
            if "range" in c:
                a, b = offset(d[1], c["range"]["start"]), offset(d[1], c["range"]["end"]); d[1] = d[1][:a] + c["text"] + d[1][b:]
            else: d[1] = c["text"]
    elif m == "workspace/executeCommand":
        cmd, args = p["command"], (p.get("arguments") or [{}])[0]
        sys.stderr.write("executeCommand %s %s\n" % (cmd, json.dumps(args)))
        if cmd == "codetier.explain":
            # The server also shows the headline; the plugin must not echo it a second time.
            send({"jsonrpc": "2.0", "method": "window/showMessage", "params": {"type": 3, "message": "codetier: Off by one here"}})
            send({"jsonrpc": "2.0", "id": mid, "result": answer("explain", args, headline="Off by one here")})
        elif cmd == "codetier.review":
            r = args["range"]
            send({"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics", "params": {"uri": args["uri"], "diagnostics": [
                {"range": {"start": r["start"], "end": r["start"]}, "severity": 2, "source": "codetier", "message": "index out of bounds"}]}})
            send({"jsonrpc": "2.0", "id": mid, "result": answer("review", args, findings=[{"start_line": 3, "end_line": 3, "severity": "warning", "message": "x"}])})
        elif cmd == "codetier.generate":
            # Like the server: the first selected line (the doc comment) stays, the stub after it is replaced.
            uri = args["uri"]; first = args["range"]["start"]["line"] + 1; end = max(args["range"]["end"]["line"], first + 1)
            resp = request_client("workspace/applyEdit", {"edit": {"documentChanges": [{"textDocument": {"uri": uri, "version": docs[uri][0]},
                "edits": [{"range": {"start": {"line": first, "character": 0}, "end": {"line": end, "character": 0}},
                           "newText": "fn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}\n"}]}]}}, 900)
            send({"jsonrpc": "2.0", "id": mid, "result": answer("generate", args, applied=resp.get("result", {}).get("applied"))})
        elif cmd == "codetier.usage":
            send({"jsonrpc": "2.0", "method": "window/showMessage", "params": {"type": 3, "message": "codetier usage this session: 3 requests, $0.00003"}})
            send({"jsonrpc": "2.0", "id": mid, "result": {"per_tier": [{"tier": "flash", "requests": 3, "cost_usd": 0.00003}], "total_cost_usd": 0.00003}})
    elif m == "textDocument/hover":
        send({"jsonrpc": "2.0", "id": mid, "result": {"contents": {"kind": "markdown", "value": "**Off by one** here"}}})
    elif m == "textDocument/inlineCompletion":
        send({"jsonrpc": "2.0", "id": mid, "result": {"items": [{"insertText": "42"}]}})
    elif m == "codetier/viewFileText":
        d = docs.get(p["uri"]); send({"jsonrpc": "2.0", "id": mid, "result": {"version": d[0], "text": d[1]}})
    elif m == "shutdown": send({"jsonrpc": "2.0", "id": mid, "result": None})
    elif m == "exit": sys.exit(0)
    elif mid is not None and m is not None: send({"jsonrpc": "2.0", "id": mid, "result": None})
