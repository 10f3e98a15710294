-- distant.git: :DistantGit — the remote repository's changed files in a
-- buffer (git runs on the remote through `proc/spawn`), the diff against
-- HEAD of the file under the cursor, and errors a person can act on (git
-- missing on the remote, not a repository).

local client = require("distant.client")
local config = require("distant.config")
local util = require("distant.util")

local M = {}

---@type table<string, table> running processes by proc id
local procs = {}
local registered = false

local function register()
  if registered then
    return
  end
  registered = true
  client.on("proc/output", function(params)
    local p = procs[params.proc]
    if p then
      local data = util.decode_data(params.data, params.encoding)
      table.insert(params.stream == "stderr" and p.err or p.out, data)
    end
  end)
  client.on("proc/exit", function(params)
    local p = procs[params.proc]
    if p then
      p.code, p.error, p.done = params.code, params.error, true
      procs[params.proc] = nil
    end
  end)
end

--- Runs `cmd` on the remote and waits for it: `{code, stdout, stderr}`.
--- A program missing on the remote raises a user error naming it.
---@param cmd string[]
---@param cwd? string
function M.run(cmd, cwd)
  register()
  local p = { out = {}, err = {}, done = false }
  local failed
  -- The id is set in the answer's callback, before any `proc/output`.
  client.request("proc/spawn", { cmd = cmd, cwd = cwd }, function(err, result)
    if err then
      failed, p.done = err, true
      return
    end
    procs[result.proc] = p
  end)
  local ok = vim.wait(config.options.timeout, function()
    return p.done
  end, 5)
  if failed then
    -- A JSON-RPC error object: {code, message, data = {kind}}.
    local kind = type(failed) == "table" and type(failed.data) == "table" and failed.data.kind or nil
    local message = type(failed) == "table" and failed.message or tostring(failed)
    if kind == "not_found" then
      util.fail(
        ("%s is not installed on the remote (or not on its PATH): install it there to use :DistantGit"):format(cmd[1]),
        "not_found"
      )
    end
    util.fail(("cannot run %s on the remote: %s"):format(cmd[1], message), kind)
  end
  if not ok then
    util.fail(("%s did not finish in %d ms on the remote"):format(table.concat(cmd, " "), config.options.timeout))
  end
  if p.error then
    util.fail(("%s on the remote: %s"):format(cmd[1], p.error))
  end
  return { code = p.code, stdout = table.concat(p.out), stderr = table.concat(p.err) }
end

--- Runs git in `root`; raises a user error unless it exits with one of
--- `ok_codes` (default {0}).
local function git(root, args, ok_codes)
  local cmd = { "git", "-C", root, "-c", "core.quotepath=false", "--no-pager" }
  vim.list_extend(cmd, args)
  local r = M.run(cmd, root)
  for _, c in ipairs(ok_codes or { 0 }) do
    if r.code == c then
      return r
    end
  end
  if r.stderr:find("not a git repository", 1, true) then
    util.fail(
      ("%s is not inside a git repository (open a directory of a repository, or run git init there)"):format(root),
      "not_a_repository"
    )
  end
  local first = vim.trim(r.stderr):match("[^\n]*") or ""
  util.fail(("git %s failed in %s (exit %s): %s"):format(args[1], root, tostring(r.code), first))
end

---@class distant.GitEntry
---@field status string two letters, as in `git status --short`
---@field path string relative to the repository's top level
---@field orig string? the old path of a rename

--- The repository's top level, branch and changed files.
---@param root string absolute remote directory
---@return {top: string, branch: string, entries: distant.GitEntry[]}
function M.status(root)
  local top = vim.trim(git(root, { "rev-parse", "--show-toplevel" }).stdout)
  local r = git(top, { "status", "--porcelain=v1", "--branch", "--untracked-files=all", "-z" })
  local branch = "?"
  local entries = {}
  local fields = vim.split(r.stdout, "\0", { plain = true })
  local i = 1
  while i <= #fields do
    local f = fields[i]
    if f:sub(1, 3) == "## " then
      branch = f:sub(4)
    elseif #f > 3 then
      local entry = { status = f:sub(1, 2), path = f:sub(4) }
      if entry.status:find("[RC]") then
        -- -z: the old path of a rename follows as its own field.
        i = i + 1
        entry.orig = fields[i]
      end
      table.insert(entries, entry)
    end
    i = i + 1
  end
  return { top = top, branch = branch, entries = entries }
end

--- The diff against HEAD of `entry` (untracked: the whole file as added).
---@param top string
---@param entry distant.GitEntry
---@return string
function M.diff(top, entry)
  if entry.status == "??" then
    return git(top, { "diff", "--no-index", "--", "/dev/null", entry.path }, { 0, 1 }).stdout
  end
  local has_head = M.run({ "git", "-C", top, "rev-parse", "--verify", "-q", "HEAD" }, top).code == 0
  local base = has_head and "HEAD" or "--cached"
  return git(top, { "diff", base, "--", entry.path }).stdout
end

local function scratch(name, lines, filetype)
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = filetype
  return buf
end

--- The entry on the cursor line of a :DistantGit buffer.
local function entry_under_cursor()
  local state = vim.b.distant_git
  if not state then
    util.fail("not a :DistantGit buffer")
  end
  local entry = state.entries[vim.fn.line(".") - state.first + 1]
  if not entry then
    util.fail("no changed file on this line")
  end
  return state, entry
end

--- Shows the diff against HEAD of the file under the cursor in a split.
function M.diff_under_cursor()
  local state, entry = entry_under_cursor()
  local text = M.diff(state.top, entry)
  local lines = vim.split(text, "\n", { plain = true })
  if lines[#lines] == "" then
    table.remove(lines)
  end
  if #lines == 0 then
    lines = { ("no difference from HEAD for %s"):format(entry.path) }
  end
  local buf = scratch("distant-git-diff://" .. state.top .. "/" .. entry.path, lines, "diff")
  vim.cmd("botright split")
  vim.api.nvim_win_set_buf(0, buf)
  return buf
end

--- Opens the file under the cursor.
function M.open_under_cursor()
  local state, entry = entry_under_cursor()
  vim.cmd.edit(vim.fn.fnameescape(util.to_name(util.join(state.top, entry.path))))
end

--- :DistantGit [PATH]: the changed files of the repository holding PATH.
---@param root string absolute remote directory
function M.show(root)
  local st = M.status(root)
  local lines = {
    ("Branch: %s"):format(st.branch),
    ("Repository: %s   (<CR> open, = diff against HEAD, R refresh)"):format(st.top),
    "",
  }
  for _, e in ipairs(st.entries) do
    local line = ("%s %s"):format(e.status, e.path)
    if e.orig then
      line = line .. " <- " .. e.orig
    end
    table.insert(lines, line)
  end
  if #st.entries == 0 then
    table.insert(lines, "(no changes: the working tree matches HEAD)")
  end
  local buf = scratch("distant-git://" .. st.top, lines, "distantgit")
  vim.api.nvim_win_set_buf(0, buf)
  vim.b[buf].distant_git = { top = st.top, branch = st.branch, entries = st.entries, first = 4 }
  local opts = { buffer = buf, nowait = true, silent = true }
  vim.keymap.set("n", "<CR>", util.guarded(M.open_under_cursor), opts)
  vim.keymap.set("n", "=", util.guarded(M.diff_under_cursor), opts)
  vim.keymap.set("n", "R", function()
    util.guard(M.show, st.top)
  end, opts)
  if #st.entries > 0 then
    vim.api.nvim_win_set_cursor(0, { 4, 0 })
  end
  return buf
end

return M
