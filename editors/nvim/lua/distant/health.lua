-- distant.health: `:checkhealth distant` — the bridge (found, runs, its
-- version; what to run when it is missing), the connection state, and the
-- configured language servers.

local M = {}

function M.check()
  local health = vim.health
  local config = require("distant.config")
  local client = package.loaded["distant.client"]

  health.start("distant: Neovim")
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. tostring(vim.version()))
  else
    health.error("Neovim 0.10 or newer is needed")
  end

  health.start("distant: bridge")
  local install = require("distant.install")
  local exe, bridge = install.find_bridge()
  if not exe then
    local advice = {
      "Run :DistantInstall: it builds it with cargo into " .. install.bridge_path(),
      "(the command it runs: " .. install.command_line() .. ")",
      "Or set `bridge` in require('distant').setup({ bridge = '/path/to/distant-bridge' })",
    }
    if vim.fn.executable("cargo") ~= 1 then
      table.insert(advice, 1, "cargo is not installed: get it from https://rustup.rs first")
    end
    health.error(
      ("`%s` not found or not executable, and %s is not there"):format(bridge, install.bridge_path()),
      advice
    )
  else
    local ok, result = pcall(function()
      return vim.system({ exe, "--version" }, { text = true }):wait(5000)
    end)
    if ok and result.code == 0 then
      health.ok(("%s (%s)"):format(vim.trim(result.stdout), exe))
    else
      health.error(("`%s --version` failed: %s"):format(exe, ok and (result.stderr or "") or tostring(result)))
    end
  end

  health.start("distant: connection")
  if not client or not client.connection then
    health.info("not connected (:DistantConnect local | distant://HOST:PORT | ssh://HOST)")
  elseif client.state == "connected" then
    health.ok(require("distant").status())
    if client.server then
      health.info(("server %s, protocol %s"):format(client.server.version or "?", client.server.protocolVersion or "?"))
    end
  else
    health.warn(require("distant").status())
  end

  health.start("distant: language servers")
  local servers = config.options.servers
  if not next(servers) then
    health.info("none configured (setup({ servers = { pylsp = { cmd = {'pylsp'}, filetypes = {'python'} } } }))")
  end
  for name, server in pairs(servers) do
    local problems = {}
    if type(server.cmd) ~= "table" or #server.cmd == 0 then
      table.insert(problems, "`cmd` must be a non-empty list")
    end
    if type(server.filetypes) ~= "table" or #server.filetypes == 0 then
      table.insert(problems, "`filetypes` must be a non-empty list")
    end
    if #problems > 0 then
      health.error(name .. ": " .. table.concat(problems, "; "))
    elseif client and client.state == "connected" then
      -- Is the server's program there on the remote?
      local ok, result = pcall(function()
        return require("distant.shell").run({ "/bin/sh", "-c", 'command -v "$0"', server.cmd[1] })
      end)
      if ok and result.code == 0 then
        health.ok(
          ("%s: %s on the remote, for %s"):format(name, vim.trim(result.stdout), table.concat(server.filetypes, ", "))
        )
      else
        health.warn(("%s: `%s` not found on the remote"):format(name, server.cmd[1]), {
          "Install it on the remote machine, or give its full path in `cmd`",
        })
      end
    else
      health.ok(
        ("%s: %s for %s (runs on the remote)"):format(
          name,
          table.concat(server.cmd, " "),
          table.concat(server.filetypes, ", ")
        )
      )
    end
  end
  local watched = package.loaded["distant.watch"] and package.loaded["distant.watch"].watched() or {}
  health.start("distant: watch")
  health.info(
    config.options.watch and ("on; %d directories watched"):format(#watched)
      or "off (setup({ watch = true }) reloads buffers changed on the remote)"
  )
end

return M
