-- distant.find: :DistantFind — find a remote file by name. Keeps one file
-- index per root (`fs/index` with `follow`, so the bridge keeps it true as
-- files come and go) and picks from it with telescope or fzf-lua when one
-- is installed (looked up on use), else with vim.ui.select over the paths
-- ranked by matchfuzzy.

local client = require("distant.client")
local config = require("distant.config")
local util = require("distant.util")

local M = {}

--- Paths an index lists unless `find_max_paths` is set.
local DEFAULT_MAX_PATHS = 200000
--- Paths offered by vim.ui.select after fuzzy ranking.
local SELECT_LIMIT = 500

---@class distant.Index
---@field root string
---@field id string?
---@field connection string?
---@field paths table<string, boolean>
---@field list string[]? sorted paths, rebuilt after changes
---@field done boolean
---@field truncated boolean
---@field note string?
---@field error string?
---@field stale boolean the bridge stopped following it

---@type table<string, distant.Index> by root
M.indexes = {}
---@type table<string, distant.Index> by index id
local by_id = {}
local registered = false

local function on_results(params)
  local index = by_id[params.index]
  if not index then
    return
  end
  for _, path in ipairs(params.paths or {}) do
    index.paths[path] = true
  end
  index.list = nil
end

local function on_done(params)
  local index = by_id[params.index]
  if not index then
    return
  end
  index.done = true
  index.truncated = params.truncated == true
  index.note = params.note
  index.error = params.error
  if params.error or params.cancelled then
    index.stale = true
  end
end

local function on_changed(params)
  local index = by_id[params.index]
  if not index then
    return
  end
  if params.reset then
    index.paths = {}
  end
  local removed = params.removed or {}
  if #removed > 0 then
    local prefixes = {}
    for _, r in ipairs(removed) do
      index.paths[r] = nil
      table.insert(prefixes, r .. "/")
    end
    for path in pairs(index.paths) do
      for _, prefix in ipairs(prefixes) do
        if path:sub(1, #prefix) == prefix then
          index.paths[path] = nil
          break
        end
      end
    end
  end
  for _, path in ipairs(params.added or {}) do
    index.paths[path] = true
  end
  if params.ended then
    index.stale = true
  end
  index.list = nil
end

local function register()
  if registered then
    return
  end
  registered = true
  client.on("fs/index/results", on_results)
  client.on("fs/index/done", on_done)
  client.on("fs/index/changed", on_changed)
end

--- The sorted paths of an index.
---@param index distant.Index
---@return string[]
function M.list(index)
  if not index.list then
    local list = {}
    for path in pairs(index.paths) do
      table.insert(list, path)
    end
    table.sort(list)
    index.list = list
  end
  return index.list
end

--- The index of `root`, built on first use (waits for the walk) and kept
--- fresh afterwards.
---@param root string absolute remote directory
---@return distant.Index
function M.index(root)
  register()
  local index = M.indexes[root]
  if index and not index.stale and index.connection == client.connection then
    if not index.done then
      vim.wait(config.options.timeout, function()
        return index.done
      end, 5)
    end
    return index
  end
  if index and index.id then
    by_id[index.id] = nil
    pcall(client.request, "fs/index/cancel", { index = index.id }, function() end)
  end
  index = {
    root = root,
    connection = client.connection,
    paths = {},
    done = false,
    truncated = false,
    stale = false,
  }
  local failed
  -- The id is known in the answer's callback, which runs before any
  -- `fs/index/results` (they never precede the answer; both come through
  -- the main loop in order).
  client.request("fs/index", {
    root = root,
    follow = true,
    maxPaths = config.options.find_max_paths or DEFAULT_MAX_PATHS,
  }, function(err, result)
    if err then
      failed = err
      index.done = true
      return
    end
    index.id = result.index
    by_id[result.index] = index
  end)
  local ok = vim.wait(config.options.timeout, function()
    return index.done
  end, 5)
  if failed then
    -- A JSON-RPC error object: {code, message, data = {kind}}.
    local kind = type(failed) == "table" and type(failed.data) == "table" and failed.data.kind or nil
    local message = type(failed) == "table" and failed.message or tostring(failed)
    util.fail(("cannot list the files under %s: %s"):format(root, message), kind)
  end
  if not ok then
    util.fail(("listing the files under %s took too long; try a smaller directory"):format(root), "timeout")
  end
  if index.error then
    util.warn(("the file list of %s may be incomplete: %s"):format(root, index.error))
  end
  if index.truncated and index.note then
    util.warn(index.note)
  end
  M.indexes[root] = index
  return index
end

--- Paths of `list` ranked by fuzzy match against `query` (best first).
---@param list string[]
---@param query string
---@param limit? integer
function M.rank(list, query, limit)
  if query == "" then
    return vim.list_slice(list, 1, limit or #list)
  end
  return vim.fn.matchfuzzy(list, query, { limit = limit or #list })
end

local function open(root, rel)
  vim.cmd.edit(vim.fn.fnameescape(util.to_name(util.join(root, rel))))
end

local function telescope(root, list, query)
  local ok, pickers = pcall(require, "telescope.pickers")
  if not ok then
    return false
  end
  local finders = require("telescope.finders")
  local conf = require("telescope.config").values
  local actions = require("telescope.actions")
  local state = require("telescope.actions.state")
  pickers
    .new({}, {
      prompt_title = "distant: files under " .. root,
      default_text = query,
      finder = finders.new_table({ results = list }),
      sorter = conf.file_sorter({}),
      attach_mappings = function(buf)
        actions.select_default:replace(function()
          local entry = state.get_selected_entry()
          actions.close(buf)
          if entry then
            util.guard(open, root, entry[1] or entry.value)
          end
        end)
        return true
      end,
    })
    :find()
  return true
end

local function fzf(root, list, query)
  local ok, fzf_lua = pcall(require, "fzf-lua")
  if not ok then
    return false
  end
  fzf_lua.fzf_exec(list, {
    prompt = "distant> ",
    query = query,
    actions = {
      default = function(selected)
        if selected and selected[1] then
          util.guard(open, root, selected[1])
        end
      end,
    },
  })
  return true
end

--- :DistantFind [QUERY [ROOT]]: pick a file under ROOT (default: the
--- remote's current directory) and open it.
---@param query string
---@param root string absolute remote directory
function M.find(query, root)
  local index = M.index(root)
  local list = M.list(index)
  if #list == 0 then
    util.fail(("no files under %s (hidden and ignored files are left out)"):format(root))
  end
  if config.options.find_picker ~= "select" then
    if telescope(root, list, query) or fzf(root, list, query) then
      return
    end
  end
  local items = M.rank(list, query, SELECT_LIMIT)
  if #items == 0 then
    util.fail(("no file under %s matches %q"):format(root, query))
  end
  local more = #list > #items and (" (best %d of %d)"):format(#items, #list) or ""
  vim.ui.select(items, {
    prompt = ("distant: files under %s%s"):format(root, more),
    kind = "distant_find",
  }, function(choice)
    if choice then
      util.guard(open, root, choice)
    end
  end)
end

return M
