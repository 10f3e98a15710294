-- distant.buffer: `distant://` file buffers — BufReadCmd (read through the
-- bridge, ranged with progress for big files; detect fileformat, eol and
-- encoding) and BufWriteCmd (write back byte for byte what Neovim would
-- write locally, guarded by the etag of the last read or write).
--
-- Per-buffer state lives in buffer variables so it survives :edit and is
-- visible to users: b:distant_path, b:distant_etag (`""` for a file that did
-- not exist when opened).

local client = require("distant.client")
local config = require("distant.config")
local util = require("distant.util")

local M = {}

--- Resolves the path a `distant://` name stands for (relative → against
--- the remote's working directory).
---@param name string
function M.resolve(name)
  local path = util.to_path(name)
  if path:sub(1, 1) ~= "/" then
    path = util.join(client.remote_cwd(), path)
  end
  return util.normalize(path)
end

local function progress(message)
  vim.api.nvim_echo({ { "distant: " .. message } }, false, {})
end

--- Reads a whole remote file as bytes. Returns bytes, etag, and whether
--- the bytes are known to be UTF-8: the bridge sends text as `utf-8` only
--- when it is valid UTF-8 (checked natively, much faster than in Lua), and
--- pieces that are each valid UTF-8 make a valid whole.
---@param path string
---@param size integer? known size (from fs/metadata)
---@param expected_etag string? the etag fs/metadata gave with that size
function M.read_bytes(path, size, expected_etag)
  local chunk = config.options.chunk_size
  if not size or size <= chunk then
    local r = client.request_sync("fs/read", { path = path })
    return util.decode_data(r.data, r.encoding), r.etag, r.encoding == "utf-8"
  end
  -- Big file: ranges of `chunk` bytes, a few in flight, each checked
  -- against the first range's etag so a file changing mid-read is an error
  -- rather than a buffer mixing two versions.
  local parts, etag, failure, all_utf8 = {}, expected_etag, nil, true
  local count = math.ceil(size / chunk)
  local received, next_index, in_flight = 0, 1, 0
  local function issue()
    while in_flight < 4 and next_index <= count and not failure do
      local index = next_index
      next_index = next_index + 1
      in_flight = in_flight + 1
      client.request("fs/read", { path = path, offset = (index - 1) * chunk, length = chunk }, function(err, r)
        in_flight = in_flight - 1
        if err then
          failure = failure or err.message
          return
        end
        etag = etag or r.etag
        if r.etag ~= etag then
          failure = failure or (path .. " changed while it was being read; :edit it again")
          return
        end
        -- A range that splits a multi-byte character comes as base64.
        all_utf8 = all_utf8 and r.encoding == "utf-8"
        parts[index] = util.decode_data(r.data, r.encoding)
        received = received + 1
        progress(("reading %s: %d%%"):format(path, math.floor(received * 100 / count)))
        local ok, err2 = pcall(issue)
        if not ok then
          failure = failure or util.error_message(err2)
        end
      end)
    end
  end
  issue()
  local ok = vim.wait(config.options.timeout + count * 1000, function()
    return failure ~= nil or received == count or not client.running()
  end, 5)
  if failure then
    util.fail("cannot read " .. path .. ": " .. failure)
  elseif not ok or received < count then
    util.fail("reading " .. path .. " timed out or the bridge went away; :edit to retry")
  end
  progress(("read %s (%d bytes)"):format(path, size))
  return table.concat(parts), etag, all_utf8
end

--- Writes `bytes` to `path`: one `fs/write` up to `chunk_size`, else a
--- chunked write (`fs/writeStart`, ranges with a few in flight and
--- progress, `fs/writeFinish`), which is just as atomic and etag-checked
--- and has no size limit. Raises a user error (kind `conflict` when
--- `if_etag` no longer matches); returns the result `{size, mtime, etag}`.
---@param path string
---@param bytes string
---@param if_etag string? nil: no check; "": the file must not exist
function M.write_bytes(path, bytes, if_etag)
  local chunk = config.options.chunk_size
  if #bytes <= chunk then
    return client.request_sync(
      "fs/write",
      { path = path, data = vim.base64.encode(bytes), encoding = "base64", ifEtag = if_etag }
    )
  end
  local write = client.request_sync("fs/writeStart", { path = path, ifEtag = if_etag }).write
  local count = math.ceil(#bytes / chunk)
  local sent, next_index, in_flight, failure = 0, 1, 0, nil
  local function issue()
    while in_flight < 4 and next_index <= count and not failure do
      local index = next_index
      next_index = next_index + 1
      in_flight = in_flight + 1
      local offset = (index - 1) * chunk
      local data = vim.base64.encode(bytes:sub(offset + 1, offset + chunk))
      client.request(
        "fs/writeChunk",
        { write = write, offset = offset, data = data, encoding = "base64" },
        function(err)
          in_flight = in_flight - 1
          if err then
            failure = failure or err
            return
          end
          sent = sent + 1
          progress(("writing %s: %d%%"):format(path, math.floor(sent * 100 / count)))
          local ok, err2 = pcall(issue)
          if not ok then
            failure = failure or { message = util.error_message(err2) }
          end
        end
      )
    end
  end
  local ok_issue, err_issue = pcall(issue)
  if not ok_issue then
    failure = { message = util.error_message(err_issue) }
  end
  local done = vim.wait(config.options.timeout + count * 1000, function()
    return failure ~= nil or sent == count or not client.running()
  end, 5)
  if failure or not done or sent < count then
    -- Nothing was replaced: the remote file is as it was.
    pcall(client.request_sync, "fs/writeAbort", { write = write })
    util.fail(
      "cannot write " .. path .. ": " .. (failure and failure.message or "timed out or the bridge went away"),
      failure and failure.data and failure.data.kind or nil
    )
  end
  local result = client.request_sync("fs/writeFinish", { write = write })
  progress(("wrote %s (%d bytes)"):format(path, #bytes))
  return result
end

--- Whether `s` is valid UTF-8 (vim.iconv replaces bad bytes silently, so
--- it cannot tell). ASCII runs are skipped with one find each.
local function is_utf8(s)
  local byte, i, n = string.byte, 1, #s
  while true do
    i = s:find("[\128-\255]", i)
    if not i then
      return true
    end
    local c = byte(s, i)
    local len = (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3 or (c >= 0xF0 and c <= 0xF4) and 4
    if not len or i + len - 1 > n then
      return false
    end
    for j = i + 1, i + len - 1 do
      local cc = byte(s, j)
      if cc < 0x80 or cc > 0xBF then
        return false
      end
    end
    i = i + len
  end
end
M.is_utf8 = is_utf8

--- How many times `needle` occurs in `s` (plain find: no pattern, no copy).
local function count(s, needle)
  local n, pos, find = 0, 1, string.find
  while true do
    local at = find(s, needle, pos, true)
    if not at then
      return n
    end
    n, pos = n + 1, at + #needle
  end
end

--- Splits file bytes into buffer lines plus the options Neovim would infer.
---@param bytes string
---@param known_utf8 boolean? the bytes were checked already (see read_bytes)
function M.decode(bytes, known_utf8)
  local opts = { fileformat = "unix", eol = true, fileencoding = "utf-8" }
  if not known_utf8 and not is_utf8(bytes) then
    -- Not UTF-8: read it as latin1 (every byte is a character), as Vim's
    -- default 'fileencodings' would, and write it back the same way.
    bytes = vim.iconv(bytes, "latin1", "utf-8") or bytes
    opts.fileencoding = "latin1"
  end
  if bytes == "" then
    return { "" }, opts
  end
  -- Without a CR it is a unix file; that check costs nothing.
  if bytes:find("\r", 1, true) then
    local newlines = count(bytes, "\n")
    if newlines > 0 and count(bytes, "\r\n") == newlines then
      opts.fileformat = "dos"
    end
  end
  if bytes:sub(-1) == "\n" then
    bytes = bytes:sub(1, -2)
  else
    opts.eol = false
  end
  local lines = vim.split(bytes, "\n", { plain = true })
  if opts.fileformat == "dos" then
    for i, line in ipairs(lines) do
      if line:sub(-1) == "\r" then
        lines[i] = line:sub(1, -2)
      end
    end
  end
  return lines, opts
end

--- Joins a buffer's lines into the bytes to write, following its
--- 'fileformat', 'eol'/'fixeol'/'binary' and 'fileencoding'.
---@param bufnr integer
---@param lines? string[] a range of the buffer (default: all of it)
function M.encode(bufnr, lines)
  local bo = vim.bo[bufnr]
  lines = lines or vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local sep = ({ dos = "\r\n", mac = "\r" })[bo.fileformat] or "\n"
  local bytes
  if #lines == 1 and lines[1] == "" then
    bytes = "" -- an empty buffer is an empty file, as :write does locally
  else
    bytes = table.concat(lines, sep)
    if bo.eol or (bo.fixeol and not bo.binary) then
      bytes = bytes .. sep
    end
  end
  local fenc = bo.fileencoding
  if fenc ~= "" and fenc ~= "utf-8" and fenc ~= "utf8" then
    local converted = vim.iconv(bytes, "utf-8", fenc)
    if not converted then
      util.fail(("cannot convert the buffer to %s; :set fileencoding=utf-8 to save it as UTF-8"):format(fenc))
    end
    bytes = converted
  end
  return bytes
end

--- Sets the options a read inferred, and marks the buffer unmodified.
local function apply_file_options(bufnr, opts)
  local bo = vim.bo[bufnr]
  bo.fileformat = opts.fileformat
  bo.eol = opts.eol
  -- A file without a final newline is saved without one: keep remote files
  -- byte for byte unless the user edits that line ending.
  if not opts.eol then
    bo.fixeol = false
  end
  bo.fileencoding = opts.fileencoding
  bo.modified = false
end

--- Fills `bufnr` with `lines` as a fresh load (no undo step for it).
local function load_lines(bufnr, lines, opts)
  local bo = vim.bo[bufnr]
  local undolevels = bo.undolevels
  bo.undolevels = -1
  bo.modifiable = true
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  bo.undolevels = undolevels
  apply_file_options(bufnr, opts)
end

local function detect_filetype(bufnr, path)
  -- BufReadPost lets filetype detection and user autocmds run as for a
  -- local file; the buffer name keeps the extension, so detection works.
  vim.api.nvim_exec_autocmds("BufReadPost", { buffer = bufnr, modeline = false })
  if vim.bo[bufnr].filetype == "" then
    local ft = vim.filetype.match({ buf = bufnr, filename = path })
    if ft then
      vim.bo[bufnr].filetype = ft
    end
  end
end

--- BufReadCmd: loads a remote file or directory into `bufnr`.
---@param bufnr integer
function M.read(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local path = M.resolve(name)
  if util.to_name(path) ~= name then
    -- `:edit distant://rel/x` or a non-canonical path: name the buffer by
    -- its absolute path so LSP URIs and later opens find the same buffer.
    local existing = vim.fn.bufnr(util.to_name(path))
    if existing ~= -1 and existing ~= bufnr then
      vim.api.nvim_win_set_buf(0, existing)
      pcall(vim.api.nvim_buf_delete, bufnr, { force = true })
      return
    end
    vim.api.nvim_buf_set_name(bufnr, util.to_name(path))
  end
  local ok, meta = pcall(client.request_sync, "fs/metadata", { path = path, followSymlinks = true })
  if not ok then
    if util.error_kind(meta) ~= "not_found" then
      error(meta, 0)
    end
    -- A new file: empty buffer, saved with "must not exist" as precondition.
    vim.b[bufnr].distant_path = path
    vim.b[bufnr].distant_etag = ""
    vim.bo[bufnr].buftype = "acwrite"
    load_lines(
      bufnr,
      { "" },
      { fileformat = vim.o.fileformats:match("^dos") and "dos" or "unix", eol = true, fileencoding = "" }
    )
    detect_filetype(bufnr, path)
    util.notify(path .. " [New]")
    M.after_load(bufnr)
    return
  end
  if meta.type == "dir" then
    require("distant.dir").render(bufnr, path)
    return
  end
  local bytes, etag, utf8 = M.read_bytes(path, meta.size, meta.etag)
  local lines, opts = M.decode(bytes, utf8)
  vim.b[bufnr].distant_path = path
  vim.b[bufnr].distant_etag = etag
  -- acwrite: Neovim sends every write to BufWriteCmd (even `:w` without a
  -- name) and never writes a local file of that name.
  vim.bo[bufnr].buftype = "acwrite"
  vim.bo[bufnr].swapfile = false
  load_lines(bufnr, lines, opts)
  if meta.readonly then
    vim.bo[bufnr].readonly = true
  end
  detect_filetype(bufnr, path)
  M.after_load(bufnr)
end

--- What follows every load: start watching, attach language servers.
function M.after_load(bufnr)
  -- gf: Neovim's own gf looks for <cfile> on the local disk; resolve it
  -- against this file's remote directory instead.
  vim.keymap.set("n", "gf", function()
    util.guard(function()
      local cfile = vim.fn.expand("<cfile>")
      if cfile == "" then
        util.fail("no file name under the cursor")
      end
      require("distant.dir").open(require("distant").resolve(cfile))
    end)
  end, { buffer = bufnr, desc = "distant: open the remote file under the cursor" })
  -- `-` (the `parent` key) opens the file's directory, as in vim-vinegar.
  local parent_key = config.options.keymaps.parent
  if parent_key then
    vim.keymap.set("n", parent_key, function()
      util.guard(require("distant.dir").actions.parent)
    end, { buffer = bufnr, desc = "distant: open the parent directory" })
  end
  if config.options.watch then
    util.guard(require("distant.watch").add, bufnr)
  end
  if next(config.options.servers) then
    util.guard(require("distant.lsp").attach, bufnr)
  end
end

--- FileReadCmd (`:read distant:///x`): inserts a remote file's lines
--- below `line` of the current buffer.
---@param name string
---@param line integer
function M.read_into(name, line)
  local path = M.resolve(name)
  local bytes, _, utf8 = M.read_bytes(path)
  local lines = M.decode(bytes, utf8)
  vim.api.nvim_buf_set_lines(0, line, line, false, lines)
end

--- Re-reads an unmodified buffer from the remote, keeping cursor positions.
---@param meta? table fs/metadata of the file, when the caller has it
function M.reload(bufnr, meta)
  local path = vim.b[bufnr].distant_path
  meta = meta or client.request_sync("fs/metadata", { path = path, followSymlinks = true })
  local bytes, etag, utf8 = M.read_bytes(path, meta.size, meta.etag)
  local lines, opts = M.decode(bytes, utf8)
  local views = {}
  for _, win in ipairs(vim.fn.win_findbuf(bufnr)) do
    views[win] = vim.api.nvim_win_get_cursor(win)
  end
  vim.b[bufnr].distant_etag = etag
  -- Unlike a first load, a reload is one undo step (as 'undoreload' does).
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  apply_file_options(bufnr, opts)
  for win, cursor in pairs(views) do
    local row = math.min(cursor[1], vim.api.nvim_buf_line_count(bufnr))
    pcall(vim.api.nvim_win_set_cursor, win, { row, cursor[2] })
  end
end

--- BufWriteCmd: saves `bufnr` to its remote path (or to `target`, from
--- `:write distant://other`). `force` (`:write!`) skips the etag check.
---@param bufnr integer
---@param target string? the name written to, when not the buffer's own
---@param force boolean
---@param range? integer[] {first, last} lines (1-based) for FileWriteCmd
function M.write(bufnr, target, force, range)
  local own = vim.b[bufnr].distant_path
  if not own then
    -- Never loaded (e.g. opened while disconnected): writing it blindly
    -- could replace the remote file with an empty buffer.
    local name = vim.api.nvim_buf_get_name(bufnr)
    if not force and not target then
      util.fail(name .. " was never read from the remote; :edit it first, or :write! to replace the remote file")
    end
    own = M.resolve(name)
    vim.b[bufnr].distant_path = own
    vim.bo[bufnr].buftype = "acwrite"
  end
  local path = target and M.resolve(target) or own
  local to_self = path == own and not range
  local lines = range and vim.api.nvim_buf_get_lines(bufnr, range[1] - 1, range[2], false) or nil
  local bytes = M.encode(bufnr, lines)
  local if_etag = nil
  if not force then
    -- Our own file: only over the version we read. Another name: only if
    -- it does not exist yet (as :write refuses with E13 locally).
    if_etag = to_self and vim.b[bufnr].distant_etag or (path ~= own and "" or nil)
  end
  -- While the write is out, watch events are ours: the watcher waits.
  vim.b[bufnr].distant_writing = true
  local ok, result = pcall(M.write_bytes, path, bytes, if_etag)
  vim.b[bufnr].distant_writing = false
  if not ok then
    if util.error_kind(result) == "conflict" then
      if to_self then
        util.warn(
          path
            .. " changed on the remote since it was read; nothing written."
            .. " :write! overwrites it, :edit! loads the remote version"
        )
      else
        util.warn(path .. " exists on the remote; nothing written. Add ! to overwrite it")
      end
      return false
    end
    error(result, 0)
  end
  if to_self then
    vim.b[bufnr].distant_etag = result.etag
    vim.bo[bufnr].modified = false
  end
  util.notify(("%s written, %d bytes"):format(path, #bytes))
  return true
end

return M
