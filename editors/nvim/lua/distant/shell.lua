-- distant.shell: remote processes in buffers. :DistantShell runs a command
-- (default: the remote user's shell) on a remote PTY shown in a terminal
-- buffer (nvim_open_term; keys → proc/stdin, window size → proc/resize);
-- :DistantSpawn runs a command without a PTY into a scratch buffer.

local client = require("distant.client")
local util = require("distant.util")

local M = {}

---@class distant.Proc
---@field id string?
---@field bufnr integer
---@field chan integer? terminal channel (shell only)
---@field pty boolean
---@field exited boolean
---@field code integer?
---@field pending string[] output that arrived before the id was known

---@type table<string, distant.Proc> by proc id
local procs = {}
local registered = false

--- A :DistantSpawn buffer keeps the last this many lines, as a terminal's
--- scrollback does: a command that prints forever cannot fill memory.
M.max_scratch_lines = 100000
--- Output without a newline is cut into lines of this length.
M.max_partial_line = 64 * 1024

local function append_scratch(proc, text)
  local bufnr = proc.bufnr
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  proc.partial = (proc.partial or "") .. text:gsub("\r\n", "\n")
  local lines = vim.split(proc.partial, "\n", { plain = true })
  proc.partial = table.remove(lines) -- the unfinished last line
  while #proc.partial > M.max_partial_line do
    table.insert(lines, proc.partial:sub(1, M.max_partial_line))
    proc.partial = proc.partial:sub(M.max_partial_line + 1)
  end
  if #lines > 0 then
    vim.bo[bufnr].modifiable = true
    local last = vim.api.nvim_buf_line_count(bufnr)
    local first_line = vim.api.nvim_buf_get_lines(bufnr, 0, 1, false)[1]
    if last == 1 and first_line == "" then
      vim.api.nvim_buf_set_lines(bufnr, 0, 1, false, lines)
    else
      vim.api.nvim_buf_set_lines(bufnr, -1, -1, false, lines)
    end
    local excess = vim.api.nvim_buf_line_count(bufnr) - M.max_scratch_lines
    if excess > 0 then
      vim.api.nvim_buf_set_lines(bufnr, 0, excess, false, {})
    end
    vim.bo[bufnr].modifiable = false
  end
end

local function on_output(params)
  local proc = procs[params.proc]
  if not proc then
    return
  end
  local bytes = util.decode_data(params.data, params.encoding)
  if proc.out then
    table.insert(proc.out[params.stream] or proc.out.stdout, bytes)
    return
  end
  if not vim.api.nvim_buf_is_valid(proc.bufnr) then
    return -- its buffer was wiped; the process is being killed
  end
  if proc.chan then
    vim.api.nvim_chan_send(proc.chan, bytes)
  else
    append_scratch(proc, bytes)
  end
end

local function on_exit(params)
  local proc = procs[params.proc]
  if not proc then
    return
  end
  proc.exited = true
  proc.code = params.code
  if proc.out then
    procs[params.proc] = nil
    return
  end
  local status = params.error and ("lost: " .. params.error)
    or (params.signal and ("killed by " .. tostring(params.signal)))
    or ("exit code " .. tostring(params.code))
  if proc.chan then
    pcall(vim.api.nvim_chan_send, proc.chan, ("\r\n[Process exited: %s]\r\n"):format(status))
  else
    if proc.partial and proc.partial ~= "" then
      append_scratch(proc, "\n")
    end
    append_scratch(proc, ("[%s]\n"):format(status))
  end
  if vim.api.nvim_buf_is_valid(proc.bufnr) then
    vim.b[proc.bufnr].distant_exit_code = params.code
  end
  procs[params.proc] = nil
end

local function register()
  if registered then
    return
  end
  registered = true
  client.on("proc/output", on_output)
  client.on("proc/exit", on_exit)
  vim.api.nvim_create_autocmd({ "WinResized", "VimResized" }, {
    group = vim.api.nvim_create_augroup("distant.shell", { clear = true }),
    callback = function()
      for id, proc in pairs(procs) do
        if proc.pty then
          M.resize(id)
        end
      end
    end,
  })
end

--- The remote directory the current buffer stands for (a directory
--- buffer, or a remote file's directory), else nil (the remote's own).
local function current_remote_dir()
  return vim.b.distant_dir or (vim.b.distant_path and util.dirname(vim.b.distant_path)) or nil
end

local function window_size(bufnr)
  local win = vim.fn.win_findbuf(bufnr)[1]
  if not win then
    return nil
  end
  return { rows = vim.api.nvim_win_get_height(win), cols = vim.api.nvim_win_get_width(win) }
end

--- Sends the PTY the size of the window showing it.
function M.resize(id)
  local proc = procs[id]
  local size = proc and window_size(proc.bufnr)
  if size and (not proc.size or proc.size.rows ~= size.rows or proc.size.cols ~= size.cols) then
    proc.size = size
    pcall(client.request, "proc/resize", { proc = id, rows = size.rows, cols = size.cols }, function() end)
  end
end

--- Starts `cmd` remotely and hooks its streams to `proc` once the id is
--- known (in the answer's callback, which runs before any output).
local function spawn(proc, params)
  register()
  client.request("proc/spawn", params, function(err, result)
    if err then
      local message = ("cannot run %s: %s"):format(table.concat(params.cmd, " "), err.message or tostring(err))
      util.error(message)
      proc.exited = true
      if proc.chan then
        pcall(vim.api.nvim_chan_send, proc.chan, "[" .. message .. "]\r\n")
      end
      return
    end
    proc.id = result.proc
    procs[result.proc] = proc
    if not vim.api.nvim_buf_is_valid(proc.bufnr) then
      pcall(client.request, "proc/kill", { proc = result.proc, signal = "KILL" }, function() end)
      return
    end
    vim.b[proc.bufnr].distant_proc = result.proc
    -- Closing the buffer ends the remote process, as :bwipeout of a
    -- :terminal does.
    vim.api.nvim_create_autocmd({ "BufWipeout", "BufDelete" }, {
      buffer = proc.bufnr,
      once = true,
      callback = function()
        if not proc.exited then
          pcall(client.request, "proc/kill", { proc = result.proc, signal = "KILL" }, function() end)
        end
      end,
    })
  end)
end

--- Keys typed in terminal mode go to the remote PTY, in order (scheduled:
--- on_input may run where requests cannot be sent).
---@param proc distant.Proc|integer a process, or the bufnr of its terminal
---@param data string
function M.type_keys(proc, data)
  if type(proc) == "number" then
    local id = vim.b[proc].distant_proc
    proc = id and procs[id]
    if not proc then
      return
    end
  end
  vim.schedule(function()
    if proc.id and not proc.exited then
      pcall(client.request, "proc/stdin", { proc = proc.id, data = data }, function() end)
    end
  end)
end

--- Opens a terminal buffer in the current window running `cmd` (an argv;
--- default the remote user's shell) on a remote PTY.
---@param cmd? string[]
---@return integer bufnr
function M.shell(cmd)
  if not cmd or #cmd == 0 then
    local sys = client.system or {}
    cmd = { sys.shell ~= nil and sys.shell ~= "" and sys.shell or "/bin/sh" }
  end
  local cwd = current_remote_dir()
  local bufnr = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_win_set_buf(0, bufnr)
  local proc = { bufnr = bufnr, pty = true, exited = false }
  proc.chan = vim.api.nvim_open_term(bufnr, {
    on_input = function(_, _, _, data)
      M.type_keys(proc, data)
    end,
  })
  pcall(vim.api.nvim_buf_set_name, bufnr, ("distant-term://%s//%s"):format(bufnr, table.concat(cmd, " ")))
  local size = window_size(bufnr) or { rows = 24, cols = 80 }
  proc.size = size
  spawn(proc, { cmd = cmd, pty = size, cwd = cwd, env = { TERM = "xterm-256color" } })
  return bufnr
end

--- Sends text to the process of a shell/spawn buffer (as if typed).
---@param bufnr integer
---@param data string
function M.send(bufnr, data)
  local id = vim.b[bufnr].distant_proc
  if not id then
    util.fail("no running remote process in this buffer")
  end
  client.request_sync("proc/stdin", { proc = id, data = data })
end

--- Runs `command` through the remote's /bin/sh without a PTY; its output
--- goes to a scratch buffer in a split, then `[exit code N]`.
---@param command string
---@return integer bufnr
function M.spawn(command)
  local cwd = current_remote_dir()
  local bufnr = vim.api.nvim_create_buf(false, true)
  vim.bo[bufnr].bufhidden = "wipe"
  pcall(vim.api.nvim_buf_set_name, bufnr, ("distant-spawn://%d/%s"):format(bufnr, command))
  vim.cmd("botright split")
  vim.api.nvim_win_set_buf(0, bufnr)
  vim.bo[bufnr].modifiable = false
  local proc = { bufnr = bufnr, pty = false, exited = false }
  spawn(proc, { cmd = { "/bin/sh", "-c", command }, cwd = cwd })
  return bufnr
end

--- Runs `cmd` (an argv) remotely and waits for it: {code, stdout, stderr}.
--- For short probes (:checkhealth); raises a user error on timeout.
---@param cmd string[]
---@param timeout? integer ms
function M.run(cmd, timeout)
  register()
  local proc = { bufnr = -1, pty = false, exited = false, out = { stdout = {}, stderr = {} } }
  local failed
  client.request("proc/spawn", { cmd = cmd }, function(err, result)
    if err then
      failed = err.message or tostring(err)
      return
    end
    proc.id = result.proc
    procs[result.proc] = proc
  end)
  local done = vim.wait(timeout or 5000, function()
    return failed ~= nil or proc.exited
  end, 5)
  if failed then
    util.fail(failed)
  elseif not done then
    util.fail(table.concat(cmd, " ") .. " did not finish in time")
  end
  return { code = proc.code, stdout = table.concat(proc.out.stdout), stderr = table.concat(proc.out.stderr) }
end

return M
