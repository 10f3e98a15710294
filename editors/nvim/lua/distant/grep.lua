-- distant.grep: :DistantGrep — live search. A one-line prompt at the
-- bottom; each edit (after a short pause in typing) cancels the running
-- search and starts a new one (a literal string, smart case) whose matches
-- stream into the quickfix list shown above. <CR> closes the prompt and
-- jumps to the first match; <Esc> in normal mode or :q closes it.

local search = require("distant.search")
local util = require("distant.util")

local M = {}

--- Typing pauses this long before the search restarts, in milliseconds.
M.debounce = 150

---@class distant.Grep
---@field root string
---@field buf integer
---@field win integer
---@field last string
---@field timer uv.uv_timer_t?

---@type distant.Grep?
M.current = nil

local function text_of(buf)
  local line = vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1] or ""
  local prompt = vim.fn.prompt_getprompt(buf)
  if line:sub(1, #prompt) == prompt then
    line = line:sub(#prompt + 1)
  end
  return line
end

--- Starts the search for the prompt's text now (no pause).
---@param grep distant.Grep
function M.update(grep)
  local text = text_of(grep.buf)
  if text == grep.last then
    return
  end
  grep.last = text
  if text == "" then
    if search.current and not search.current.done then
      pcall(search.cancel)
    end
    return
  end
  search.start(text, grep.root, { regex = false, caseSensitive = text:find("%u") ~= nil })
end

local function close(grep)
  if grep.timer then
    grep.timer:stop()
    grep.timer:close()
    grep.timer = nil
  end
  if vim.api.nvim_win_is_valid(grep.win) then
    vim.api.nvim_win_close(grep.win, true)
  end
  if vim.api.nvim_buf_is_valid(grep.buf) then
    vim.api.nvim_buf_delete(grep.buf, { force = true })
  end
  if M.current == grep then
    M.current = nil
  end
end

--- Closes the prompt and jumps to the first match, if any.
---@param grep distant.Grep
function M.submit(grep)
  M.update(grep)
  close(grep)
  vim.cmd("stopinsert")
  if #vim.fn.getqflist() > 0 then
    vim.cmd("cfirst")
  end
end

--- Opens the live prompt for searches under `root`.
---@param root string absolute remote directory
function M.open(root)
  if M.current then
    close(M.current)
  end
  vim.cmd("botright copen")
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].buftype = "prompt"
  vim.bo[buf].bufhidden = "wipe"
  vim.fn.prompt_setprompt(buf, "grep " .. root .. "> ")
  vim.cmd("botright 1split")
  local win = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(win, buf)
  ---@type distant.Grep
  local grep = { root = root, buf = buf, win = win, last = "" }
  M.current = grep
  grep.timer = vim.uv.new_timer()
  vim.fn.prompt_setcallback(buf, function()
    util.guard(M.submit, grep)
  end)
  vim.api.nvim_create_autocmd({ "TextChanged", "TextChangedI" }, {
    buffer = buf,
    callback = function()
      if not grep.timer then
        return
      end
      grep.timer:stop()
      grep.timer:start(
        M.debounce,
        0,
        vim.schedule_wrap(function()
          if M.current == grep and vim.api.nvim_buf_is_valid(buf) then
            util.guard(M.update, grep)
          end
        end)
      )
    end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    callback = function()
      if M.current == grep then
        grep.buf = buf
        vim.schedule(function()
          close(grep)
        end)
      end
    end,
  })
  vim.keymap.set("n", "<Esc>", function()
    close(grep)
  end, { buffer = buf, nowait = true })
  vim.cmd("startinsert!")
  return grep
end

return M
