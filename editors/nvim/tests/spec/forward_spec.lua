-- Port forwarding: :DistantForward to a TCP service on the "remote" (the
-- local server's loopback), :DistantForwards, :DistantForwardClose, and a
-- server started by a remote process is offered (or forwarded at once).
local H = require("helpers")
local uv = vim.uv

--- A TCP service on 127.0.0.1 that greets each connection and closes it.
local function greeter(greeting)
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  server:listen(16, function(err)
    assert(not err, err)
    local c = uv.new_tcp()
    server:accept(c)
    c:write(greeting, function()
      c:shutdown(function()
        c:close()
      end)
    end)
  end)
  return server, server:getsockname().port
end

--- Connects to 127.0.0.1:port, sends `request` (if any) and reads to EOF;
--- returns the bytes.
local function fetch(port, request)
  local got, done = {}, false
  local c = uv.new_tcp()
  c:connect("127.0.0.1", port, function(err)
    if err then
      done = true
      return
    end
    if request then
      c:write(request)
    end
    c:read_start(function(rerr, data)
      if rerr or not data then
        done = true
        c:close()
      else
        table.insert(got, data)
      end
    end)
  end)
  H.wait(function()
    return done
  end, "the forwarded connection to end")
  return table.concat(got)
end

describe("distant port forwarding", function()
  after_each(H.assert_no_internal_errors)

  setup(function()
    H.setup()
    H.connect("local")
  end)

  teardown(function()
    H.teardown()
  end)

  before_each(function()
    H.notes = {}
  end)

  it("forwards, lists and closes", function()
    local server, port = greeter("hello through the session")
    vim.cmd("DistantForward 0:" .. port)
    local forward = require("distant.forward")
    local tunnel, info = next(forward.opened)
    assert.is_not_nil(tunnel)
    assert.equals(port, info.port)
    assert.equals(1, #H.notes_matching("forwarding 127%.0%.0%.1:" .. info.local_port))
    assert.equals("hello through the session", fetch(info.local_port))

    local lines = forward.format(forward.list())
    assert.equals(1, #lines)
    assert.matches("127%.0%.0%.1:" .. info.local_port .. " %-> 127%.0%.0%.1:" .. port, lines[1])
    vim.cmd("DistantForwards")

    vim.cmd("DistantForwardClose " .. info.local_port)
    assert.is_nil(forward.opened[tunnel])
    assert.equals(0, #forward.list())
    assert.equals("", fetch(info.local_port))
    server:close()
  end)

  it("says what is wrong with a bad spec or a busy port", function()
    vim.cmd("DistantForward 80:")
    assert.equals(1, #H.notes_matching("not a valid remote port", vim.log.levels.ERROR))
    local busy = uv.new_tcp()
    assert(busy:bind("127.0.0.1", 0))
    busy:listen(1, function() end)
    vim.cmd("DistantForward " .. busy:getsockname().port .. ":9")
    assert.equals(1, #H.notes_matching("already in use", vim.log.levels.ERROR))
    busy:close()
  end)

  it("offers a port a remote process starts listening on", function()
    local client = require("distant.client")
    local spawned = client.request_sync("proc/spawn", {
      cmd = { "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "0" },
    })
    H.wait(function()
      return #H.notes_matching("a remote process listens on port %d+") > 0
    end, function()
      return "the detected-port notification; notes: " .. vim.inspect(H.notes)
    end)
    local note = H.notes_matching("a remote process listens on port %d+")[1].msg
    assert.matches("http%.server", note)
    assert.matches(":DistantForward %d+", note)
    client.request_sync("proc/kill", { proc = spawned.proc, signal = "KILL" })
  end)

  it("forwards a detected port at once when asked to", function()
    local config = require("distant.config")
    config.options.detected_ports = "forward"
    local forward = require("distant.forward")
    local client = require("distant.client")
    local dir = H.tmpdir()
    H.write(dir .. "/index.html", "auto-forwarded")
    local spawned = client.request_sync("proc/spawn", {
      cmd = { "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "0" },
      cwd = dir,
    })
    local before = vim.deepcopy(forward.opened)
    local info
    H.wait(function()
      for id, t in pairs(forward.opened) do
        if not before[id] then
          info = t
        end
      end
      return info ~= nil
    end, "the automatic forward")
    config.options.detected_ports = "notify"
    local reply = fetch(info.local_port, "GET /index.html HTTP/1.0\r\n\r\n")
    assert.matches("^HTTP/1%.%d 200", reply)
    assert.matches("auto%-forwarded$", reply)
    client.request_sync("proc/kill", { proc = spawned.proc, signal = "KILL" })
  end)
end)
