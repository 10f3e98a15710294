-- Opening, editing and saving remote files against a real local server.
local H = require("helpers")

describe("distant buffers", function()
  -- The plugin catches its own Lua errors and reports them; here they fail.
  after_each(H.assert_no_internal_errors)

  local dir

  setup(function()
    H.setup()
    H.connect("local")
    dir = H.tmpdir()
  end)

  teardown(function()
    H.teardown()
  end)

  before_each(function()
    vim.cmd("silent! %bwipeout!")
    H.notes = {}
  end)

  it("opens, edits and saves a file", function()
    H.write(dir .. "/hello.py", "print('hi')\nx = 1\n")
    vim.cmd.edit("distant://" .. dir .. "/hello.py")
    assert.equals("print('hi')\nx = 1", H.text())
    assert.equals("python", vim.bo.filetype)
    assert.equals("acwrite", vim.bo.buftype)
    assert.is_false(vim.bo.modified)
    vim.api.nvim_buf_set_lines(0, 1, 2, false, { "x = 2", "y = 3" })
    vim.cmd.write()
    assert.is_false(vim.bo.modified)
    assert.equals("print('hi')\nx = 2\ny = 3\n", H.read(dir .. "/hello.py"))
  end)

  it(":DistantOpen opens by path, relative names resolve", function()
    H.write(dir .. "/a.txt", "alpha\n")
    vim.cmd("DistantOpen " .. dir .. "/a.txt")
    assert.equals("distant://" .. dir .. "/a.txt", vim.api.nvim_buf_get_name(0))
    assert.equals("alpha", H.text())
  end)

  it("gf opens the remote file under the cursor", function()
    vim.fn.mkdir(dir .. "/gf", "p")
    H.write(dir .. "/gf/index.txt", "see other.txt\n")
    H.write(dir .. "/gf/other.txt", "the other one\n")
    vim.cmd.edit("distant://" .. dir .. "/gf/index.txt")
    vim.api.nvim_win_set_cursor(0, { 1, 6 })
    vim.api.nvim_feedkeys("gf", "x", false)
    assert.equals("distant://" .. dir .. "/gf/other.txt", vim.api.nvim_buf_get_name(0))
    assert.equals("the other one", H.text())
  end)

  it(":write to another name refuses to clobber; :read and ranges work", function()
    H.write(dir .. "/src.txt", "one\ntwo\nthree\n")
    H.write(dir .. "/taken.txt", "keep me\n")
    vim.cmd.edit("distant://" .. dir .. "/src.txt")
    vim.cmd("write distant://" .. dir .. "/copy.txt")
    assert.equals("one\ntwo\nthree\n", H.read(dir .. "/copy.txt"))
    vim.cmd("write distant://" .. dir .. "/taken.txt")
    assert.equals("keep me\n", H.read(dir .. "/taken.txt"))
    assert.equals(1, #H.notes_matching("exists on the remote", vim.log.levels.WARN))
    vim.cmd("write! distant://" .. dir .. "/taken.txt")
    assert.equals("one\ntwo\nthree\n", H.read(dir .. "/taken.txt"))
    vim.cmd("2,3write distant://" .. dir .. "/part.txt")
    assert.equals("two\nthree\n", H.read(dir .. "/part.txt"))
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    vim.cmd("read distant://" .. dir .. "/part.txt")
    assert.equals("one\ntwo\nthree\ntwo\nthree", H.text())
    assert.equals("distant://" .. dir .. "/src.txt", vim.api.nvim_buf_get_name(0))
  end)

  it("resolves distant://relative against the remote working directory", function()
    local cwd = require("distant.client").remote_cwd()
    H.write(dir .. "/rel.txt", "relative\n")
    local prefix = cwd == "/" and "/" or (cwd .. "/")
    -- scripts/test-nvim starts every spec inside its scratch directory.
    assert(
      dir:sub(1, #prefix) == prefix,
      "the remote's working directory " .. cwd .. " is not above " .. dir .. " (run the specs with scripts/test-nvim)"
    )
    local rel = dir:sub(#prefix + 1)
    vim.cmd.edit("distant://" .. rel .. "/rel.txt")
    assert.equals("distant://" .. dir .. "/rel.txt", vim.api.nvim_buf_get_name(0))
    assert.equals("relative", H.text())
  end)

  it("keeps NUL bytes and other control bytes", function()
    local bytes = "a\0b\1c\127\ntab\there\r mid-line CR\n"
    H.write(dir .. "/ctl.bin", bytes)
    vim.cmd.edit("distant://" .. dir .. "/ctl.bin")
    assert.equals("unix", vim.bo.fileformat)
    vim.cmd("write!")
    assert.equals(bytes, H.read(dir .. "/ctl.bin"))
  end)

  it("keeps CRLF byte for byte, and a missing final newline", function()
    local bytes = "one\r\ntwo\r\nthree"
    H.write(dir .. "/crlf.txt", bytes)
    vim.cmd.edit("distant://" .. dir .. "/crlf.txt")
    assert.equals("dos", vim.bo.fileformat)
    assert.is_false(vim.bo.eol)
    assert.equals("one\ntwo\nthree", H.text())
    vim.cmd.write()
    assert.equals(bytes, H.read(dir .. "/crlf.txt"))
    vim.api.nvim_buf_set_lines(0, 1, 2, false, { "TWO" })
    vim.cmd.write()
    assert.equals("one\r\nTWO\r\nthree", H.read(dir .. "/crlf.txt"))
  end)

  it("keeps a latin1 file latin1", function()
    H.write(dir .. "/latin.txt", "caf\233\n")
    vim.cmd.edit("distant://" .. dir .. "/latin.txt")
    assert.equals("latin1", vim.bo.fileencoding)
    assert.equals("café", H.text())
    vim.api.nvim_buf_set_lines(0, 0, 1, false, { "café!" })
    vim.cmd.write()
    assert.equals("caf\233!\n", H.read(dir .. "/latin.txt"))
  end)

  it("creates a new file on :write", function()
    vim.cmd.edit("distant://" .. dir .. "/new.txt")
    assert.equals("", H.text())
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "fresh" })
    vim.cmd.write()
    assert.equals("fresh\n", H.read(dir .. "/new.txt"))
  end)

  it("refuses to overwrite a remote change; :write! overwrites", function()
    H.write(dir .. "/c.txt", "original\n")
    vim.cmd.edit("distant://" .. dir .. "/c.txt")
    -- Someone else changes the file behind the buffer.
    vim.wait(20)
    H.write(dir .. "/c.txt", "theirs\n")
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "mine" })
    vim.cmd.write()
    assert.equals("theirs\n", H.read(dir .. "/c.txt"))
    assert.is_true(vim.bo.modified)
    assert.equals(1, #H.notes_matching("changed on the remote", vim.log.levels.WARN))
    vim.cmd("write!")
    assert.equals("mine\n", H.read(dir .. "/c.txt"))
    assert.is_false(vim.bo.modified)
    -- And the next plain :write works again (the etag was updated).
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "mine again" })
    vim.cmd.write()
    assert.equals("mine again\n", H.read(dir .. "/c.txt"))
  end)

  it("reads and writes a big file in ranges with progress, etag-checked", function()
    local config = require("distant.config")
    local saved = config.options.chunk_size
    config.options.chunk_size = 64 * 1024
    local ok, err = pcall(function()
      local line = string.rep("x", 99) .. "\n"
      local bytes = string.rep(line, 5000) -- ~500 KB: 8 ranges
      H.write(dir .. "/big.txt", bytes)
      vim.cmd.edit("distant://" .. dir .. "/big.txt")
      assert.equals(5000, vim.api.nvim_buf_line_count(0))
      H.notes = {}
      vim.api.nvim_buf_set_lines(0, 0, 1, false, { "first line changed" })
      vim.cmd.write()
      local expected = "first line changed\n" .. string.rep(line, 4999)
      assert.equals(expected, H.read(dir .. "/big.txt"))
      assert.is_false(vim.bo.modified)
      -- Changed behind the buffer: the chunked save is refused whole.
      H.write(dir .. "/big.txt", "theirs\n")
      vim.api.nvim_buf_set_lines(0, 0, 1, false, { "second change" })
      vim.cmd.write()
      assert.equals("theirs\n", H.read(dir .. "/big.txt"))
      assert.is_true(#H.notes_matching("changed on the remote", vim.log.levels.WARN) >= 1)
      vim.cmd("write!")
      assert.equals("second change\n" .. string.rep(line, 4999), H.read(dir .. "/big.txt"))
    end)
    config.options.chunk_size = saved
    assert(ok, err)
  end)

  it("reports errors with vim.notify, not a traceback", function()
    H.write(dir .. "/ro-dir-file", "x")
    -- A path below a file cannot be written.
    vim.cmd.edit("distant://" .. dir .. "/ro-dir-file/child.txt")
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "y" })
    local ok = pcall(vim.cmd.write)
    assert.is_true(ok) -- the error went to vim.notify, not to the caller
    local errors = H.notes_matching("", vim.log.levels.ERROR)
    assert.is_true(#errors >= 1)
    for _, note in ipairs(errors) do
      assert.is_nil(note.msg:find("traceback"))
      assert.is_nil(note.msg:find("internal error"))
    end
  end)
end)
