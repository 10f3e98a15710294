-- distant.config: the plugin's options — defaults, validation and the
-- merged table every other module reads. Holds no state beyond that table.

local M = {}

---@class distant.ServerConfig
---@field cmd string[]            argv of the language server on the remote
---@field filetypes string[]      filetypes it attaches to
---@field root_markers? string[]  names whose nearest ancestor is the project root
---@field settings? table         passed to vim.lsp.start as `settings`

---@class distant.Config
M.defaults = {
  -- Path of `distant-bridge`; the default finds it on $PATH.
  bridge = "distant-bridge",
  -- Extra arguments put before the subcommand, e.g. { "--no-manager" }.
  bridge_args = {},
  -- Environment for the bridge process (merged into Neovim's).
  bridge_env = nil,
  -- `options` of the bridge's `connect`, e.g. for ssh:// destinations
  -- { ssh = { "-i", "~/.ssh/work" }, remoteServer = "/opt/distant-server" }
  -- (see docs/BRIDGE-API.md, "connect").
  connect_options = nil,
  -- Language servers to run on the remote, by name.
  ---@type table<string, distant.ServerConfig>
  servers = {},
  -- Watch open files and reload them (or ask, following 'autoread') when
  -- they change on the remote.
  watch = true,
  -- How long a synchronous request (reading or writing a buffer, a
  -- directory operation) may take before it fails, in milliseconds.
  timeout = 30000,
  -- Files above this many bytes are read and saved in ranges of this size,
  -- with progress shown, instead of in one request.
  chunk_size = 4 * 1024 * 1024,
  -- :DistantSearch stops after this many matches (the quickfix list says
  -- "truncated"), so a pattern that matches everything cannot fill memory.
  search_max_results = 10000,
  -- :DistantFind lists at most this many files per root (it warns when a
  -- tree holds more).
  find_max_paths = 200000,
  -- :DistantFind's picker: "auto" (telescope, else fzf-lua, else
  -- vim.ui.select) or "select" (always vim.ui.select).
  find_picker = "auto",
  -- When a remote process of the connection starts listening on a TCP
  -- port: "notify" (say so, with the :DistantForward command to run),
  -- "forward" (forward it at once, on the same local port when free), or
  -- false (ignore it).
  detected_ports = "notify",
  -- Keys in directory buffers; set one to false to leave it unmapped.
  keymaps = {
    open = "<CR>",
    parent = "-",
    refresh = "<C-l>",
    new_file = "%",
    mkdir = "d",
    rename = "R",
    delete = "D",
    copy = "C",
  },
}

---@type distant.Config
M.options = vim.deepcopy(M.defaults)

--- Names of `opts` keys (and `keymaps` keys) the defaults do not have.
---@param opts table
---@return string[]
function M.unknown(opts)
  local found = {}
  for key in pairs(opts) do
    if M.defaults[key] == nil and key ~= "bridge_env" and key ~= "connect_options" then
      table.insert(found, tostring(key))
    end
  end
  if type(opts.keymaps) == "table" then
    for key in pairs(opts.keymaps) do
      if M.defaults.keymaps[key] == nil then
        table.insert(found, "keymaps." .. tostring(key))
      end
    end
  end
  table.sort(found)
  return found
end

--- Merges user options over the defaults. Unknown keys (a typo such as
--- `sever`) get a warning naming them, and are kept so a newer option is
--- never dropped by an older validator.
---@param opts? table
function M.set(opts)
  opts = opts or {}
  local unknown = M.unknown(opts)
  if #unknown > 0 then
    vim.notify(
      ("distant.setup: unknown option%s %s (see :help distant-config)"):format(
        #unknown > 1 and "s" or "",
        "`" .. table.concat(unknown, "`, `") .. "`"
      ),
      vim.log.levels.WARN
    )
  end
  -- Plain checks rather than vim.validate, whose signature changed in 0.11.
  local function expect(name, value, kind, optional)
    if value == nil and optional then
      return
    end
    if type(value) ~= kind then
      error(("distant.setup: `%s` must be a %s, got %s"):format(name, kind, type(value)), 3)
    end
  end
  expect("bridge", opts.bridge, "string", true)
  expect("servers", opts.servers, "table", true)
  expect("watch", opts.watch, "boolean", true)
  expect("keymaps", opts.keymaps, "table", true)
  expect("connect_options", opts.connect_options, "table", true)
  if opts.detected_ports ~= nil and not vim.tbl_contains({ "notify", "forward", false }, opts.detected_ports) then
    error('distant.setup: `detected_ports` must be "notify", "forward" or false', 2)
  end
  for name, server in pairs(opts.servers or {}) do
    expect("servers." .. name .. ".cmd", server.cmd, "table")
    expect("servers." .. name .. ".filetypes", server.filetypes, "table")
  end
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  -- Server tables are replaced, not merged key by key with the defaults.
  M.options.servers = opts.servers or {}
end

return M
