-- The plugin's edges: nothing at require time, status, bad destinations,
-- :checkhealth, and a reconnect (through a TCP forwarder we cut) while a
-- buffer is open, then saved.
local H = require("helpers")

describe("distant session", function()
  -- The plugin catches its own Lua errors and reports them; here they fail.
  after_each(H.assert_no_internal_errors)

  local server, forwarder

  teardown(function()
    if forwarder then
      forwarder.close()
    end
    H.teardown()
    if server then
      server.kill()
    end
  end)

  it("does nothing at require time", function()
    -- On the runtimepath, plugin/ not sourced yet: only the module.
    vim.opt.runtimepath:prepend(H.plugin_root)
    local distant = require("distant")
    assert.is_function(distant.setup)
    assert.equals("distant: disconnected", distant.status())
    assert.same({}, vim.api.nvim_get_autocmds({ pattern = "distant://*" }))
    assert.same({}, vim.api.nvim_get_proc_children(vim.fn.getpid()))
    assert.is_nil(package.loaded["distant.client"])
    assert.equals(0, vim.fn.exists(":DistantConnect"))
  end)

  it("loads commands and autocmds from plugin/", function()
    H.setup()
    assert.equals(2, vim.fn.exists(":DistantConnect"))
    assert.is_true(#vim.api.nvim_get_autocmds({ group = "distant" }) >= 2)
    assert.same({}, vim.api.nvim_get_proc_children(vim.fn.getpid()))
  end)

  it("reports a bad destination with vim.notify, not a traceback", function()
    H.notes = {}
    local ok = pcall(vim.cmd, "DistantConnect bogus://nowhere")
    assert.is_true(ok)
    local errors = H.notes_matching("cannot connect to bogus://nowhere", vim.log.levels.ERROR)
    assert.equals(1, #errors)
    assert.is_nil(errors[1].msg:find("traceback"))
    assert.equals("distant: disconnected", require("distant").status())
    -- Opening a remote file without a connection says what to do.
    H.notes = {}
    vim.cmd.edit("distant:///tmp/x")
    assert.equals(1, #H.notes_matching("DistantConnect", vim.log.levels.ERROR))
    -- That empty buffer is never written over the remote file by accident.
    vim.cmd.write()
    assert.equals(1, #H.notes_matching("never read from the remote", vim.log.levels.ERROR))
    vim.cmd("bwipeout!")
  end)

  it("runs :checkhealth distant", function()
    vim.cmd("checkhealth distant")
    local text = H.text()
    assert.matches("distant%-bridge", text)
    assert.matches("OK", text)
    assert.is_nil(text:find("ERROR"))
    vim.cmd("bwipeout!")
  end)

  it("recovers when the bridge's manager dies", function()
    H.connect("local")
    local dir = H.tmpdir()
    H.write(dir .. "/m.txt", "one\n")
    vim.cmd.edit("distant://" .. dir .. "/m.txt")
    H.notes = {}
    local pid = tonumber(H.read(vim.env.XDG_RUNTIME_DIR .. "/distant/manager.pid"))
    vim.uv.kill(pid, "sigkill")
    H.wait(function()
      return require("distant").status() == "distant: disconnected"
    end, "the disconnected state")
    assert.equals(1, #H.notes_matching("the bridge exited.*:DistantConnect local", vim.log.levels.ERROR))
    -- Saving now says what to do; connecting again starts a new manager.
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "two" })
    vim.cmd.write()
    assert.equals("one\n", H.read(dir .. "/m.txt"))
    assert.is_true(#H.notes_matching("DistantConnect", vim.log.levels.ERROR) >= 2)
    H.connect("local")
    vim.cmd.write()
    assert.equals("two\n", H.read(dir .. "/m.txt"))
    vim.cmd("bwipeout!")
  end)

  it("survives a reconnect with a buffer open, then saves", function()
    server = H.start_server()
    forwarder = H.forwarder(server.port)
    local url = ("distant://:%s@127.0.0.1:%d"):format(server.key, forwarder.port)
    H.connect(url)
    assert.matches("^distant: connected distant://", require("distant").status())
    -- Issue 14: the key is in no status, notification or :messages entry.
    local function assert_key_hidden()
      assert.is_nil(require("distant").status():find(server.key, 1, true))
      for _, note in ipairs(H.notes) do
        assert.is_nil(note.msg:find(server.key, 1, true), note.msg)
      end
      local messages = vim.api.nvim_exec2("messages", { output = true }).output
      assert.is_nil(messages:find(server.key, 1, true), messages)
    end
    assert_key_hidden()
    local dir = H.tmpdir()
    H.write(dir .. "/r.txt", "before\n")
    vim.cmd.edit("distant://" .. dir .. "/r.txt")
    assert.equals("before", H.text())

    local states = {}
    vim.api.nvim_create_autocmd("User", {
      pattern = "DistantStatus",
      callback = function()
        table.insert(states, require("distant.client").state)
      end,
    })
    forwarder.cut()
    H.wait(function()
      return vim.tbl_contains(states, "reconnecting")
    end, "the reconnecting state")
    assert.matches("reconnecting", require("distant").status())
    assert.is_true(#H.notes_matching("reconnecting", vim.log.levels.WARN) > 0)
    forwarder.restore()
    H.wait(function()
      return require("distant.client").state == "connected"
    end, "the session to resume", 30000)
    assert.is_true(#H.notes_matching("reconnected") > 0)
    assert_key_hidden()

    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "after the reconnect" })
    vim.cmd.write()
    assert.equals("after the reconnect\n", H.read(dir .. "/r.txt"))
    assert.is_false(vim.bo.modified)
  end)
end)
