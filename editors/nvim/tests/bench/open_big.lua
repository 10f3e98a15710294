-- Measures opening and saving a 10 MiB remote file (local server):
-- scripts: XDG_RUNTIME_DIR=$(mktemp -d) nvim -l tests/bench/open_big.lua
local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
package.path = here .. "/?.lua;" .. package.path
local H = require("helpers")
H.setup()
H.connect("local")
local dir = H.tmpdir()
local line = string.rep("abcdefghij", 9) .. "123456789\n" -- 100 bytes
H.write(dir .. "/big.txt", string.rep(line, 10 * 1024 * 1024 / 100))
local t0 = vim.uv.hrtime()
vim.cmd.edit("distant://" .. dir .. "/big.txt")
local t1 = vim.uv.hrtime()
vim.bo.modified = true
vim.cmd.write()
local t2 = vim.uv.hrtime()
io.stdout:write(
  ("open 10 MiB: %.0f ms (%d lines); save: %.0f ms\n"):format(
    (t1 - t0) / 1e6,
    vim.api.nvim_buf_line_count(0),
    (t2 - t1) / 1e6
  )
)
H.teardown()
vim.fn.delete(dir, "rf")
