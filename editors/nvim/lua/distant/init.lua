-- distant: remote editing over distant-bridge. The public Lua API is this
-- module: setup(), connect(), disconnect(), open(), status(). Requiring it
-- does nothing else: no process, no autocmd, no option set. The commands
-- and `distant://` autocmds live in plugin/distant.lua and call in here
-- (setup() sources it when Neovim did not).

local M = {}

--- Sets options (see :help distant-config). Optional: commands work with
--- the defaults. Also makes sure the commands and `distant://` autocmds
--- exist, for a plugin put on 'runtimepath' after startup (whose
--- plugin/distant.lua Neovim never sourced); idempotent.
---@param opts? distant.Config
function M.setup(opts)
  require("distant.config").set(opts)
  if not vim.g.loaded_distant then
    local here = debug.getinfo(1, "S").source:sub(2) -- …/lua/distant/init.lua
    dofile(vim.fn.fnamemodify(here, ":p:h:h:h") .. "/plugin/distant.lua")
  end
end

--- Connects to `destination` (`local`, `distant://[:KEY]@HOST:PORT`,
--- `ssh://[USER@]HOST[:PORT]`) and makes it the active connection.
---@param destination string
---@return boolean ok
function M.connect(destination)
  local util = require("distant.util")
  return (
    util.guard(function()
      require("distant.client").connect(destination)
      util.notify("connected to " .. destination)
    end)
  )
end

--- Closes the active connection (buffers stay open; saving needs a new
--- connection).
function M.disconnect()
  local util = require("distant.util")
  return (
    util.guard(function()
      require("distant.watch").clear()
      require("distant.client").disconnect()
      util.notify("disconnected")
    end)
  )
end

--- Opens a remote file or directory in the current window.
---@param path string absolute, `distant://…`, or relative to the remote's working directory
function M.open(path)
  local util = require("distant.util")
  return (util.guard(function()
    require("distant.dir").open(M.resolve(path))
  end))
end

--- A short string for the statusline, e.g. `distant: connected local`,
--- `distant: reconnecting distant://10.0.0.2:4000`, `distant: disconnected`.
---@return string
function M.status()
  local client = package.loaded["distant.client"]
  if not client or (client.state == "disconnected" and not client.connection) then
    return "distant: disconnected"
  end
  return ("distant: %s %s"):format(client.state, client.destination or "")
end

--- Resolves a user-typed path: `distant://…` and absolute paths as they
--- are; relative ones against the current remote directory buffer, the
--- current remote file's directory, else the remote's working directory.
---@param path string
---@return string
function M.resolve(path)
  local util = require("distant.util")
  if util.is_remote(path) then
    path = util.to_path(path)
  end
  if path:sub(1, 1) == "/" then
    return util.normalize(path)
  end
  local base = vim.b.distant_dir
    or (vim.b.distant_path and util.dirname(vim.b.distant_path))
    or require("distant.client").remote_cwd()
  return util.join(base, path)
end

return M
