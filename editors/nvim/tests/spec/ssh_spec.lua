-- An ssh:// destination from Neovim, through a real sshd started here (on
-- 127.0.0.1, its own keys and config, the `distant-test` user that
-- .ci/setup-ssh.sh creates): connect with `connect_options`, open, edit and
-- save a file in that user's home (owned by that user), a directory
-- listing, and a shell that runs as that user.
local H = require("helpers")
local uv = vim.uv

local USER = "distant-test"

--- The home of `user` from /etc/passwd, or nil.
local function home_of(user)
  for line in io.lines("/etc/passwd") do
    local name, uid, home = line:match("^([^:]*):[^:]*:(%d+):[^:]*:[^:]*:([^:]*):")
    if name == user then
      return home, tonumber(uid)
    end
  end
end

local function keygen(path)
  local r = vim.system({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path }):wait()
  assert(r.code == 0, "ssh-keygen failed: " .. (r.stderr or ""))
end

local function free_port()
  local tcp = uv.new_tcp()
  assert(tcp:bind("127.0.0.1", 0))
  local port = tcp:getsockname().port
  tcp:close()
  return port
end

--- Starts sshd for USER; returns {config = ssh_config path, kill = fn}.
local function start_sshd(dir)
  keygen(dir .. "/host_key")
  keygen(dir .. "/client_key")
  H.write(dir .. "/authorized_keys", H.read(dir .. "/client_key.pub"))
  uv.fs_chmod(dir, 493) -- 0755: sshd reads the keys as the user
  uv.fs_chmod(dir .. "/authorized_keys", 420)
  vim.fn.mkdir("/run/sshd", "p")
  local port = free_port()
  H.write(
    dir .. "/sshd_config",
    table.concat({
      "Port " .. port,
      "ListenAddress 127.0.0.1",
      "HostKey " .. dir .. "/host_key",
      "PidFile none",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "AuthorizedKeysFile " .. dir .. "/authorized_keys",
      "StrictModes no",
      "AllowUsers " .. USER,
      "PrintMotd no",
      "PrintLastLog no",
      "",
    }, "\n")
  )
  local log = dir .. "/sshd.log"
  local sshd = vim.system({ "/usr/sbin/sshd", "-D", "-e", "-f", dir .. "/sshd_config" }, {
    stderr = function(_, data)
      if data then
        local f = io.open(log, "a")
        if f then
          f:write(data)
          f:close()
        end
      end
    end,
  })
  H.wait(function()
    local tcp = uv.new_tcp()
    local up = false
    tcp:connect("127.0.0.1", port, function(err)
      up = err == nil
    end)
    vim.wait(200, function()
      return up
    end, 10)
    tcp:close()
    return up
  end, function()
    return "sshd to listen: " .. (H.read(log) or "")
  end)
  H.write(
    dir .. "/ssh_config",
    table.concat({
      "Host distant-nvim-ssh",
      "  HostName 127.0.0.1",
      "  Port " .. port,
      "  User " .. USER,
      "  IdentityFile " .. dir .. "/client_key",
      "  IdentitiesOnly yes",
      "  StrictHostKeyChecking no",
      "  UserKnownHostsFile /dev/null",
      "  LogLevel ERROR",
      "",
    }, "\n")
  )
  return {
    config = dir .. "/ssh_config",
    kill = function()
      sshd:kill("sigterm")
    end,
  }
end

describe("an ssh:// destination", function()
  after_each(H.assert_no_internal_errors)

  local sshd, scratch, work
  local home, uid = home_of(USER)

  teardown(function()
    H.teardown()
    if sshd then
      sshd.kill()
      -- The ssh user's server daemon would idle on; other suites log in as
      -- that user too.
      vim.system({ "pkill", "-u", USER, "-f", "distant-server" }):wait()
    end
    if work then
      vim.fn.delete(work, "rf")
    end
    if scratch then
      vim.fn.delete(scratch, "rf")
    end
  end)

  it("connects through ssh with connect_options and edits a file as the ssh user", function()
    assert(home, "there is no user " .. USER .. ": run sudo bash .ci/setup-ssh.sh")
    assert(uv.fs_stat("/usr/sbin/sshd"), "sshd is missing: run sudo bash .ci/setup-ssh.sh")
    -- sshd reads the authorized keys as the user: not under our private
    -- TMPDIR (0700), in /tmp itself.
    scratch = assert(uv.fs_mkdtemp("/tmp/distant-nvim-sshd-XXXXXX"))
    sshd = start_sshd(scratch)
    H.setup({ connect_options = { ssh = { "-F", sshd.config }, allowLocalCommands = true } })
    H.connect("ssh://distant-nvim-ssh")
    assert.matches("connected ssh://distant%-nvim%-ssh", require("distant").status())

    work = home .. "/distant-nvim-ssh-test"
    vim.fn.delete(work, "rf")
    vim.cmd("DistantMkdir " .. work)
    local file = work .. "/notes.txt"
    vim.cmd.edit("distant://" .. file)
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "written over ssh", "second line" })
    vim.cmd.write()
    assert.equals("written over ssh\nsecond line\n", H.read(file))
    assert.equals(uid, uv.fs_stat(file).uid, "the file belongs to the ssh user")

    -- A directory listing of the remote home dir shows it.
    vim.cmd.edit("distant://" .. work)
    assert.is_true(vim.tbl_contains(vim.api.nvim_buf_get_lines(0, 0, -1, false), "notes.txt"))

    -- A shell on the remote runs as the ssh user.
    vim.cmd("DistantShell id -un")
    local term = vim.api.nvim_get_current_buf()
    H.wait(function()
      return table.concat(vim.api.nvim_buf_get_lines(term, 0, -1, false), "\n"):find(USER, 1, true) ~= nil
    end, function()
      return "`id -un` to print " .. USER .. ": " .. vim.inspect(vim.api.nvim_buf_get_lines(term, 0, -1, false))
    end)
    vim.cmd("bwipeout!")
  end)
end)
