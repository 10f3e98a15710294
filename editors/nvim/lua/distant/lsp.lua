-- distant.lsp: remote language servers for `distant://` buffers. For each
-- configured server whose filetypes match, finds the project root on the
-- remote (`fs/findUp` over root_markers, else the file's directory) and
-- starts — or reuses, per (server, root) — a vim.lsp client whose command is
-- `distant-bridge lsp`, which runs the server remotely and rewrites
-- `distant:///P` ⇄ `file:///P` URIs.

local client = require("distant.client")
local config = require("distant.config")
local util = require("distant.util")

local M = {}

---@param path string remote file
---@param markers string[]
local function find_root(path, markers)
  if markers and #markers > 0 then
    local ok, found = pcall(client.request_sync, "fs/findUp", { path = path, names = markers })
    if ok and type(found) == "table" and found.path then
      return found.path
    end
  end
  return util.dirname(path)
end

--- The vim.lsp client config for `server` at remote `root`.
---@param name string
---@param server distant.ServerConfig
---@param root string
function M.client_config(name, server, root)
  local cmd = { config.options.bridge }
  vim.list_extend(cmd, config.options.bridge_args or {})
  vim.list_extend(cmd, { "--connection", client.connection, "lsp", "--cwd", root, "--" })
  vim.list_extend(cmd, server.cmd)
  local root_uri = util.to_name(root)
  return {
    name = "distant:" .. name,
    cmd = cmd,
    cmd_env = config.options.bridge_env,
    -- root_dir is a URI here: vim.lsp's workspace folders take it as is
    -- (uri_from_fname would wrap it in file://), so give them explicitly.
    root_dir = root_uri,
    workspace_folders = { { uri = root_uri, name = root } },
    -- vim.lsp derives rootPath from the URI and would send the URI itself
    -- (which the proxy then turns into file:///…); send the plain path.
    before_init = function(params)
      params.rootPath = root
    end,
    settings = server.settings,
    init_options = server.init_options,
    capabilities = server.capabilities,
  }
end

--- Attaches every configured language server matching `bufnr`'s filetype.
---@param bufnr integer
function M.attach(bufnr)
  local ft = vim.bo[bufnr].filetype
  local path = vim.b[bufnr].distant_path
  if ft == "" or not path or not client.connection then
    return
  end
  for name, server in pairs(config.options.servers) do
    if vim.tbl_contains(server.filetypes or {}, ft) then
      local root = find_root(path, server.root_markers)
      local cfg = M.client_config(name, server, root)
      vim.lsp.start(cfg, {
        bufnr = bufnr,
        reuse_client = function(existing, wanted)
          return existing.name == wanted.name and existing.root_dir == wanted.root_dir
        end,
      })
    end
  end
end

return M
