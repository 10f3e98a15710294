-- Times what a user waits for in Neovim: `:edit` of a remote file until the
-- buffer is loaded, and `:write` until it is saved, through one transport.
--
--   nvim -l bench/editor/open_save.lua MODE FILE REPS [ARGS…]
--
-- MODE:
--   local                   FILE on this disk (the floor)
--   distant BRIDGE DEST     the distant plugin: :edit distant://FILE over DEST
--                           (`local` or ssh://…; SSH_KEY in the environment
--                           adds `-i KEY` for ssh)
--   scp USER@HOST:PORT      Neovim's own netrw over OpenSSH's scp
--                           (SSH_KEY in the environment)
--
-- Prints one line: `MODE connect_ms open_ms… | save_ms…` (one per rep).
local mode, file, reps = arg[1], arg[2], tonumber(arg[3])
local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h")
local repo = vim.fn.fnamemodify(here, ":h:h")
vim.o.swapfile = false
vim.o.hidden = true
vim.o.more = false
vim.o.shortmess = vim.o.shortmess .. "F"

local function ms(t0)
  return (vim.uv.hrtime() - t0) / 1e6
end

local ssh_opts = { "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR" }
local name, connect_ms = nil, 0
if mode == "local" then
  name = file
elseif mode == "distant" then
  vim.opt.runtimepath:prepend(repo .. "/editors/nvim")
  vim.cmd("runtime plugin/distant.lua")
  local options = nil
  if arg[5]:find("^ssh://") then
    options = { ssh = vim.list_extend({ "-i", vim.env.SSH_KEY }, ssh_opts) }
  end
  require("distant").setup({ bridge = arg[4], watch = false, connect_options = options })
  local errors = {}
  vim.notify = function(msg, level)
    if (level or 0) >= vim.log.levels.WARN then
      table.insert(errors, msg)
    end
  end
  local t0 = vim.uv.hrtime()
  vim.cmd("DistantConnect " .. arg[5])
  connect_ms = ms(t0)
  assert(require("distant.client").state == "connected", table.concat(errors, "\n"))
  name = "distant://" .. file
elseif mode == "scp" then
  vim.cmd("runtime plugin/netrwPlugin.vim")
  local user_host, port = arg[4]:match("^(.*):(%d+)$")
  vim.g.netrw_scp_cmd = "scp -q -i " .. vim.env.SSH_KEY .. " " .. table.concat(ssh_opts, " ")
  name = ("scp://%s:%s/%s"):format(user_host, port, file)
else
  error("unknown mode " .. tostring(mode))
end

local opens, saves = {}, {}
local expected = vim.fn.getfsize(file)
for _ = 1, reps do
  local t0 = vim.uv.hrtime()
  vim.cmd.edit(vim.fn.fnameescape(name))
  table.insert(opens, ms(t0))
  local lines = vim.api.nvim_buf_line_count(0)
  assert(lines > 1, ("%s: the buffer was not loaded (%d lines)"):format(name, lines))
  vim.api.nvim_buf_set_lines(0, 0, 1, false, { vim.api.nvim_buf_get_lines(0, 0, 1, false)[1] })
  vim.bo.modified = true
  t0 = vim.uv.hrtime()
  vim.cmd.write()
  table.insert(saves, ms(t0))
  assert(vim.fn.getfsize(file) == expected, "the saved file has another size")
  vim.cmd("bwipeout!")
end

local function fmt(list)
  return table.concat(
    vim.tbl_map(function(v)
      return ("%.1f"):format(v)
    end, list),
    " "
  )
end
io.stdout:write(("%s %.1f %s | %s\n"):format(mode, connect_ms, fmt(opens), fmt(saves)))
if mode == "distant" then
  require("distant").disconnect()
end
