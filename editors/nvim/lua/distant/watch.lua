-- distant.watch: reload-on-remote-change. Watches the directory of every
-- loaded remote file (one `fs/watch` per directory, shared; a directory
-- watch survives the rename-over of atomic saves, a file watch would not)
-- and, when a file with a buffer changes: reload it if unmodified and
-- 'autoread' is set, ask if unmodified otherwise, warn if modified.
-- Changes our own writes caused are recognised by their etag and ignored.

local client = require("distant.client")
local util = require("distant.util")

local M = {}

---@type table<string, {id: string?, pending: boolean}> directory → watch
local watches = {}
---@type table<string, string> watch id → directory
local dirs_by_id = {}
local registered = false
---@type table<integer, boolean> buffers with a check already scheduled
local scheduled = {}

local function buffers_for(path)
  local found = {}
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.b[bufnr].distant_path == path and not vim.b[bufnr].distant_dir then
      table.insert(found, bufnr)
    end
  end
  return found
end

local function autoread(bufnr)
  local ok, value = pcall(vim.api.nvim_get_option_value, "autoread", { buf = bufnr })
  if ok and value ~= nil then
    return value
  end
  return vim.o.autoread
end

--- Decides what to do about a buffer whose file may have changed.
local function check(bufnr)
  scheduled[bufnr] = nil
  if not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  if vim.b[bufnr].distant_writing then
    -- Our own save is in flight; look again once its etag is known.
    scheduled[bufnr] = true
    vim.defer_fn(function()
      util.guard(check, bufnr)
    end, 50)
    return
  end
  local path = vim.b[bufnr].distant_path
  client.request("fs/metadata", { path = path, followSymlinks = true }, function(err, meta)
    if not vim.api.nvim_buf_is_loaded(bufnr) then
      return
    end
    local etag = (not err and meta) and meta.etag or nil
    if etag == vim.b[bufnr].distant_etag or (etag and etag == vim.b[bufnr].distant_seen_etag) then
      return -- our own write, or a touch that changed nothing we track
    end
    if err and vim.b[bufnr].distant_etag == "" then
      return -- still does not exist
    end
    local what = err and "was deleted" or "changed"
    if vim.bo[bufnr].modified then
      util.warn(
        ("%s %s on the remote, and the buffer has unsaved changes; :write! keeps yours, :edit! takes theirs"):format(
          path,
          what
        )
      )
      return
    end
    if err then
      util.warn(path .. " was deleted on the remote; :write saves the buffer again")
      vim.b[bufnr].distant_etag = ""
      return
    end
    if autoread(bufnr) then
      util.guard(function()
        require("distant.buffer").reload(bufnr, meta)
        util.notify(path .. " reloaded (changed on the remote)")
      end)
    else
      vim.ui.select({ "Reload", "Keep" }, { prompt = path .. " changed on the remote:" }, function(choice)
        if choice == "Reload" then
          util.guard(require("distant.buffer").reload, bufnr, meta)
        else
          -- Keep: take the new etag as seen so we do not ask again; the
          -- next :write still conflicts (it checks the real etag).
          vim.b[bufnr].distant_seen_etag = etag
        end
      end)
    end
  end)
end

local function on_changed(params)
  local dir = dirs_by_id[params.watch]
  if not dir then
    return
  end
  for _, change in ipairs(params.changes or {}) do
    for _, path in ipairs({ change.path, change.to }) do
      if path then
        for _, bufnr in ipairs(buffers_for(path)) do
          if not scheduled[bufnr] then
            -- Debounce: a save is several events (create, modify, rename).
            scheduled[bufnr] = true
            vim.defer_fn(function()
              util.guard(check, bufnr)
            end, 50)
          end
        end
      end
    end
  end
end

local function on_ended(params)
  local dir = dirs_by_id[params.watch]
  if dir then
    dirs_by_id[params.watch] = nil
    watches[dir] = nil
  end
end

--- Starts watching the directory of `bufnr`'s file (once per directory).
---@param bufnr integer
function M.add(bufnr)
  if not registered then
    registered = true
    client.on("fs/changed", on_changed)
    client.on("fs/watchEnded", on_ended)
    client.on("$connected", M.rewatch)
  end
  local path = vim.b[bufnr].distant_path
  if not path then
    return
  end
  local dir = util.dirname(path)
  local existing = watches[dir]
  if existing and existing.connection == client.connection then
    return
  end
  local entry = { pending = true, connection = client.connection }
  watches[dir] = entry
  client.request("fs/watch", { path = dir }, function(err, result)
    entry.pending = false
    if err then
      watches[dir] = nil
      return -- watching is best effort; the etag still guards saves
    end
    entry.id = result.watch
    dirs_by_id[result.watch] = dir
  end)
end

--- Watches again for every loaded remote file (after a new connection:
--- watches belonged to the old one).
function M.rewatch()
  watches, dirs_by_id = {}, {}
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.b[bufnr].distant_path and not vim.b[bufnr].distant_dir then
      M.add(bufnr)
    end
  end
end

--- Stops every watch (on disconnect).
function M.clear()
  for id in pairs(dirs_by_id) do
    pcall(client.request, "fs/unwatch", { watch = id }, function() end)
  end
  watches, dirs_by_id = {}, {}
end

--- Directories watched (for :checkhealth and tests).
function M.watched()
  local dirs = {}
  for dir, entry in pairs(watches) do
    if entry.id then
      table.insert(dirs, dir)
    end
  end
  return dirs
end

return M
