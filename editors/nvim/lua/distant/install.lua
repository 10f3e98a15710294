-- distant.install: brings the plugin's own bridge. Builds `distant-bridge`
-- and `distant-server` with cargo from the distant repository this plugin
-- lives in (editors/nvim is two levels below its root) into
-- stdpath("data")/distant/bin, where `find_bridge()` finds them when the
-- configured `bridge` is not on $PATH. :DistantInstall and lazy.nvim's
-- `build` step run it. Holds no state.

local M = {}

--- The distant repository holding this plugin.
---@return string
function M.root()
  local here = debug.getinfo(1, "S").source:sub(2) -- …/editors/nvim/lua/distant/install.lua
  return vim.fn.fnamemodify(here, ":p:h:h:h:h:h")
end

--- Where the binaries are installed: `<prefix>/bin/`.
---@return string
function M.prefix()
  return vim.g.distant_install_prefix or (vim.fn.stdpath("data") .. "/distant")
end

--- The bridge :DistantInstall puts in place.
---@return string
function M.bridge_path()
  return M.prefix() .. "/bin/distant-bridge"
end

--- The bridge to run: the configured one when it is executable (a name on
--- $PATH or a path), else the installed one when the configuration is the
--- default, else nil.
---@return string? path, string configured
function M.find_bridge()
  local config = require("distant.config")
  local configured = config.options.bridge
  if vim.fn.executable(configured) == 1 then
    return vim.fn.exepath(configured), configured
  end
  if configured == config.defaults.bridge and vim.fn.executable(M.bridge_path()) == 1 then
    return M.bridge_path(), configured
  end
  return nil, configured
end

--- The cargo commands that install one package each (`debug`: the dev
--- profile, reusing target/debug; else release).
---@param debug? boolean
---@return string[][]
function M.commands(debug)
  local root = M.root()
  local cmds = {}
  for _, package in ipairs({ "server", "bridge" }) do
    local cmd = { "cargo", "install", "--locked", "--path", root .. "/" .. package, "--root", M.prefix() }
    if debug then
      table.insert(cmd, "--debug")
    end
    table.insert(cmds, cmd)
  end
  return cmds
end

--- The command line a person would type (for messages).
---@return string
function M.command_line()
  local parts = {}
  for _, cmd in ipairs(M.commands()) do
    table.insert(parts, table.concat(cmd, " "))
  end
  return table.concat(parts, " && ")
end

--- Builds and installs the bridge and the server. `opts.wait`: block until
--- done (lazy.nvim's build); `opts.debug`: dev profile; `opts.on_done(ok,
--- message)`. Returns ok, message when waiting.
---@param opts? { wait?: boolean, debug?: boolean, on_done?: fun(ok: boolean, message: string) }
---@return boolean? ok, string? message
function M.install(opts)
  opts = opts or {}
  local util = require("distant.util")
  if vim.fn.executable("cargo") ~= 1 then
    local message = "cannot build distant-bridge: cargo is not installed (https://rustup.rs), "
      .. "or install distant-bridge yourself and set `bridge` in setup()"
    util.error(message)
    if opts.on_done then
      opts.on_done(false, message)
    end
    return false, message
  end
  local cmds = M.commands(opts.debug)
  -- Share the repository's target directory: a second build is incremental.
  local env = { CARGO_TARGET_DIR = M.root() .. "/target" }
  local done_ok, done_message
  local function finish(ok, message)
    done_ok, done_message = ok, message
    if ok then
      util.notify(message)
    else
      util.error(message)
    end
    if opts.on_done then
      opts.on_done(ok, message)
    end
  end
  local function step(i)
    if i > #cmds then
      finish(true, "distant: installed " .. M.bridge_path())
      return
    end
    util.notify(("distant: building %s (%s)"):format(cmds[i][5], table.concat(cmds[i], " ")))
    vim.system(cmds[i], { text = true, env = env }, function(result)
      vim.schedule(function()
        if result.code ~= 0 then
          local tail = vim.split(vim.trim(result.stderr or ""), "\n")
          finish(
            false,
            ("distant: `%s` failed (exit %d): %s"):format(
              table.concat(cmds[i], " "),
              result.code,
              table.concat(vim.list_slice(tail, math.max(1, #tail - 4)), "\n")
            )
          )
        else
          step(i + 1)
        end
      end)
    end)
  end
  step(1)
  if opts.wait then
    vim.wait(30 * 60 * 1000, function()
      return done_ok ~= nil
    end, 200)
    return done_ok, done_message
  end
end

return M
