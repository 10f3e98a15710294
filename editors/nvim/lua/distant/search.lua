-- distant.search: remote content search streamed into the quickfix list.
-- One search at a time: starting another cancels the running one.

local client = require("distant.client")
local config = require("distant.config")
local util = require("distant.util")

local M = {}

---@class distant.Search
---@field id string?
---@field qf integer quickfix list id
---@field pattern string
---@field count integer
---@field done boolean
---@field truncated boolean
---@field cancelled boolean

---@type distant.Search?
M.current = nil
local registered = false

local function set_title(search, status)
  vim.fn.setqflist({}, "a", {
    id = search.qf,
    title = ("distant search %s: %d matches (%s)"):format(search.pattern, search.count, status),
  })
end

local function on_results(params)
  local search = M.current
  if not search or search.id ~= params.search then
    return
  end
  local items = {}
  for _, match in ipairs(params.matches or {}) do
    table.insert(items, {
      filename = util.to_name(match.path),
      lnum = match.line or 1,
      col = match.column or 1,
      text = match.text and match.text:gsub("[\r\n]+$", "") or match.path,
    })
  end
  search.count = search.count + #items
  vim.fn.setqflist({}, "a", { id = search.qf, items = items })
  set_title(search, "running")
end

local function on_done(params)
  local search = M.current
  if not search or search.id ~= params.search then
    return
  end
  search.done = true
  search.truncated = params.truncated
  local status = search.cancelled and "cancelled" or (params.truncated and "done, truncated" or "done")
  if params.error then
    status = status .. ", error: " .. params.error
  end
  set_title(search, status)
  util.notify(("search %s: %d matches (%s)"):format(search.pattern, search.count, status))
end

--- Starts a contents search for `pattern` (a regex) under `path`,
--- streaming matches into a new quickfix list.
---@param pattern string
---@param path string absolute remote path
---@param opts? {regex?: boolean, caseSensitive?: boolean, maxResults?: integer}
function M.start(pattern, path, opts)
  if not registered then
    registered = true
    client.on("search/results", on_results)
    client.on("search/done", on_done)
  end
  if M.current and not M.current.done then
    pcall(M.cancel)
  end
  opts = opts or {}
  vim.fn.setqflist({}, " ", { title = ("distant search %s: 0 matches (running)"):format(pattern), items = {} })
  local search = {
    qf = vim.fn.getqflist({ id = 0 }).id,
    pattern = pattern,
    count = 0,
    done = false,
    truncated = false,
    cancelled = false,
  }
  M.current = search
  local query = vim.tbl_extend(
    "force",
    { target = "contents", pattern = pattern, paths = { path }, maxResults = config.options.search_max_results },
    opts
  )
  -- The id is set in the answer's callback, which runs before any
  -- `search/results` (they never precede the answer and both come through
  -- the main loop in order).
  client.request("search/start", { query = query }, function(err, result)
    if err then
      search.done = true
      set_title(search, "failed")
      util.error(("search %s failed: %s"):format(pattern, err.message or tostring(err)))
      return
    end
    search.id = result.search
  end)
  return search
end

--- Cancels the running search (`search/done` still arrives).
function M.cancel()
  local search = M.current
  if not search or search.done then
    util.fail("no search is running")
  end
  search.cancelled = true
  vim.wait(5000, function()
    return search.id ~= nil or search.done
  end, 5)
  if search.id and not search.done then
    local ok, err = pcall(client.request_sync, "search/cancel", { search = search.id })
    -- It may have finished meanwhile: `not_found` then, and nothing to do.
    if not ok and util.error_kind(err) ~= "not_found" then
      error(err, 0)
    end
  end
end

return M
