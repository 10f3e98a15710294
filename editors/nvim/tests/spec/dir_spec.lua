-- Directory buffers: listing, navigation and operations, and the
-- :DistantMkdir/Remove/Rename/Copy commands.
local H = require("helpers")

describe("distant directory buffers", function()
  -- The plugin catches its own Lua errors and reports them; here they fail.
  after_each(H.assert_no_internal_errors)

  local root
  local answers = {}

  setup(function()
    H.setup()
    H.connect("local")
    -- Prompts answer from a queue, as a picker plugin would.
    vim.ui.input = function(_, cb)
      cb(table.remove(answers, 1))
    end
    vim.ui.select = function(items, _, cb)
      cb(table.remove(answers, 1) or items[1])
    end
  end)

  teardown(function()
    H.teardown()
  end)

  before_each(function()
    vim.cmd("silent! %bwipeout!")
    H.notes = {}
    root = H.tmpdir()
    vim.fn.mkdir(root .. "/sub/deeper", "p")
    H.write(root .. "/b.txt", "bee\n")
    H.write(root .. "/a.txt", "ay\n")
    H.write(root .. "/sub/inner.txt", "inner\n")
  end)

  local function press(keys)
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), "x", false)
  end

  local function goto_line(text)
    for i, line in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
      if line == text then
        vim.api.nvim_win_set_cursor(0, { i, 0 })
        return
      end
    end
    error("no line " .. text .. " in " .. H.text())
  end

  it("lists a directory, directories first", function()
    vim.cmd.edit("distant://" .. root)
    assert.equals("sub/\na.txt\nb.txt", H.text())
    assert.equals("distant-dir", vim.bo.filetype)
    assert.is_false(vim.bo.modifiable)
  end)

  it("<CR> opens entries and - goes up", function()
    vim.cmd.edit("distant://" .. root)
    goto_line("sub/")
    press("<CR>")
    assert.equals("distant://" .. root .. "/sub", vim.api.nvim_buf_get_name(0))
    assert.equals("deeper/\ninner.txt", H.text())
    goto_line("inner.txt")
    press("<CR>")
    assert.equals("distant://" .. root .. "/sub/inner.txt", vim.api.nvim_buf_get_name(0))
    assert.equals("inner", H.text())
    press("-")
    assert.equals("distant://" .. root .. "/sub", vim.api.nvim_buf_get_name(0))
    press("-")
    assert.equals("distant://" .. root, vim.api.nvim_buf_get_name(0))
    assert.equals("sub/", vim.api.nvim_get_current_line())
  end)

  it("creates, renames, copies and deletes with keys", function()
    vim.cmd.edit("distant://" .. root)
    answers = { "new.txt" }
    press("%")
    assert.equals("", H.read(root .. "/new.txt"))
    answers = { "made" }
    press("d")
    assert.is_true(vim.fn.isdirectory(root .. "/made") == 1)
    assert.equals("made/\nsub/\na.txt\nb.txt\nnew.txt", H.text())
    goto_line("a.txt")
    answers = { "renamed.txt" }
    press("R")
    assert.is_false(H.exists(root .. "/a.txt"))
    assert.equals("ay\n", H.read(root .. "/renamed.txt"))
    goto_line("b.txt")
    answers = { "copy.txt" }
    press("C")
    assert.equals("bee\n", H.read(root .. "/copy.txt"))
    assert.equals("bee\n", H.read(root .. "/b.txt"))
    goto_line("sub/")
    answers = { "Yes" }
    press("D")
    assert.is_false(H.exists(root .. "/sub"))
    goto_line("b.txt")
    answers = { "No" }
    press("D")
    assert.is_true(H.exists(root .. "/b.txt"))
    assert.equals("made/\nb.txt\ncopy.txt\nnew.txt\nrenamed.txt", H.text())
  end)

  it("has :DistantMkdir, :DistantRename, :DistantCopy and :DistantRemove", function()
    vim.cmd("DistantMkdir " .. root .. "/x/y")
    assert.equals(1, vim.fn.isdirectory(root .. "/x/y"))
    vim.cmd("DistantCopy " .. root .. "/b.txt " .. root .. "/x/b2.txt")
    assert.equals("bee\n", H.read(root .. "/x/b2.txt"))
    vim.cmd("DistantRename " .. root .. "/x/b2.txt " .. root .. "/x/b3.txt")
    assert.is_false(H.exists(root .. "/x/b2.txt"))
    assert.equals("bee\n", H.read(root .. "/x/b3.txt"))
    vim.cmd("DistantRemove " .. root .. "/x/b3.txt")
    assert.is_false(H.exists(root .. "/x/b3.txt"))
    -- A non-empty directory needs the bang; without it: an error, no change.
    vim.cmd("DistantRemove " .. root .. "/x")
    assert.is_true(H.exists(root .. "/x"))
    assert.equals(1, #H.notes_matching("", vim.log.levels.ERROR))
    vim.cmd("DistantRemove! " .. root .. "/x")
    assert.is_false(H.exists(root .. "/x"))
    -- Relative paths resolve against the directory buffer.
    vim.cmd.edit("distant://" .. root)
    vim.cmd("DistantMkdir rel")
    assert.equals(1, vim.fn.isdirectory(root .. "/rel"))
    assert.equals("rel/", vim.api.nvim_buf_get_lines(0, 0, 1, false)[1])
  end)
end)
