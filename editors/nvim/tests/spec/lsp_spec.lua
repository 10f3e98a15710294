-- Remote language servers: pylsp through `distant-bridge lsp`.
local H = require("helpers")

describe("distant remote language servers", function()
  -- The plugin catches its own Lua errors and reports them; here they fail.
  after_each(H.assert_no_internal_errors)

  local root

  setup(function()
    H.setup({
      servers = {
        pylsp = { cmd = { "pylsp" }, filetypes = { "python" }, root_markers = { "pyproject.toml", ".git" } },
      },
    })
    H.connect("local")
    root = H.tmpdir()
    vim.fn.mkdir(root .. "/proj/pkg", "p")
    H.write(root .. "/proj/pyproject.toml", "[project]\nname = 'demo'\n")
    H.write(root .. "/proj/pkg/__init__.py", "")
    H.write(root .. "/proj/pkg/lib.py", "def greet(name):\n    return 'hi ' + name\n")
    H.write(root .. "/proj/main.py", "from pkg.lib import greet\n\nprint(greet('x'))\n")
  end)

  teardown(function()
    vim.lsp.stop_client(vim.lsp.get_clients(), true)
    H.teardown()
  end)

  it(":checkhealth finds the language server on the remote", function()
    vim.cmd("checkhealth distant")
    local text = H.text()
    assert.matches("connected local", text)
    if vim.fn.executable("pylsp") == 1 then
      assert.matches("pylsp: %S+pylsp on the remote, for python", text)
    end
    vim.cmd("bwipeout!")
  end)

  it("attaches pylsp at the project root and jumps to a definition", function()
    assert(vim.fn.executable("pylsp") == 1, "pylsp is not installed: run bash .ci/setup-lsp.sh")
    vim.cmd.edit("distant://" .. root .. "/proj/main.py")
    local bufnr = vim.api.nvim_get_current_buf()
    local client
    H.wait(function()
      client = vim.lsp.get_clients({ bufnr = bufnr })[1]
      return client ~= nil and client.initialized
    end, "pylsp to initialize", 30000)
    assert.equals("distant:pylsp", client.name)
    assert.equals("distant://" .. root .. "/proj", client.root_dir)
    -- Definition of `greet` on line 3 lands in the remote pkg/lib.py buffer.
    vim.api.nvim_win_set_cursor(0, { 3, 7 })
    local target = "distant://" .. root .. "/proj/pkg/lib.py"
    H.wait(function()
      vim.lsp.buf.definition()
      return vim.wait(3000, function()
        return vim.api.nvim_buf_get_name(0) == target
      end, 20)
    end, "definition jump to " .. target, 30000)
    assert.same({ 1, 4 }, vim.api.nvim_win_get_cursor(0))
    assert.matches("def greet", vim.api.nvim_get_current_line())
    assert.equals("python", vim.bo.filetype)
    -- The second file of the project reuses the same client.
    H.wait(function()
      return vim.lsp.get_clients({ bufnr = 0 })[1] ~= nil
    end, "pylsp to attach to lib.py")
    assert.equals(client.id, vim.lsp.get_clients({ bufnr = 0 })[1].id)
    assert.equals(1, #vim.lsp.get_clients({ name = "distant:pylsp" }))
  end)
end)
