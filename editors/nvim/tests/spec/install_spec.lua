-- The plugin brings its own bridge and sets itself up however it was
-- loaded: setup() without plugin/distant.lua sourced, warnings for unknown
-- options, :checkhealth naming the fix, and :DistantInstall building the
-- real bridge with cargo into a place the plugin finds by itself.
local H = require("helpers")

local function health_text()
  vim.cmd("checkhealth distant")
  local text = H.text()
  vim.cmd("bwipeout!")
  return text
end

local function autocmd_count()
  return #vim.api.nvim_get_autocmds({ group = "distant" })
end

describe("distant setup and install", function()
  after_each(H.assert_no_internal_errors)

  setup(function()
    -- Like H.setup, but the plugin/ file is NOT sourced: the plugin was
    -- added to 'runtimepath' after startup.
    vim.opt.runtimepath:prepend(H.plugin_root)
    vim.o.swapfile = false
    vim.o.hidden = true
    vim.o.more = false
    vim.notify = function(msg, level)
      table.insert(H.notes, { msg = msg, level = level or vim.log.levels.INFO })
    end
  end)

  teardown(function()
    H.teardown()
  end)

  before_each(function()
    H.notes = {}
  end)

  it("setup() creates the commands and autocmds once, whichever way the plugin was loaded", function()
    assert.equals(0, vim.fn.exists(":DistantConnect"))
    require("distant").setup({ bridge = H.bridge, watch = false })
    assert.equals(2, vim.fn.exists(":DistantConnect"))
    assert.equals(2, vim.fn.exists(":DistantInstall"))
    local count = autocmd_count()
    assert.is_true(count >= 4, "autocmds: " .. count)
    require("distant").setup({ bridge = H.bridge, watch = false })
    vim.cmd("runtime plugin/distant.lua")
    assert.equals(count, autocmd_count())
    -- They work: a real connection and a remote file read.
    H.connect("local")
    local dir = H.tmpdir()
    H.write(dir .. "/a.txt", "alpha\n")
    vim.cmd.edit("distant://" .. dir .. "/a.txt")
    assert.equals("alpha", H.text())
    vim.cmd("bwipeout!")
    require("distant.client").stop()
  end)

  it("setup() warns about unknown options and keeps quiet about known ones", function()
    require("distant").setup({ bridge = H.bridge, sever = { x = 1 }, keymaps = { opne = "o" } })
    local warned = H.notes_matching("unknown option", vim.log.levels.WARN)
    assert.equals(1, #warned, vim.inspect(H.notes))
    assert.truthy(warned[1].msg:find("`keymaps.opne`, `sever`", 1, true), warned[1].msg)
    H.notes = {}
    require("distant").setup({
      bridge = H.bridge,
      watch = false,
      servers = {},
      keymaps = { open = "<CR>" },
      connect_options = { upload = false },
      bridge_env = {},
    })
    assert.equals(0, #H.notes_matching("unknown option"), vim.inspect(H.notes))
  end)

  it(":checkhealth names the fix, :DistantInstall builds the bridge the plugin then uses", function()
    local prefix = H.tmpdir()
    vim.g.distant_install_prefix = prefix
    -- Nothing of ours on PATH: the default `bridge` finds nothing.
    local kept = {}
    for _, dir in ipairs(vim.split(vim.env.PATH, ":")) do
      if vim.fn.executable(dir .. "/distant-bridge") ~= 1 then
        table.insert(kept, dir)
      end
    end
    vim.env.PATH = table.concat(kept, ":")
    require("distant").setup({ watch = false })
    assert.equals(0, vim.fn.executable("distant-bridge"))
    assert.is_nil((require("distant.install").find_bridge()))

    local before = health_text()
    assert.truthy(before:find(":DistantInstall", 1, true), before)
    assert.truthy(before:find(prefix .. "/bin/distant-bridge", 1, true), before)
    assert.truthy(before:find("cargo build --locked -p distant-bridge", 1, true), before)

    -- The real build (dev profile: what the tests built already).
    local ok, message = require("distant.install").install({ wait = true, debug = true })
    assert.is_true(ok, message)
    assert.equals(1, vim.fn.executable(prefix .. "/bin/distant-bridge"))
    assert.equals(1, vim.fn.executable(prefix .. "/bin/distant-server"))
    assert.equals(prefix .. "/bin/distant-bridge", (require("distant.install").find_bridge()))

    local after = health_text()
    assert.truthy(after:find("distant%-bridge %d+%.%d+%.%d+"), after)
    assert.truthy(after:find(prefix .. "/bin/distant-bridge", 1, true), after)

    -- The plugin runs it by itself: a connection through the installed bridge.
    H.connect("local")
    vim.cmd("DistantDisconnect")
  end)
end)
