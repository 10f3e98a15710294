-- :DistantFind (the file index through vim.ui.select, kept fresh), the
-- live :DistantGrep prompt, and :DistantGit with real git.
local H = require("helpers")

describe("distant find, grep and git", function()
  after_each(H.assert_no_internal_errors)

  local root
  local real_select = vim.ui.select
  local offered

  setup(function()
    H.setup()
    H.connect("local")
    root = H.tmpdir()
  end)

  teardown(function()
    vim.ui.select = real_select
    H.teardown()
  end)

  before_each(function()
    vim.cmd("silent! %bwipeout!")
    H.notes = {}
    offered = nil
    -- Choose the best-ranked item, as a user pressing <CR> would.
    vim.ui.select = function(items, _, on_choice)
      offered = items
      on_choice(items[1], 1)
    end
    require("distant.config").options.find_picker = "select"
  end)

  local function git(dir, ...)
    local out = vim.fn.system(vim.list_extend({ "git", "-C", dir }, { ... }))
    assert(vim.v.shell_error == 0, "git " .. table.concat({ ... }, " ") .. ": " .. out)
    return out
  end

  it("finds a deeply nested file by a fuzzy name and opens it", function()
    local dir = root .. "/find"
    vim.fn.mkdir(dir .. "/src/core/deep/er", "p")
    vim.fn.mkdir(dir .. "/docs", "p")
    H.write(dir .. "/src/core/deep/er/widget_factory.lua", "return 42\n")
    H.write(dir .. "/docs/widgets.md", "# widgets\n")
    H.write(dir .. "/README.md", "hi\n")
    H.write(dir .. "/.gitignore", "*.log\n")
    H.write(dir .. "/src/noise.log", "ignored\n")
    vim.cmd("DistantFind wdgtfac " .. dir)
    assert.equals("distant://" .. dir .. "/src/core/deep/er/widget_factory.lua", vim.api.nvim_buf_get_name(0))
    assert.equals("return 42", vim.api.nvim_get_current_line())
    assert.equals("src/core/deep/er/widget_factory.lua", offered[1])
    local index = require("distant.find").indexes[dir]
    local list = require("distant.find").list(index)
    assert.same({ "README.md", "docs/widgets.md", "src/core/deep/er/widget_factory.lua" }, list)
  end)

  it("keeps the index true as files come and go", function()
    local dir = root .. "/fresh"
    vim.fn.mkdir(dir .. "/a", "p")
    H.write(dir .. "/a/one.txt", "1\n")
    vim.cmd("DistantFind one " .. dir)
    local find = require("distant.find")
    local index = find.indexes[dir]
    vim.fn.mkdir(dir .. "/b/c", "p")
    H.write(dir .. "/b/c/brand_new.txt", "new\n")
    vim.fn.delete(dir .. "/a", "rf")
    H.wait(function()
      return index.paths["b/c/brand_new.txt"] and not index.paths["a/one.txt"]
    end, function()
      return "the index to catch up: " .. vim.inspect(find.list(index))
    end)
    vim.cmd("DistantFind brnew " .. dir)
    assert.equals("distant://" .. dir .. "/b/c/brand_new.txt", vim.api.nvim_buf_get_name(0))
    assert.same({ "b/c/brand_new.txt" }, find.list(index))
  end)

  it("warns that a huge tree is truncated, and names a missing root", function()
    local dir = root .. "/huge"
    vim.fn.mkdir(dir, "p")
    for i = 1, 20 do
      H.write(("%s/f%02d.txt"):format(dir, i), "")
    end
    local config = require("distant.config")
    config.options.find_max_paths = 5
    vim.cmd("DistantFind f " .. dir)
    config.options.find_max_paths = nil
    assert.equals(5, #offered)
    assert.equals(1, #H.notes_matching("only the first 5 files are listed", vim.log.levels.WARN))

    vim.cmd("DistantFind x " .. root .. "/no/such/dir")
    assert.equals(1, #H.notes_matching("cannot list the files under .*no/such/dir.*does not exist"))
  end)

  it("searches live as the prompt changes and jumps to the first match", function()
    local dir = root .. "/grep"
    vim.fn.mkdir(dir, "p")
    H.write(dir .. "/a.txt", "alpha needle\nbeta\n")
    H.write(dir .. "/b.txt", "Needle upper\nhaystack\n")
    local grep_mod = require("distant.grep")
    local search = require("distant.search")
    vim.cmd("DistantGrep " .. dir)
    local grep = grep_mod.current
    assert.is_not_nil(grep)
    local prompt = vim.fn.prompt_getprompt(grep.buf)
    local function type_text(text)
      vim.api.nvim_buf_set_lines(grep.buf, 0, -1, false, { prompt .. text })
      vim.api.nvim_exec_autocmds("TextChangedI", { buffer = grep.buf })
      H.wait(function()
        return search.current and search.current.pattern == text and search.current.done
      end, "the search for " .. text)
    end
    -- Lower case: either case matches.
    type_text("needle")
    assert.equals(2, #vim.fn.getqflist())
    -- An upper-case letter makes it case sensitive.
    type_text("Needle")
    local items = vim.fn.getqflist()
    assert.equals(1, #items)
    assert.equals("Needle upper", items[1].text)
    grep_mod.submit(grep)
    assert.is_nil(grep_mod.current)
    assert.equals("distant://" .. dir .. "/b.txt", vim.api.nvim_buf_get_name(0))
  end)

  it("lists a repository's changes and diffs the one under the cursor against HEAD", function()
    local repo = root .. "/repo"
    vim.fn.mkdir(repo .. "/sub", "p")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "T")
    H.write(repo .. "/sub/tracked.txt", "old line\nsame\n")
    H.write(repo .. "/gone.txt", "bye\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    H.write(repo .. "/sub/tracked.txt", "new line\nsame\n")
    H.write(repo .. "/staged.txt", "staged\n")
    git(repo, "add", "staged.txt")
    H.write(repo .. "/untracked.txt", "fresh\n")
    vim.fn.delete(repo .. "/gone.txt")

    vim.cmd("DistantGit " .. repo .. "/sub")
    local text = H.text(0)
    assert.matches("Branch: main", text)
    assert.matches("\n M sub/tracked.txt", text)
    assert.matches("\nA  staged.txt", text)
    assert.matches("\n%?%? untracked.txt", text)
    assert.matches("\n D gone.txt", text)
    local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    for i, line in ipairs(lines) do
      if line:find("tracked.txt", 1, true) and not line:find("untracked", 1, true) then
        vim.api.nvim_win_set_cursor(0, { i, 0 })
      end
    end
    vim.cmd("normal =")
    local diff = H.text(0)
    assert.equals("diff", vim.bo.filetype)
    assert.matches("%-old line", diff)
    assert.matches("%+new line", diff)
  end)

  it("says when a directory is not a repository or git is missing on the remote", function()
    local plain = root .. "/plain"
    vim.fn.mkdir(plain, "p")
    vim.cmd("DistantGit " .. plain)
    assert.equals(1, #H.notes_matching("is not inside a git repository", vim.log.levels.ERROR))
    local ok, err = pcall(require("distant.git").run, { "distant-no-such-git" })
    assert.is_false(ok)
    assert.matches("distant%-no%-such%-git is not installed on the remote", require("distant.util").error_message(err))
  end)
end)
