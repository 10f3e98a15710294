-- distant.client: the one `distant-bridge stdio` child per Neovim and the
-- one active connection. Spawns the bridge (vim.lsp.rpc speaks its framing),
-- sends requests (async, or "sync" by pumping the event loop with vim.wait),
-- tracks the connection state word and routes the bridge's notifications to
-- whichever module registered for them.

local config = require("distant.config")
local util = require("distant.util")

local M = {}

---@type vim.lsp.rpc.PublicClient?
local rpc = nil
---@type string? the bridge's own version, from `initialize`
local bridge_version = nil

--- The active connection (one per Neovim): id, destination and state word
--- (`connected`, `reconnecting`, `lost`, `disconnected`, `connecting`).
M.connection = nil ---@type string?
M.destination = nil ---@type string?
M.state = "disconnected"
M.server = nil ---@type table? server info from `connect`
M.system = nil ---@type table? `system/info` of the remote

---@type table<string, fun(params: table)[]>
local listeners = {}

--- Registers `fn` for a notification method. Returns nothing; listeners
--- live as long as Neovim (modules register once, on first use).
---@param method string
---@param fn fun(params: table)
function M.on(method, fn)
  listeners[method] = listeners[method] or {}
  table.insert(listeners[method], fn)
end

local function emit_state()
  pcall(vim.api.nvim_exec_autocmds, "User", { pattern = "DistantStatus", modeline = false })
  pcall(vim.cmd.redrawstatus)
end

local function set_state(state, detail)
  local previous = M.state
  M.state = state
  if state == previous then
    return
  end
  local dest = M.destination or "?"
  if state == "reconnecting" then
    util.warn(
      ("connection to %s interrupted%s; reconnecting…"):format(dest, detail and (" (" .. detail .. ")") or "")
    )
  elseif state == "connected" and previous == "reconnecting" then
    util.notify(("reconnected to %s"):format(dest))
  elseif state == "lost" then
    util.error(
      ("connection to %s lost%s. Unsaved buffers are kept; run :DistantConnect %s and :write again."):format(
        dest,
        detail and (": " .. detail) or "",
        dest
      )
    )
  end
  emit_state()
end

local function on_notification(method, params)
  if method == "connection/state" then
    if params.connection == M.connection then
      set_state(params.state, params.detail)
    end
    return
  end
  if method:sub(1, 7) == "tunnel/" and not package.loaded["distant.forward"] then
    -- Port forwarding registers its listeners when it loads.
    require("distant.forward")
  end
  for _, fn in ipairs(listeners[method] or {}) do
    util.guard(fn, params)
  end
end

--- The exit handler of one bridge process: after a restart, the old
--- process's exit must not touch the new one's state.
local function on_exit_of(process)
  return function(code, signal)
    vim.schedule(function()
      if rpc ~= process.client then
        return
      end
      M.bridge_exited(code, signal)
    end)
  end
end

--- The bridge went away (crashed, killed, or its manager died): forget the
--- connection and say how to get it back.
function M.bridge_exited(code, signal)
  local had_connection = M.connection ~= nil
  rpc = nil
  M.connection = nil
  if had_connection then
    util.error(
      ("the bridge exited (code %s%s); run :DistantConnect %s to start it again"):format(
        tostring(code),
        (signal and signal ~= 0) and (", signal " .. tostring(signal)) or "",
        M.destination or "DEST"
      )
    )
  end
  set_state("disconnected")
end

--- Whether the bridge process is running.
function M.running()
  return rpc ~= nil and not rpc.is_closing()
end

--- Starts `distant-bridge stdio` unless it runs already.
function M.start()
  if M.running() then
    return
  end
  local bridge, configured = require("distant.install").find_bridge()
  if not bridge then
    util.fail(
      ("cannot run the bridge %q: not found or not executable."):format(configured)
        .. " Run :DistantInstall (builds it with cargo), or install distant-bridge"
        .. " and set `bridge` in require('distant').setup()"
    )
  end
  local cmd = { bridge }
  vim.list_extend(cmd, config.options.bridge_args or {})
  table.insert(cmd, "stdio")
  local process = {}
  local ok, client = pcall(vim.lsp.rpc.start, cmd, {
    notification = on_notification,
    server_request = function()
      return nil, vim.lsp.rpc.rpc_response_error(vim.lsp.protocol.ErrorCodes.MethodNotFound)
    end,
    on_exit = on_exit_of(process),
    on_error = function(code, err)
      util.error(("bridge protocol error %s: %s"):format(tostring(code), tostring(err)))
    end,
  }, { env = config.options.bridge_env })
  if not ok then
    util.fail(("cannot start the bridge: %s"):format(tostring(client)))
  end
  rpc = client
  process.client = client
  local info = M.request_sync("initialize", { clientName = "distant.nvim" })
  bridge_version = info and info.version
end

--- Turns a JSON-RPC error object into a user error (raised).
local function raise(method, err)
  local kind = type(err) == "table" and type(err.data) == "table" and err.data.kind or nil
  local message = type(err) == "table" and err.message or tostring(err)
  if kind == "not_connected" or kind == "connection_lost" then
    message = message .. " (run :DistantConnect DEST)"
  end
  util.fail(message, kind or ("rpc:" .. method))
end

--- Sends a request; `callback(err, result)` runs on the main loop. Adds the
--- active connection to `params` unless `params.connection` is false.
---@return integer? request id
function M.request(method, params, callback)
  params = params or {}
  if params.connection == nil and method:find("/") then
    if not M.connection then
      util.fail("not connected; run :DistantConnect DEST first (DEST: local, distant://HOST:PORT, ssh://HOST)")
    end
    params.connection = M.connection
  elseif params.connection == false then
    params.connection = nil
  end
  if not M.running() then
    util.fail("the bridge is not running; run :DistantConnect DEST")
  end
  local ok, id = rpc.request(method, params, callback)
  if not ok then
    util.fail("the bridge is not running; run :DistantConnect DEST")
  end
  return id
end

--- Sends a request and waits for its answer, keeping Neovim responsive
--- (vim.wait runs the event loop). Raises a user error on failure or after
--- `timeout` ms (then the request is cancelled on the bridge).
---@param method string
---@param params? table
---@param timeout? integer
function M.request_sync(method, params, timeout)
  local done, err, result = false, nil, nil
  local id = M.request(method, params, function(e, r)
    done, err, result = true, e, r
  end)
  timeout = timeout or config.options.timeout
  if not vim.wait(timeout, function()
    return done or not M.running()
  end, 5) then
    pcall(rpc.notify, "$/cancelRequest", { id = id })
    util.fail(("%s timed out after %d ms; check :DistantStatus and the network"):format(method, timeout), "timeout")
  end
  if not done then
    util.fail(("the bridge exited during %s; run :DistantConnect DEST"):format(method), "not_connected")
  end
  if err then
    raise(method, err)
  end
  return result
end

function M.notify(method, params)
  if M.running() then
    rpc.notify(method, params)
  end
end

--- Connects to `destination` (`local`, `distant://…`, `ssh://…`) and makes
--- it the active connection. Raises a user error on failure.
---@param destination string
function M.connect(destination)
  M.start()
  local previous = M.connection
  -- Shown in messages and the status: never with its key.
  M.destination = util.redact(destination)
  set_state("connecting")
  local params = { destination = destination, connection = false, options = config.options.connect_options }
  local ok, result = pcall(M.request_sync, "connect", params)
  if not ok then
    M.state = previous and "connected" or "disconnected"
    emit_state()
    local kind = util.error_kind(result)
    local hint = ({
      invalid_params = "check the destination: local, distant://[:KEY]@HOST:PORT or ssh://[USER@]HOST[:PORT]",
      auth_failed = "check the key or your ssh credentials",
      timeout = "is the host reachable?",
      not_found = "is distant-server installed next to distant-bridge or on $PATH?",
    })[kind or ""] or "check the destination and that the server is running"
    util.fail(
      ("cannot connect to %s: %s (%s)"):format(util.redact(destination), util.error_message(result), hint),
      kind
    )
  end
  if previous and previous ~= result.connection then
    pcall(M.request_sync, "disconnect", { connection = previous })
  end
  M.connection = result.connection
  M.server = result.server
  M.system = M.request_sync("system/info", {})
  set_state("connected")
  -- Internal event: modules that hold per-connection state (watches)
  -- re-establish it.
  for _, fn in ipairs(listeners["$connected"] or {}) do
    util.guard(fn)
  end
  return result.connection
end

--- Closes the active connection.
function M.disconnect()
  if not M.connection then
    util.fail("not connected")
  end
  local id = M.connection
  M.connection = nil
  pcall(M.request_sync, "disconnect", { connection = id })
  set_state("disconnected")
end

--- Stops the bridge process (tests; `:DistantDisconnect` keeps it).
function M.stop()
  if rpc then
    pcall(rpc.notify, "exit", {})
    pcall(rpc.terminate)
  end
  rpc = nil
  M.connection = nil
  M.state = "disconnected"
end

function M.bridge_version()
  return bridge_version
end

--- The remote's working directory, for relative paths.
function M.remote_cwd()
  return M.system and M.system.currentDir or "/"
end

return M
