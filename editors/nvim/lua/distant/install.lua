-- distant.install: brings the plugin's own bridge. Builds `distant-bridge`
-- and `distant-server` with cargo in the distant repository this plugin
-- lives in (editors/nvim is two levels below its root) and copies them into
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

--- The cargo command that builds both binaries in the repository
--- (`debug`: the dev profile, what the repository's tests build; else
--- release), and the directory they land in.
---@param debug? boolean
---@return string[] cmd, string outdir
function M.build_command(debug)
  local cmd = { "cargo", "build", "--locked", "-p", "distant-bridge", "-p", "distant-server", "--bins" }
  if not debug then
    table.insert(cmd, "--release")
  end
  return cmd, M.root() .. "/target/" .. (debug and "debug" or "release")
end

--- The command line a person would type (for messages).
---@return string
function M.command_line()
  local cmd, outdir = M.build_command()
  return ("cd %s && %s && cp %s/distant-bridge %s/distant-server %s/bin/"):format(
    M.root(),
    table.concat(cmd, " "),
    outdir,
    outdir,
    M.prefix()
  )
end

--- Copies `src` to `dst` through a temporary name (a running bridge keeps
--- its old file), executable.
local function put(src, dst)
  local tmp = dst .. ".tmp"
  local ok, err = vim.uv.fs_copyfile(src, tmp)
  if not ok then
    return false, err
  end
  vim.uv.fs_chmod(tmp, tonumber("755", 8))
  return vim.uv.fs_rename(tmp, dst)
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
  local cmd, outdir = M.build_command(opts.debug)
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
  local function step()
    util.notify(("distant: building distant-bridge and distant-server (%s)"):format(table.concat(cmd, " ")))
    vim.system(cmd, { text = true, cwd = M.root() }, function(result)
      vim.schedule(function()
        if result.code ~= 0 then
          local tail = vim.split(vim.trim(result.stderr or ""), "\n")
          finish(
            false,
            ("distant: `%s` failed (exit %d): %s"):format(
              table.concat(cmd, " "),
              result.code,
              table.concat(vim.list_slice(tail, math.max(1, #tail - 4)), "\n")
            )
          )
          return
        end
        vim.fn.mkdir(M.prefix() .. "/bin", "p")
        for _, name in ipairs({ "distant-server", "distant-bridge" }) do
          local ok, err = put(outdir .. "/" .. name, M.prefix() .. "/bin/" .. name)
          if not ok then
            finish(false, ("distant: cannot install %s into %s/bin: %s"):format(name, M.prefix(), tostring(err)))
            return
          end
        end
        finish(true, "distant: installed " .. M.bridge_path())
      end)
    end)
  end
  step()
  if opts.wait then
    vim.wait(30 * 60 * 1000, function()
      return done_ok ~= nil
    end, 200)
    return done_ok, done_message
  end
end

return M
