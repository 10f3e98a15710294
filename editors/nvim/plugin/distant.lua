-- distant: user commands and the `distant://` autocmds. Everything is
-- loaded lazily on first use; defining these costs nothing at startup.

if vim.g.loaded_distant then
  return
end
vim.g.loaded_distant = true

local function guarded(fn)
  return function(...)
    require("distant.util").guard(fn, ...)
  end
end

local group = vim.api.nvim_create_augroup("distant", { clear = true })

vim.api.nvim_create_autocmd("BufReadCmd", {
  group = group,
  pattern = "distant://*",
  desc = "distant: read a remote file or directory",
  callback = guarded(function(ev)
    require("distant.buffer").read(ev.buf)
  end),
})

vim.api.nvim_create_autocmd("BufWriteCmd", {
  group = group,
  pattern = "distant://*",
  desc = "distant: write a remote file",
  callback = guarded(function(ev)
    local target = ev.match ~= vim.api.nvim_buf_get_name(ev.buf) and ev.match or nil
    require("distant.buffer").write(ev.buf, target, vim.v.cmdbang == 1)
  end),
})

vim.api.nvim_create_autocmd("FileReadCmd", {
  group = group,
  pattern = "distant://*",
  desc = "distant: :read a remote file",
  callback = guarded(function(ev)
    -- :read puts the text below the cursor line ('[ is not set yet).
    require("distant.buffer").read_into(ev.match, vim.fn.line("."))
  end),
})

vim.api.nvim_create_autocmd("FileWriteCmd", {
  group = group,
  pattern = "distant://*",
  desc = "distant: write a range of lines to a remote file",
  callback = guarded(function(ev)
    local range = { vim.fn.line("'["), vim.fn.line("']") }
    require("distant.buffer").write(ev.buf, ev.match, vim.v.cmdbang == 1, range)
  end),
})

local function command(name, fn, opts)
  vim.api.nvim_create_user_command(name, guarded(fn), opts)
end

local function remote_complete()
  return { "local", "distant://", "ssh://" }
end

command("DistantConnect", function(args)
  require("distant.client").connect(args.args)
  require("distant.util").notify("connected to " .. args.args)
end, { nargs = 1, complete = remote_complete, desc = "distant: connect to local, distant://… or ssh://…" })

command("DistantDisconnect", function()
  require("distant").disconnect()
end, { nargs = 0, desc = "distant: close the connection" })

command("DistantStatus", function()
  vim.api.nvim_echo({ { require("distant").status() } }, false, {})
end, { nargs = 0, desc = "distant: show the connection state" })

command("DistantOpen", function(args)
  local distant = require("distant")
  require("distant.dir").open(distant.resolve(args.args ~= "" and args.args or "."))
end, { nargs = "?", desc = "distant: open a remote file or directory" })

command("DistantMkdir", function(args)
  require("distant.dir").ops.mkdir(require("distant").resolve(args.args))
  require("distant.dir").refresh_all()
end, { nargs = 1, desc = "distant: create a remote directory (and its parents)" })

command("DistantRemove", function(args)
  require("distant.dir").ops.remove(require("distant").resolve(args.args), args.bang)
  require("distant.dir").refresh_all()
end, { nargs = 1, bang = true, desc = "distant: remove a remote file (! : a directory and its contents)" })

command("DistantRename", function(args)
  local distant = require("distant")
  require("distant.dir").ops.rename(distant.resolve(args.fargs[1]), distant.resolve(args.fargs[2]))
  require("distant.dir").refresh_all()
end, { nargs = "+", desc = "distant: rename SRC DST" })

command("DistantCopy", function(args)
  local distant = require("distant")
  require("distant.dir").ops.copy(distant.resolve(args.fargs[1]), distant.resolve(args.fargs[2]))
  require("distant.dir").refresh_all()
end, { nargs = "+", desc = "distant: copy SRC DST" })

command("DistantSearch", function(args)
  local distant = require("distant")
  local pattern, path = args.fargs[1], args.fargs[2]
  require("distant.search").start(pattern, distant.resolve(path or "."))
  vim.cmd("botright copen")
end, { nargs = "+", desc = "distant: search contents for PATTERN [under PATH] into quickfix" })

command("DistantSearchCancel", function()
  require("distant.search").cancel()
end, { nargs = 0, desc = "distant: cancel the running search" })

command("DistantShell", function(args)
  require("distant.shell").shell(#args.fargs > 0 and args.fargs or nil)
end, { nargs = "*", desc = "distant: remote shell (or CMD) in a terminal buffer" })

command("DistantInstall", function(args)
  require("distant.install").install({ debug = args.bang })
end, {
  nargs = 0,
  bang = true,
  desc = "distant: build distant-bridge and distant-server with cargo into the plugin's data dir (! : debug build)",
})

command("DistantSpawn", function(args)
  require("distant.shell").spawn(args.args)
end, { nargs = "+", desc = "distant: run CMD remotely, output in a scratch buffer" })

command("DistantFind", function(args)
  local distant = require("distant")
  local query, path = args.fargs[1] or "", args.fargs[2]
  require("distant.find").find(query, distant.resolve(path or "."))
end, { nargs = "*", desc = "distant: find a remote file by fuzzy name: [QUERY [ROOT]]" })

command("DistantGrep", function(args)
  require("distant.grep").open(require("distant").resolve(args.args ~= "" and args.args or "."))
end, { nargs = "?", desc = "distant: live search under [PATH] into quickfix as you type" })

command("DistantGit", function(args)
  require("distant.git").show(require("distant").resolve(args.args ~= "" and args.args or "."))
end, { nargs = "?", desc = "distant: changed files of the remote git repository at [PATH]; = diffs against HEAD" })

command("DistantForward", function(args)
  require("distant.forward").open(args.args)
end, { nargs = 1, desc = "distant: forward a local port to a remote one: [LOCAL:][HOST:]PORT" })

command("DistantForwards", function()
  local forward = require("distant.forward")
  vim.api.nvim_echo({ { table.concat(forward.format(forward.list()), "\n") } }, false, {})
end, { nargs = 0, desc = "distant: list the port forwards" })

command("DistantForwardClose", function(args)
  require("distant.forward").close(args.args)
end, { nargs = 1, desc = "distant: close the forward on local port LOCAL" })
