-- distant.dir: directory buffers. A `distant://DIR` buffer lists DIR's
-- entries one per line (directories end in `/`); keys open, go up, and
-- create, rename, delete or copy entries. Also the file operations behind
-- :DistantMkdir/:DistantRemove/:DistantRename/:DistantCopy.

local client = require("distant.client")
local config = require("distant.config")
local util = require("distant.util")

local M = {}

local function list(path)
  local result = client.request_sync("fs/readDir", { path = path })
  local entries = {}
  for _, entry in ipairs(result.entries) do
    table.insert(entries, { name = entry.path, type = entry.type })
  end
  -- Directories first, then files, each alphabetically.
  table.sort(entries, function(a, b)
    if (a.type == "dir") ~= (b.type == "dir") then
      return a.type == "dir"
    end
    return a.name < b.name
  end)
  return entries
end

--- Whether `bufnr` is a directory buffer.
function M.is_dir_buffer(bufnr)
  return vim.b[bufnr].distant_dir ~= nil
end

--- Fills `bufnr` with the listing of `path`.
---@param bufnr integer
---@param path string
function M.render(bufnr, path)
  local entries = list(path)
  local lines = {}
  for _, entry in ipairs(entries) do
    table.insert(lines, entry.name .. (entry.type == "dir" and "/" or ""))
  end
  local bo = vim.bo[bufnr]
  vim.b[bufnr].distant_dir = path
  vim.b[bufnr].distant_path = path
  bo.buftype = "nofile"
  bo.bufhidden = "hide"
  bo.swapfile = false
  bo.modifiable = true
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  bo.modifiable = false
  bo.modified = false
  bo.filetype = "distant-dir"
  M.set_keymaps(bufnr)
end

--- Re-lists every loaded directory buffer (after an operation).
function M.refresh_all()
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and M.is_dir_buffer(bufnr) then
      -- Keep each window's cursor line (clamped to the new listing).
      local cursors = {}
      for _, win in ipairs(vim.fn.win_findbuf(bufnr)) do
        cursors[win] = vim.api.nvim_win_get_cursor(win)[1]
      end
      M.render(bufnr, vim.b[bufnr].distant_dir)
      local count = vim.api.nvim_buf_line_count(bufnr)
      for win, row in pairs(cursors) do
        pcall(vim.api.nvim_win_set_cursor, win, { math.min(row, count), 0 })
      end
    end
  end
end

--- Opens a remote path in the current window (directories re-listed).
---@param path string
function M.open(path)
  vim.cmd.edit(vim.fn.fnameescape(util.to_name(path)))
  local bufnr = vim.api.nvim_get_current_buf()
  if M.is_dir_buffer(bufnr) then
    -- :edit of a loaded directory buffer only switches to it: list afresh.
    M.render(bufnr, vim.b[bufnr].distant_dir)
  end
end

local function current_dir()
  local dir = vim.b.distant_dir
  if not dir then
    util.fail("not a distant directory buffer")
  end
  return dir
end

--- The entry under the cursor as {name, path, is_dir}, or nil on a blank line.
local function entry_under_cursor()
  local line = vim.api.nvim_get_current_line()
  if line == "" then
    return nil
  end
  local is_dir = line:sub(-1) == "/"
  local name = is_dir and line:sub(1, -2) or line
  return { name = name, path = util.join(current_dir(), name), is_dir = is_dir }
end

--- Asks for a string; `nil` when cancelled. vim.ui.input lets pickers (and
--- tests) replace the prompt.
local function ask(prompt, default)
  local answer
  vim.ui.input({ prompt = prompt, default = default }, function(input)
    answer = input
  end)
  if answer == nil or answer == "" then
    return nil
  end
  return answer
end

local function confirm(question)
  local yes = false
  vim.ui.select({ "Yes", "No" }, { prompt = question }, function(choice)
    yes = choice == "Yes"
  end)
  return yes
end

-- Operations: usable from Lua, the commands and the directory keys. Paths
-- are absolute remote paths.
M.ops = {}

function M.ops.mkdir(path)
  client.request_sync("fs/createDir", { path = path, all = true })
end

function M.ops.touch(path)
  client.request_sync("fs/write", { path = path, data = "", overwrite = false })
end

function M.ops.remove(path, force)
  client.request_sync("fs/remove", { path = path, force = force or false })
end

function M.ops.rename(src, dst)
  client.request_sync("fs/rename", { src = src, dst = dst })
  -- A buffer of the old path now shows the new one.
  local bufnr = vim.fn.bufnr(util.to_name(src))
  if bufnr ~= -1 and not M.is_dir_buffer(bufnr) then
    vim.api.nvim_buf_set_name(bufnr, util.to_name(dst))
    vim.b[bufnr].distant_path = dst
  end
end

function M.ops.copy(src, dst)
  client.request_sync("fs/copy", { src = src, dst = dst })
end

-- Directory-buffer actions (the keys).
M.actions = {}

function M.actions.open()
  local entry = entry_under_cursor()
  if entry then
    M.open(entry.path)
  end
end

function M.actions.parent()
  -- From a directory: its parent; from a file: its directory. Either way
  -- the cursor lands on where we came from.
  local here = vim.b.distant_dir or vim.b.distant_path
  if not here then
    util.fail("not a distant buffer")
  end
  local is_dir = vim.b.distant_dir ~= nil
  M.open(util.dirname(here))
  local wanted = util.basename(here) .. (is_dir and "/" or "")
  for i, line in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
    if line == wanted then
      vim.api.nvim_win_set_cursor(0, { i, 0 })
      break
    end
  end
end

function M.actions.refresh()
  M.render(vim.api.nvim_get_current_buf(), current_dir())
end

function M.actions.new_file()
  local name = ask("New file: ")
  if name then
    M.ops.touch(util.join(current_dir(), name))
    M.refresh_all()
  end
end

function M.actions.mkdir()
  local name = ask("New directory: ")
  if name then
    M.ops.mkdir(util.join(current_dir(), name))
    M.refresh_all()
  end
end

--- Asks for a new name for the entry under the cursor and hands both
--- paths to `op` (rename or copy).
local function transfer(prompt, op)
  local entry = entry_under_cursor()
  if not entry then
    return
  end
  local target = ask(prompt, entry.name)
  if target and target ~= entry.name then
    op(entry.path, util.join(current_dir(), target))
    M.refresh_all()
  end
end

function M.actions.rename()
  transfer("Rename to: ", M.ops.rename)
end

function M.actions.delete()
  local entry = entry_under_cursor()
  if entry and confirm(("Delete %s%s?"):format(entry.path, entry.is_dir and " and everything in it" or "")) then
    M.ops.remove(entry.path, entry.is_dir)
    M.refresh_all()
  end
end

function M.actions.copy()
  transfer("Copy to: ", M.ops.copy)
end

function M.set_keymaps(bufnr)
  for action, lhs in pairs(config.options.keymaps) do
    if lhs and M.actions[action] then
      vim.keymap.set("n", lhs, util.guarded(M.actions[action]), {
        buffer = bufnr,
        nowait = true,
        desc = "distant: " .. action:gsub("_", " "),
      })
    end
  end
end

return M
