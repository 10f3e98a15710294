-- distant.util: what every module shares — `distant://` names ⇄ remote
-- paths, user-facing errors (raised as tables, reported without a Lua
-- traceback) and the `guard` wrapper put around every command and autocmd.

local M = {}

M.scheme = "distant://"

--- Whether a buffer name or URI is one of ours.
---@param name string
function M.is_remote(name)
  return name:sub(1, #M.scheme) == M.scheme
end

--- `distant:///a/b` → `/a/b`; `distant://host/a/b` → `/a/b` (an authority,
--- as some LSP clients keep it, names the same single connection).
---@param name string
---@return string
function M.to_path(name)
  local rest = name:sub(#M.scheme + 1)
  if rest:sub(1, 1) == "/" then
    return rest
  end
  -- `distant://relative/path` is relative to the remote's working directory;
  -- the caller resolves it.
  return rest
end

---@param path string absolute remote path
function M.to_name(path)
  return M.scheme .. path
end

--- Normalises `a//b/./c/` and resolves `..`, purely textually.
---@param path string
function M.normalize(path)
  local absolute = path:sub(1, 1) == "/"
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts > 0 then
        table.remove(parts)
      end
    elseif part ~= "." then
      table.insert(parts, part)
    end
  end
  local joined = table.concat(parts, "/")
  return absolute and ("/" .. joined) or (joined == "" and "." or joined)
end

---@param dir string
---@param name string
function M.join(dir, name)
  if name:sub(1, 1) == "/" then
    return M.normalize(name)
  end
  return M.normalize(dir .. "/" .. name)
end

---@param path string
function M.dirname(path)
  local parent = path:match("^(.*)/[^/]*/?$")
  if parent == nil or parent == "" then
    return "/"
  end
  return parent
end

---@param path string
function M.basename(path)
  return path:match("([^/]+)/?$") or path
end

-- Errors meant for the user are tables carrying this marker, so `guard`
-- can tell them from programming errors.
local USER_ERROR = {}

--- Raises an error the user sees as a plain message (no traceback).
---@param message string
---@param kind? string the bridge's error kind, when there is one
function M.fail(message, kind)
  error({ [USER_ERROR] = true, message = message, kind = kind }, 0)
end

--- The error kind of a value raised by `fail`, if any.
function M.error_kind(err)
  return type(err) == "table" and err[USER_ERROR] and err.kind or nil
end

--- The message of any raised value.
function M.error_message(err)
  if type(err) == "table" and err[USER_ERROR] then
    return err.message
  end
  return tostring(err)
end

--- `text` with the key of every `distant://KEY@…` in it replaced by `***`:
--- no notification, status line or :messages entry carries a key.
---@param text any
---@return string
function M.redact(text)
  return (tostring(text):gsub("([Dd][Ii][Ss][Tt][Aa][Nn][Tt]://)[^@/%s]*@", "%1***@"))
end

function M.notify(message, level)
  vim.notify("distant: " .. M.redact(message), level or vim.log.levels.INFO)
end

function M.warn(message)
  M.notify(message, vim.log.levels.WARN)
end

function M.error(message)
  M.notify(message, vim.log.levels.ERROR)
end

--- Runs `fn`; any error becomes one `vim.notify` ERROR. User errors are
--- shown as they are; unexpected ones as a one-line "internal error", so a
--- stack trace never lands in the user's face (the trace is kept in
--- `g:distant_last_traceback` for bug reports).
---@return boolean ok, any result
function M.guard(fn, ...)
  local ok, result = xpcall(fn, function(err)
    if type(err) == "table" and err[USER_ERROR] then
      return err
    end
    return { internal = true, message = tostring(err), trace = debug.traceback("", 2) }
  end, ...)
  if not ok then
    if result.internal then
      M.error("internal error: " .. result.message .. " (please report this)")
      vim.g.distant_last_traceback = result.trace
    else
      M.error(result.message)
    end
  end
  return ok, result
end

--- `fn` wrapped with `guard`, for callbacks (commands, autocmds, keymaps).
function M.guarded(fn)
  return function(...)
    M.guard(fn, ...)
  end
end

--- Decodes the bridge's `{data, encoding}` pair into raw bytes.
---@param data string
---@param encoding string
function M.decode_data(data, encoding)
  if encoding == "base64" then
    return vim.base64.decode(data)
  end
  return data
end

return M
