-- Streams: search into quickfix, the remote shell in a terminal buffer,
-- :DistantSpawn, and reload on remote change.
local H = require("helpers")

describe("distant streams", function()
  -- The plugin catches its own Lua errors and reports them; here they fail.
  after_each(H.assert_no_internal_errors)

  local root

  setup(function()
    H.setup({ watch = true })
    H.connect("local")
    root = H.tmpdir()
  end)

  teardown(function()
    H.teardown()
  end)

  local function wait_watch()
    H.wait(function()
      return vim.tbl_contains(require("distant.watch").watched(), root)
    end, "the watch on " .. root)
  end

  before_each(function()
    vim.cmd("silent! %bwipeout!")
    H.notes = {}
  end)

  it("streams search matches into the quickfix list", function()
    vim.fn.mkdir(root .. "/search", "p")
    H.write(root .. "/search/one.txt", "nothing\nneedle here\n")
    H.write(root .. "/search/two.txt", "a needle\nand another needle\n")
    vim.cmd("DistantSearch needle " .. root .. "/search")
    local search = require("distant.search").current
    H.wait(function()
      return search.done
    end, "search/done")
    local items = vim.fn.getqflist()
    assert.equals(3, #items)
    table.sort(items, function(a, b)
      return vim.api.nvim_buf_get_name(a.bufnr) .. a.lnum < vim.api.nvim_buf_get_name(b.bufnr) .. b.lnum
    end)
    assert.equals("distant://" .. root .. "/search/one.txt", vim.api.nvim_buf_get_name(items[1].bufnr))
    assert.equals(2, items[1].lnum)
    assert.equals(1, items[1].col)
    assert.equals("needle here", items[1].text)
    assert.equals(3, items[2].col)
    assert.equals(13, items[3].col)
    assert.matches("3 matches %(done%)", vim.fn.getqflist({ title = 0 }).title)
    -- Jumping to a match opens the remote buffer at the match.
    vim.cmd("cfirst")
    assert.matches("^distant://", vim.api.nvim_buf_get_name(0))
    assert.is_true(vim.api.nvim_get_current_line():find("needle") ~= nil)
  end)

  it("stops at search_max_results and says the list is truncated", function()
    vim.fn.mkdir(root .. "/capped", "p")
    H.write(root .. "/capped/lots.txt", string.rep("cap\n", 50))
    local config = require("distant.config")
    local saved = config.options.search_max_results
    config.options.search_max_results = 7
    vim.cmd("DistantSearch cap " .. root .. "/capped")
    config.options.search_max_results = saved
    local search = require("distant.search").current
    H.wait(function()
      return search.done
    end, "search/done")
    assert.equals(7, #vim.fn.getqflist())
    assert.matches("7 matches %(done, truncated%)", vim.fn.getqflist({ title = 0 }).title)
  end)

  it("cancels a running search", function()
    vim.fn.mkdir(root .. "/many", "p")
    for i = 1, 300 do
      H.write(("%s/many/f%03d.txt"):format(root, i), string.rep("match line\n", 50))
    end
    vim.cmd("DistantSearch match " .. root .. "/many")
    local search = require("distant.search").current
    vim.cmd("DistantSearchCancel")
    H.wait(function()
      return search.done
    end, "search/done after cancel")
    assert.matches("cancelled", vim.fn.getqflist({ title = 0 }).title)
    -- Cancelling with nothing running is a plain error message.
    vim.cmd("DistantSearchCancel")
    assert.equals(1, #H.notes_matching("no search is running", vim.log.levels.ERROR))
  end)

  it("runs a shell in a terminal buffer", function()
    vim.cmd("DistantShell /bin/sh")
    local bufnr = vim.api.nvim_get_current_buf()
    assert.equals("terminal", vim.bo[bufnr].buftype)
    H.wait(function()
      return vim.b[bufnr].distant_proc ~= nil
    end, "the shell to start")
    -- Typed keys reach the remote PTY.
    -- What terminal mode's on_input receives for typed keys (headless
    -- Neovim cannot enter terminal mode, so call the same function).
    for _, key in ipairs({ "e", "c", "h", "o", " ", "h", "e", "l", "'", "'", "l", "o", "\r" }) do
      require("distant.shell").type_keys(bufnr, key)
    end
    H.wait(function()
      -- The typed line reads hel''lo: "hello" can only be the output (which
      -- may follow the prompt on the same line if keys beat the prompt).
      return H.text(bufnr):find("hello") ~= nil
    end, function()
      return "hello in the terminal: " .. H.text(bufnr)
    end)
    require("distant.shell").send(bufnr, "exit 3\n")
    H.wait(function()
      return vim.b[bufnr].distant_exit_code ~= nil
    end, "the shell to exit")
    assert.equals(3, vim.b[bufnr].distant_exit_code)
    H.wait(function()
      return H.text(bufnr):find("exit code 3") ~= nil
    end, "exit code in the terminal")
  end)

  it("follows the window size", function()
    vim.cmd("DistantShell /bin/sh")
    local bufnr = vim.api.nvim_get_current_buf()
    H.wait(function()
      return vim.b[bufnr].distant_proc ~= nil
    end, "the shell to start")
    vim.cmd("vsplit")
    vim.cmd("vertical resize 40")
    vim.cmd("doautocmd WinResized")
    require("distant.shell").send(bufnr, "stty size\n")
    H.wait(function()
      return H.text(bufnr):find("%d+ 40") ~= nil
    end, function()
      return "stty size to show 40 columns: " .. H.text(bufnr)
    end)
    require("distant.shell").send(bufnr, "exit\n")
    vim.cmd("only")
  end)

  it(":DistantSpawn shows a command's output", function()
    vim.cmd("DistantSpawn echo one; echo two >&2; exit 4")
    local bufnr = vim.api.nvim_get_current_buf()
    H.wait(function()
      return vim.b[bufnr].distant_exit_code ~= nil
    end, "the command to exit")
    assert.matches("one", H.text(bufnr))
    assert.matches("two", H.text(bufnr))
    assert.matches("%[exit code 4%]", H.text(bufnr))
    vim.cmd("only")
  end)

  it(":DistantSpawn keeps the last lines of endless output, and cuts endless lines", function()
    local shell = require("distant.shell")
    local saved = { shell.max_scratch_lines, shell.max_partial_line }
    shell.max_scratch_lines, shell.max_partial_line = 50, 1000
    local ok, err = pcall(function()
      vim.cmd("DistantSpawn seq 1 500; head -c 3500 /dev/zero | tr '\\0' x")
      local bufnr = vim.api.nvim_get_current_buf()
      H.wait(function()
        return vim.b[bufnr].distant_exit_code ~= nil
      end, "the command to exit")
      local lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
      assert.equals(50, #lines)
      assert.equals("[exit code 0]", lines[#lines])
      assert.is_nil(H.text(bufnr):find("^1\n"), "the first lines were dropped")
      assert.is_true(vim.tbl_contains(lines, "500"))
      for _, line in ipairs(lines) do
        assert.is_true(#line <= 1000, "a line of " .. #line .. " bytes")
      end
      vim.cmd("only")
    end)
    shell.max_scratch_lines, shell.max_partial_line = saved[1], saved[2]
    assert(ok, err)
  end)

  it(":DistantSpawn runs in the current remote directory", function()
    vim.fn.mkdir(root .. "/here", "p")
    vim.cmd.edit("distant://" .. root .. "/here")
    vim.cmd("DistantSpawn pwd")
    local bufnr = vim.api.nvim_get_current_buf()
    H.wait(function()
      return vim.b[bufnr].distant_exit_code ~= nil
    end, "pwd to exit")
    assert.equals(vim.uv.fs_realpath(root .. "/here"), vim.api.nvim_buf_get_lines(bufnr, 0, 1, false)[1])
    vim.cmd("only")
  end)

  it("reloads a buffer changed on the remote ('autoread')", function()
    vim.o.autoread = true
    H.write(root .. "/watched.txt", "v1\n")
    vim.cmd.edit("distant://" .. root .. "/watched.txt")
    local bufnr = vim.api.nvim_get_current_buf()
    wait_watch()
    -- Our own save does not count as a remote change.
    vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "mine" })
    vim.cmd.write()
    vim.wait(300)
    assert.equals(0, #H.notes_matching("reloaded"))
    H.write(root .. "/watched.txt", "v2 from elsewhere\n")
    H.wait(function()
      return H.text(bufnr) == "v2 from elsewhere"
    end, "the buffer to reload")
    assert.is_false(vim.bo[bufnr].modified)
    -- The new etag was taken: a save now works without a conflict.
    vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "v3" })
    vim.cmd.write()
    assert.equals("v3\n", H.read(root .. "/watched.txt"))
  end)

  it("asks before reloading without 'autoread'", function()
    vim.o.autoread = false
    local prompts, answer = {}, "Keep"
    local saved = vim.ui.select
    vim.ui.select = function(items, opts, cb)
      table.insert(prompts, opts.prompt)
      cb(answer, answer == items[1] and 1 or 2)
    end
    H.write(root .. "/ask.txt", "v1\n")
    vim.cmd.edit("distant://" .. root .. "/ask.txt")
    local bufnr = vim.api.nvim_get_current_buf()
    wait_watch()
    H.write(root .. "/ask.txt", "v2\n")
    H.wait(function()
      return #prompts == 1
    end, "the question")
    assert.matches("changed on the remote", prompts[1])
    assert.equals("v1", H.text(bufnr))
    answer = "Reload"
    H.write(root .. "/ask.txt", "v3\n")
    H.wait(function()
      return H.text(bufnr) == "v3"
    end, "the reload after answering Reload")
    assert.equals(2, #prompts)
    vim.ui.select = saved
    vim.o.autoread = true
  end)

  it("warns instead of reloading a modified buffer", function()
    vim.o.autoread = true
    H.write(root .. "/w2.txt", "v1\n")
    vim.cmd.edit("distant://" .. root .. "/w2.txt")
    local bufnr = vim.api.nvim_get_current_buf()
    wait_watch()
    vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "unsaved" })
    H.write(root .. "/w2.txt", "theirs\n")
    H.wait(function()
      return #H.notes_matching("unsaved changes", vim.log.levels.WARN) > 0
    end, "a warning")
    assert.equals("unsaved", H.text(bufnr))
  end)
end)
