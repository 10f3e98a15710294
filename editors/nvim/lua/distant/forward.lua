-- distant.forward: port forwards through the connection (`tunnel/*` of the
-- bridge API): :DistantForward [LOCAL:][HOST:]PORT, :DistantForwards,
-- :DistantForwardClose LOCAL, and what to do when a remote process starts
-- listening on a port (`tunnel/detected`, option `detected_ports`).
-- Loaded on first use or on the first `tunnel/*` notification; it then
-- registers its listeners.

local client = require("distant.client")
local config = require("distant.config")
local util = require("distant.util")

local M = {}

--- Forwards opened from this Neovim: tunnel id → {local_port, host, port}.
M.opened = {}
--- Detected remote ports already offered (or forwarded), by "conn:port".
local offered = {}

--- Parses `PORT`, `LOCAL:PORT` or `LOCAL:HOST:PORT` (LOCAL 0 = any free).
---@return integer local_port, string? host, integer remote_port
function M.parse(spec)
  local parts = vim.split(vim.trim(spec or ""), ":", { plain = true })
  local function port(s, what, zero_ok)
    local n = tonumber(s)
    if not n or n % 1 ~= 0 or n < (zero_ok and 0 or 1) or n > 65535 then
      util.fail(
        ("%q is not a valid %s; use :DistantForward [LOCAL:][HOST:]PORT, e.g. 8000 or 9000:8000"):format(
          tostring(s),
          what
        ),
        "invalid_params"
      )
    end
    return n
  end
  if #parts == 1 then
    local p = port(parts[1], "port")
    return p, nil, p
  elseif #parts == 2 then
    return port(parts[1], "local port", true), nil, port(parts[2], "remote port")
  elseif #parts == 3 and parts[2] ~= "" then
    return port(parts[1], "local port", true), parts[2], port(parts[3], "remote port")
  end
  util.fail(("%q is not a forward; use [LOCAL:][HOST:]PORT"):format(tostring(spec)), "invalid_params")
end

--- Opens a forward; returns the bridge's `{tunnel, localPort}`.
---@param spec string
function M.open(spec)
  local local_port, host, remote_port = M.parse(spec)
  local result = client.request_sync("tunnel/open", {
    remotePort = remote_port,
    remoteHost = host,
    localPort = local_port,
  })
  M.opened[result.tunnel] = { local_port = result.localPort, host = host or "127.0.0.1", port = remote_port }
  util.notify(
    ("forwarding 127.0.0.1:%d to %s:%d on the remote"):format(result.localPort, host or "127.0.0.1", remote_port)
  )
  return result
end

--- The forwards of the active connection (the bridge's `tunnels` list).
function M.list()
  -- `tunnels` has no "/": the connection is not added for us.
  if not client.connection then
    util.fail("not connected; run :DistantConnect DEST first", "not_connected")
  end
  return client.request_sync("tunnels", { connection = client.connection })
end

--- Lines describing `list`, for :DistantForwards.
function M.format(list)
  if #list == 0 then
    return { "no forwards; open one with :DistantForward PORT" }
  end
  local lines = {}
  for _, t in ipairs(list) do
    local line = ("127.0.0.1:%d -> %s:%d  %d open, %d B in, %d B out"):format(
      t.localPort,
      t.remoteHost,
      t.remotePort,
      t.connections,
      t.bytesIn,
      t.bytesOut
    )
    if t.lastError then
      line = line .. "  (last error: " .. t.lastError .. ")"
    end
    table.insert(lines, line)
  end
  return lines
end

--- Closes the forward listening on local port `local_port`.
function M.close(local_port)
  local n = tonumber(local_port)
  for _, t in ipairs(M.list()) do
    if t.localPort == n then
      client.request_sync("tunnel/close", { tunnel = t.tunnel })
      M.opened[t.tunnel] = nil
      util.notify(("closed the forward on 127.0.0.1:%d"):format(n))
      return
    end
  end
  util.fail(("no forward on local port %s; :DistantForwards lists them"):format(tostring(local_port)), "not_found")
end

client.on("tunnel/state", function(params)
  local mine = M.opened[params.tunnel]
  if params.state == "closed" and mine then
    M.opened[params.tunnel] = nil
    -- Closing it ourselves already said so.
    if params.reason ~= "closed by a client" then
      util.warn(("the forward on 127.0.0.1:%d closed: %s"):format(mine.local_port, params.reason or "closed"))
    end
  end
end)

client.on("tunnel/detected", function(params)
  local mode = config.options.detected_ports
  if params.connection ~= client.connection or mode == false or mode == "off" then
    return
  end
  local key = params.connection .. ":" .. tostring(params.port)
  if offered[key] then
    return
  end
  offered[key] = true
  local what = params.command and (" (" .. params.command .. ")") or ""
  if mode == "forward" then
    -- Same port locally when it is free, else any (outside the
    -- notification handler: opening waits for the bridge).
    vim.schedule(function()
      util.guard(function()
        if not pcall(M.open, ("%d:%d"):format(params.port, params.port)) then
          M.open(("0:%d"):format(params.port))
        end
      end)
    end)
    return
  end
  util.notify(
    ("a remote process listens on port %d%s; :DistantForward %d to open it here"):format(params.port, what, params.port)
  )
end)

return M
