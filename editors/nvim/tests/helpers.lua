-- Test helpers: a real distant-bridge from the worktree's target/debug, a
-- private manager per test process, local file helpers, notification
-- capture, and a TCP forwarder that can be cut (for reconnects).

local uv = vim.uv
local H = {}

H.plugin_root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
H.repo_root = vim.fn.fnamemodify(H.plugin_root, ":h:h")
H.bridge = vim.env.DISTANT_TEST_BRIDGE or (H.repo_root .. "/target/debug/distant-bridge")
H.server = vim.fn.fnamemodify(H.bridge, ":h") .. "/distant-server"

--- Polls `cond` (running the event loop) until true; fails with `what`.
--- `what` may be a function, called only on failure (to show late state).
function H.wait(cond, what, timeout)
  local ok = vim.wait(timeout or 15000, cond, 10)
  if not ok then
    if type(what) == "function" then
      what = what()
    end
    error("timed out waiting for " .. (what or "a condition"), 2)
  end
end

--- Fails if the plugin reported an internal (programming) error.
function H.assert_no_internal_errors()
  local internal = H.notes_matching("internal error")
  assert(#internal == 0, "internal errors: " .. vim.inspect(internal) .. "\n" .. tostring(vim.g.distant_last_traceback))
end

function H.tmpdir()
  local dir = uv.fs_mkdtemp(uv.os_tmpdir() .. "/distant-nvim-XXXXXX")
  return assert(dir)
end

function H.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

function H.read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return data
end

function H.exists(path)
  return uv.fs_stat(path) ~= nil
end

--- Captured vim.notify calls: {msg, level}.
H.notes = {}

function H.notes_matching(pattern, level)
  local found = {}
  for _, note in ipairs(H.notes) do
    if note.msg:find(pattern) and (level == nil or note.level == level) then
      table.insert(found, note)
    end
  end
  return found
end

--- Loads the plugin as a user would (runtimepath + plugin/ file) and sets
--- it up against the worktree's bridge.
function H.setup(opts)
  vim.opt.runtimepath:prepend(H.plugin_root)
  vim.cmd("filetype on")
  vim.cmd("runtime plugin/distant.lua")
  vim.o.swapfile = false
  vim.o.hidden = true
  vim.o.more = false
  vim.o.shortmess = vim.o.shortmess .. "F"
  vim.notify = function(msg, level)
    table.insert(H.notes, { msg = msg, level = level or vim.log.levels.INFO })
  end
  opts = vim.tbl_extend("force", { bridge = H.bridge, watch = false }, opts or {})
  require("distant").setup(opts)
end

--- Connects to `dest` (default `local`) through :DistantConnect.
function H.connect(dest)
  vim.cmd("DistantConnect " .. (dest or "local"))
  local client = require("distant.client")
  assert(client.state == "connected", "not connected: " .. vim.inspect(H.notes))
end

--- Stops the bridge and the private manager of this test process.
function H.teardown()
  local client = package.loaded["distant.client"]
  if client then
    client.stop()
  end
  local runtime = vim.env.XDG_RUNTIME_DIR
  if runtime and runtime:find("distant%-nvim%-test") then
    local pid = tonumber(H.read(runtime .. "/distant/manager.pid") or "")
    if pid then
      pcall(uv.kill, pid, "sigterm")
    end
  end
end

--- Lines of a buffer as one string.
function H.text(bufnr)
  return table.concat(vim.api.nvim_buf_get_lines(bufnr or 0, 0, -1, false), "\n")
end

--- A TCP forwarder on 127.0.0.1:0 → 127.0.0.1:`target_port`. `cut()` closes
--- every forwarded connection and refuses (closes) new ones until
--- `restore()`.
function H.forwarder(target_port)
  local self = { pairs = {}, blocked = false }
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  self.port = server:getsockname().port
  server:listen(64, function(err)
    assert(not err, err)
    local downstream = uv.new_tcp()
    server:accept(downstream)
    if self.blocked then
      downstream:close()
      return
    end
    local upstream = uv.new_tcp()
    local pair = { downstream, upstream }
    table.insert(self.pairs, pair)
    local function close_pair()
      for _, h in ipairs(pair) do
        if not h:is_closing() then
          h:close()
        end
      end
    end
    upstream:connect("127.0.0.1", target_port, function(cerr)
      if cerr then
        close_pair()
        return
      end
      -- Bytes one way; either side closing closes both.
      local function pump(from, to)
        from:read_start(function(rerr, data)
          if rerr or not data then
            close_pair()
          elseif not to:is_closing() then
            to:write(data)
          end
        end)
      end
      pump(downstream, upstream)
      pump(upstream, downstream)
    end)
  end)
  function self.cut()
    self.blocked = true
    for _, pair in ipairs(self.pairs) do
      for _, h in ipairs(pair) do
        if not h:is_closing() then
          h:close()
        end
      end
    end
    self.pairs = {}
  end
  function self.restore()
    self.blocked = false
  end
  function self.close()
    self.cut()
    server:close()
  end
  return self
end

--- Starts `distant-server listen` on 127.0.0.1 with a fresh key; returns
--- {url, port, key, kill}.
function H.start_server()
  local key = ""
  for _ = 1, 32 do
    key = key .. string.format("%02x", math.random(0, 255))
  end
  local lines = {}
  local proc = vim.system({ H.server, "listen", "--host", "127.0.0.1", "--port", "0" }, {
    env = { DISTANT_KEY = key },
    stdout = function(_, data)
      if data then
        table.insert(lines, data)
      end
    end,
  })
  H.wait(function()
    return table.concat(lines):find("distant://") ~= nil
  end, "distant-server to print its address")
  local url = table.concat(lines):match("(distant://%S+)")
  local port = tonumber(url:match(":(%d+)$"))
  return {
    url = url,
    port = port,
    key = key,
    kill = function()
      proc:kill(15)
    end,
  }
end

return H
